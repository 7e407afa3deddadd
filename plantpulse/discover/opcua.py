"""``discover opcua``: browse a server's address space and propose an OPC UA source.

Choices, and why:

* **Level by level, in batches.** One Browse request per level of the tree (chunked, with
  BrowseNext for continuation points) and one Read per attribute for all variables found, so a
  server with thousands of nodes costs a few dozen round trips, not one per node.
* **What is listed.** Objects and variables below ``--root`` (default: the Objects folder),
  following hierarchical references. Under the Objects folder, nodes of namespace 0 (the
  Server object and its diagnostics) are skipped. Properties are metadata, not variables:
  ``EngineeringUnits`` (EUInformation) gives the unit, ``EURange`` the range.
* **What becomes a tag.** Scalar numeric and boolean variables (judged by the value's type, or
  by the DataType when the value is null): what the collector turns into samples. Others are
  listed with their type and left out.
* **Names.** Node ids are written ``nsu=<namespace uri>;...`` (they survive a server that
  renumbers its namespaces); the suggested tag name is the browse path below the root (the
  root's own name included unless it is the Objects folder), each segment sanitized.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from asyncua import ua
from asyncua.client.client import Client
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIdNames, ObjectIds
from asyncua.ua.uaerrors import UaError

from plantpulse.collectors.opcua import namespaces_text, node_id
from plantpulse.collectors.opcua_nodeid import NodeRef
from plantpulse.collectors.opcua_session import Target, close_client, open_client, translate
from plantpulse.discover.fragment import tag_name, unique
from plantpulse.discover.table import columns

__all__ = ["Browsed", "Variable", "browse_server", "source_entry", "table"]

_CHUNK = 200  # nodes per Browse / Read request
_NUMERIC_VARIANTS = frozenset(
    {
        ua.VariantType.Boolean,
        ua.VariantType.SByte,
        ua.VariantType.Byte,
        ua.VariantType.Int16,
        ua.VariantType.UInt16,
        ua.VariantType.Int32,
        ua.VariantType.UInt32,
        ua.VariantType.Int64,
        ua.VariantType.UInt64,
        ua.VariantType.Float,
        ua.VariantType.Double,
    }
)
# Boolean..Double, Number, Integer, UInteger, Enumeration, IntegerId, Counter, Duration
_NUMERIC_TYPES = frozenset({*range(1, 12), 26, 27, 28, 29, 288, 289, 290})
_EU = ("EngineeringUnits", "EURange")
_OBJECTS = ua.NodeId.from_string(f"i={ObjectIds.ObjectsFolder}")
_HAS_PROPERTY = ua.NodeId.from_string(f"i={ObjectIds.HasProperty}")
_HIERARCHICAL = ua.NodeId.from_string(f"i={ObjectIds.HierarchicalReferences}")


@dataclass(frozen=True)
class Variable:
    """One variable as found: where, what type, unit and range, and its value now."""

    path: tuple[str, ...]
    node: NodeRef
    data_type: str
    numeric: bool
    value: str
    status: str | None = None  # the StatusCode name when not Good
    unit: str | None = None
    low: float | None = None
    high: float | None = None
    description: str | None = None


@dataclass
class Browsed:
    variables: list[Variable] = field(default_factory=list)
    truncated: bool = False  # stopped at max_nodes
    nodes: int = 0


async def browse_server(
    target: Target, *, root: NodeRef | None = None, depth: int = 10, max_nodes: int = 20_000
) -> Browsed:
    """Connect, browse below ``root`` (default Objects) ``depth`` levels deep, read, disconnect."""
    client = await open_client(target)
    try:
        namespaces = await client.get_namespace_array()
        start = _OBJECTS
        if root is not None:
            start = node_id(_resolve(root, namespaces))
        return await _Browser(client, namespaces, max_nodes).run(start, depth)
    except (OSError, TimeoutError, UaError) as e:
        raise translate(target, e) from None
    finally:
        await close_client(client, target.timeout)


def _resolve(ref: NodeRef, namespaces: Sequence[str]) -> NodeRef:
    if ref.uri is None:
        return ref
    if ref.uri not in namespaces:
        have = namespaces_text(namespaces)
        raise ValueError(f"--root: namespace {ref.uri!r} is not on the server (it has: {have})")
    return ref.with_index(namespaces.index(ref.uri))


class _Browser:
    def __init__(self, client: Client, namespaces: Sequence[str], max_nodes: int) -> None:
        self.client = client
        self.namespaces = list(namespaces)
        self.max_nodes = max_nodes

    async def run(self, root: ua.NodeId, depth: int) -> Browsed:
        objects = root == _OBJECTS
        root_path: tuple[str, ...] = ()
        if not objects:
            [root_name] = await self._read([root], AttributeIds.BrowseName)
            status, variant = root_name.StatusCode, root_name.Value
            if (status is not None and not status.is_good()) or variant is None:
                raise UaError(f"--root {root.to_string()}: {status.name if status else 'no BrowseName'}")
            root_path = (variant.Value.Name,)
        out = Browsed()
        found: dict[ua.NodeId, tuple[str, ...]] = {}  # variables, in browse order
        eu: dict[ua.NodeId, dict[str, ua.NodeId]] = {}
        visited = {root}
        frontier: list[tuple[ua.NodeId, tuple[str, ...], int, bool]] = [(root, root_path, 0, False)]
        while frontier and not out.truncated:
            refs = await self._browse([n for n, _, _, _ in frontier])
            nxt: list[tuple[ua.NodeId, tuple[str, ...], int, bool]] = []
            for (node, path, level, is_var), children in zip(frontier, refs, strict=True):
                for ref in children:
                    child = _plain(ref.NodeId)
                    name = ref.BrowseName.Name or ""
                    if ref.ReferenceTypeId == _HAS_PROPERTY:
                        if is_var and name in _EU:
                            eu.setdefault(node, {})[name] = child
                        continue
                    if level >= depth or child in visited or (objects and child.NamespaceIndex == 0):
                        continue  # below the last level, seen already, or the server's own nodes
                    if ref.NodeClass not in (ua.NodeClass.Object, ua.NodeClass.Variable):
                        continue
                    visited.add(child)
                    variable = ref.NodeClass == ua.NodeClass.Variable
                    if variable:
                        found[child] = (*path, name)
                    # variables are browsed once more for their properties, even at the last level
                    if level + 1 < depth or variable:
                        nxt.append((child, (*path, name), level + 1, variable))
                    if len(visited) > self.max_nodes:
                        out.truncated = True
                        break
                if out.truncated:
                    break
            frontier = nxt
        out.nodes = len(visited)
        out.variables = await self._describe(found, eu)
        return out

    async def _browse(self, nodes: list[ua.NodeId]) -> list[list[ua.ReferenceDescription]]:
        out: list[list[ua.ReferenceDescription]] = []
        for i in range(0, len(nodes), _CHUNK):
            params = ua.BrowseParameters()
            params.View = ua.ViewDescription()
            params.RequestedMaxReferencesPerNode = 0
            params.NodesToBrowse = [_description(n) for n in nodes[i : i + _CHUNK]]
            for result in await self.client.uaclient.browse(params):
                refs = list(result.References or []) if result.StatusCode.is_good() else []
                point = result.ContinuationPoint
                while point:
                    more = ua.BrowseNextParameters()
                    more.ReleaseContinuationPoints = False
                    more.ContinuationPoints = [point]
                    [next_result] = await self.client.uaclient.browse_next(more)
                    refs.extend(next_result.References or [])
                    point = next_result.ContinuationPoint
                out.append(refs)
        return out

    async def _read(self, nodes: list[ua.NodeId], attr: AttributeIds) -> list[ua.DataValue]:
        out: list[ua.DataValue] = []
        for i in range(0, len(nodes), _CHUNK):
            out.extend(await self.client.uaclient.read_attributes(nodes[i : i + _CHUNK], attr))
        return out

    async def _describe(
        self, found: dict[ua.NodeId, tuple[str, ...]], eu: dict[ua.NodeId, dict[str, ua.NodeId]]
    ) -> list[Variable]:
        nodes = list(found)
        types = await self._read(nodes, AttributeIds.DataType)
        values = await self._read(nodes, AttributeIds.Value)
        texts = await self._read(nodes, AttributeIds.Description)
        props = [(var, kind, prop) for var, p in eu.items() for kind, prop in p.items()]
        prop_values = await self._read([p for _, _, p in props], AttributeIds.Value)
        meta: dict[tuple[ua.NodeId, str], Any] = {
            (var, kind): dv.Value.Value if dv.Value is not None else None
            for (var, kind, _), dv in zip(props, prop_values, strict=True)
        }
        type_ids = [t.Value.Value if t.Value is not None else None for t in types]
        names = await self._type_names([t for t in type_ids if isinstance(t, ua.NodeId)])
        out: list[Variable] = []
        for node, type_id, dv, text in zip(nodes, type_ids, values, texts, strict=True):
            unit_info = meta.get((node, "EngineeringUnits"))
            rng = meta.get((node, "EURange"))
            described = text.Value.Value if text.Value is not None else None
            out.append(
                Variable(
                    path=found[node],
                    node=self._ref(node),
                    data_type=names.get(type_id, "?") if isinstance(type_id, ua.NodeId) else "?",
                    numeric=_numeric(dv, type_id),
                    value=_show(dv),
                    status=None if dv.StatusCode is None or dv.StatusCode.is_good() else dv.StatusCode.name,
                    unit=_text(unit_info.DisplayName) if isinstance(unit_info, ua.EUInformation) else None,
                    low=_finite(rng.Low) if isinstance(rng, ua.Range) else None,
                    high=_finite(rng.High) if isinstance(rng, ua.Range) else None,
                    description=_text(described) if isinstance(described, ua.LocalizedText) else None,
                )
            )
        return out

    async def _type_names(self, ids: list[ua.NodeId]) -> dict[ua.NodeId, str]:
        names: dict[ua.NodeId, str] = {}
        custom = sorted({t for t in ids if t.NamespaceIndex != 0}, key=lambda t: t.to_string())
        for t in ids:
            if t.NamespaceIndex == 0 and isinstance(t.Identifier, int):
                names[t] = ObjectIdNames.get(t.Identifier, t.to_string())
        for t, dv in zip(custom, await self._read(custom, AttributeIds.BrowseName), strict=True):
            names[t] = dv.Value.Value.Name if dv.Value is not None and dv.Value.Value else t.to_string()
        return names

    def _ref(self, node: ua.NodeId) -> NodeRef:
        """The node as ``nsu=``-addressed NodeRef (namespace 0 stays plain)."""
        kind: Any
        ident: str | int
        if node.NodeIdType in (ua.NodeIdType.Numeric, ua.NodeIdType.TwoByte, ua.NodeIdType.FourByte):
            kind, ident = "i", int(node.Identifier)
        elif node.NodeIdType == ua.NodeIdType.String:
            kind, ident = "s", str(node.Identifier)
        elif node.NodeIdType == ua.NodeIdType.Guid:
            kind, ident = "g", str(node.Identifier)
        else:
            kind, ident = "b", base64.b64encode(cast(bytes, node.Identifier)).decode("ascii")
        ns = node.NamespaceIndex
        if ns == 0 or ns >= len(self.namespaces):
            return NodeRef(kind, ident, ns)
        return NodeRef(kind, ident, uri=self.namespaces[ns])


def _description(node: ua.NodeId) -> ua.BrowseDescription:
    desc = ua.BrowseDescription()
    desc.NodeId = node
    desc.BrowseDirection = ua.BrowseDirection.Forward
    desc.ReferenceTypeId = _HIERARCHICAL
    desc.IncludeSubtypes = True
    desc.NodeClassMask = ua.NodeClass.Object | ua.NodeClass.Variable
    desc.ResultMask = ua.BrowseResultMask.All
    return desc


def _plain(node: ua.ExpandedNodeId) -> ua.NodeId:
    return ua.NodeId(node.Identifier, node.NamespaceIndex, node.NodeIdType)


def _numeric(dv: ua.DataValue, type_id: Any) -> bool:
    variant = dv.Value
    if variant is not None and variant.VariantType != ua.VariantType.Null:
        return variant.VariantType in _NUMERIC_VARIANTS and not isinstance(variant.Value, list)
    return (
        isinstance(type_id, ua.NodeId)
        and type_id.NamespaceIndex == 0
        and type_id.Identifier in _NUMERIC_TYPES
    )


def _show(dv: ua.DataValue) -> str:
    v = dv.Value.Value if dv.Value is not None else None
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, list):
        return f"array[{len(v)}]"
    text = str(v)
    return text if len(text) <= 24 else text[:23] + "…"


def _text(t: ua.LocalizedText | None) -> str | None:
    return t.Text if t is not None and t.Text else None


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


# -- pure: what is printed ----------------------------------------------------------------------


def source_entry(
    found: Browsed,
    *,
    name: str,
    endpoint: str,
    security: dict[str, Any] | None = None,
    username: str | None = None,
    password: str | None = None,
) -> dict[str, Any]:
    """The ``sources:`` item: connection as given, one tag per numeric variable."""
    numeric = [v for v in found.variables if v.numeric]
    names = unique([tag_name(v.path) for v in numeric])
    tags: list[dict[str, Any]] = []
    for tag, v in zip(names, numeric, strict=True):
        item: dict[str, Any] = {"name": tag, "node": str(v.node)}
        if v.unit:
            item["unit"] = v.unit
        if v.description and v.description != v.path[-1]:  # many servers repeat the name
            item["description"] = v.description
        tags.append(item)
    entry: dict[str, Any] = {"kind": "opcua", "name": name, "endpoint": endpoint}
    if security:
        entry["security"] = security
    if username is not None:
        entry["username"] = username
    if password is not None:
        entry["password"] = password
    entry["tags"] = tags
    return entry


def table(found: Browsed) -> list[str]:
    """One line per variable: suggested tag (or ``-``: not numeric), node, type, unit, range, value."""
    numeric = [v for v in found.variables if v.numeric]
    names = dict(zip((id(v) for v in numeric), unique([tag_name(v.path) for v in numeric]), strict=True))
    rows = [("tag", "node", "type", "unit", "range", "value")]
    for v in found.variables:
        rng = f"{_num(v.low)}..{_num(v.high)}" if v.low is not None or v.high is not None else ""
        value = v.value if v.status is None else f"{v.value} ({v.status})"
        rows.append((names.get(id(v), "-"), str(v.node), v.data_type, v.unit or "", rng, value))
    summary = f"{len(found.variables)} variables, {len(numeric)} tags"
    skipped = len(found.variables) - len(numeric)
    if skipped:
        summary += f" ({skipped} not numeric: left out)"
    if found.truncated:
        summary += f"; stopped after {found.nodes} nodes (raise --max-nodes or narrow --root)"
    return [*columns(rows), summary]


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:g}"
