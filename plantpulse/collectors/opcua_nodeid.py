"""OPC UA NodeId strings as plant.yaml writes them: parsed and checked without asyncua.

Two forms name a node (OPC UA Part 6 §5.3.1.10-11):

* ``ns=<index>;<kind>=<id>``: the namespace by its index in the server's namespace array.
  Short, but an index is only valid for one server build: servers may reorder their namespaces
  when they restart or are reconfigured.
* ``nsu=<uri>;<kind>=<id>``: the namespace by its URI, which survives that. The collector looks
  the URI up in the server's namespace array at every (re)connect.

``<kind>`` is ``i`` (UInt32), ``s`` (string: everything up to the end, ``;`` included), ``g``
(GUID) or ``b`` (base64 ByteString). Without ``ns``/``nsu`` the node is in namespace 0 (the
OPC UA standard nodes). ``srv=`` (a node on another server) is refused: a collector reads one
server. ``;`` inside a URI is written ``%3B`` (and ``%`` as ``%25``).

Pure: ``parse_node_id`` raises ValueError with a message fit for ``FILE:LINE:COL``; ``NodeRef``
formats itself back in either form.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from dataclasses import dataclass
from typing import Literal, cast

__all__ = ["NodeRef", "parse_node_id"]

IdKind = Literal["i", "s", "g", "b"]

_FORMS = "write ns=<index>;s=<name>, nsu=<namespace uri>;s=<name>, or i=, g=, b= instead of s="
_KEY = re.compile(r"\s*(nsu|ns|srv|i|s|g|b)\s*=")
_MAX_UINT32 = 0xFFFF_FFFF


@dataclass(frozen=True, slots=True)
class NodeRef:
    """A parsed NodeId: its namespace (index or URI, never both) and its identifier."""

    kind: IdKind
    identifier: str | int
    """int for ``i``; the text after ``s=``, ``g=`` or ``b=`` otherwise (GUID and base64 checked)."""
    namespace: int = 0
    uri: str | None = None

    def with_index(self, index: int) -> NodeRef:
        """The same node addressed by namespace index (the URI resolved on one server)."""
        return NodeRef(self.kind, self.identifier, index, None)

    def __str__(self) -> str:
        if self.uri is not None:
            prefix = f"nsu={_escape(self.uri)};"
        else:
            prefix = f"ns={self.namespace};" if self.namespace else ""
        return f"{prefix}{self.kind}={self.identifier}"


def parse_node_id(text: str) -> NodeRef:
    """``ns=2;s=line1/weld01/current``, ``nsu=urn:x;i=1001``, ``i=2258`` -> NodeRef."""
    rest = text.strip()
    if not rest:
        raise ValueError(f"a node id cannot be empty; {_FORMS}")
    namespace: int = 0
    uri: str | None = None
    m = _KEY.match(rest)
    if m is None:
        raise ValueError(f"invalid node id {text!r}: {_FORMS}")
    key = m.group(1)
    if key == "srv":
        raise ValueError(f"invalid node id {text!r}: srv= (a node on another server) is not supported")
    if key in ("ns", "nsu"):
        value, sep, rest = rest[m.end() :].partition(";")
        if not sep:
            raise ValueError(f"invalid node id {text!r}: {key}= must be followed by ;<kind>=<id>; {_FORMS}")
        value = value.strip()
        if key == "ns":
            if not value.isdigit() or int(value) > 0xFFFF:
                raise ValueError(f"invalid node id {text!r}: ns= takes a namespace index 0-65535")
            namespace = int(value)
        else:
            if not value:
                raise ValueError(f"invalid node id {text!r}: nsu= needs a namespace URI")
            uri = _unescape(value)
        m = _KEY.match(rest)
        if m is None or m.group(1) not in ("i", "s", "g", "b"):
            raise ValueError(f"invalid node id {text!r}: after {key}= comes i=, s=, g= or b=")
    kind = cast(IdKind, m.group(1))  # i, s, g or b: the namespace keys were consumed above
    value = rest[m.end() :]
    return NodeRef(kind, _identifier(text, kind, value), namespace, uri)


def _identifier(text: str, kind: IdKind, value: str) -> str | int:
    if kind == "s":
        if not value:
            raise ValueError(f"invalid node id {text!r}: s= needs a name")
        return value  # a string id is everything to the end, ';' and spaces included
    value = value.strip()
    if kind == "i":
        if not value.isdigit() or int(value) > _MAX_UINT32:
            raise ValueError(f"invalid node id {text!r}: i= takes a number 0-4294967295")
        return int(value)
    if kind == "g":
        try:
            uuid.UUID(value)
        except ValueError:
            raise ValueError(
                f"invalid node id {text!r}: g= takes a GUID like 09087e75-8e5e-499b-954f-f2a9603db28a"
            ) from None
        return value
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"invalid node id {text!r}: b= takes base64 text") from None
    if not value:
        raise ValueError(f"invalid node id {text!r}: b= needs base64 text")
    return value


def _escape(uri: str) -> str:
    return uri.replace("%", "%25").replace(";", "%3B")


def _unescape(uri: str) -> str:
    return re.sub(r"%(25|3[Bb])", lambda m: "%" if m.group(1) == "25" else ";", uri)
