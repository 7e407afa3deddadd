"""What grafana-foundation-sdk lacks for the PostgreSQL data source, written as SDK models.

The SDK (pinned in pyproject.toml, Grafana 11.6 schema) types queries per data source plugin
through its "dataquery variants" but ships none for ``grafana-postgresql-datasource``, and
types an annotation's ``target`` only for the built-in Grafana annotations. Both gaps are
filled here the SDK's own way: ``SqlQuery`` is a ``Dataquery`` variant registered with the
SDK runtime (so ``Dashboard.from_json`` reads panel targets back as ``SqlQuery``), and
``SqlAnnotationTarget`` is an ``AnnotationTarget`` carrying the SQL fields, which
``dashboard_from_json`` restores after the SDK's own parse. The JSON is what Grafana's SQL
data sources store: ``{refId, rawSql, format, editorMode: "code", rawQuery: true}``.
"""

from __future__ import annotations

import json
from typing import Any, Literal, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import plugins as cogplugins
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard

PLUGIN = "grafana-postgresql-datasource"
"""Grafana's id of its PostgreSQL data source (Grafana 11; ``postgres`` is an older alias)."""

Format = Literal["time_series", "table"]


class SqlQuery(cogvariants.Dataquery):
    """A code-mode query of Grafana's PostgreSQL data source."""

    def __init__(
        self,
        ref_id: str = "A",
        raw_sql: str = "",
        format_val: Format = "table",
        datasource: dashboard.DataSourceRef | None = None,
        hide: bool | None = None,
    ) -> None:
        self.ref_id = ref_id
        self.raw_sql = raw_sql
        self.format_val: Format = format_val
        self.datasource = datasource
        self.hide = hide

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "refId": self.ref_id,
            "rawSql": self.raw_sql,
            "format": self.format_val,
            "editorMode": "code",
            "rawQuery": True,
        }
        if self.datasource is not None:
            payload["datasource"] = self.datasource
        if self.hide is not None:
            payload["hide"] = self.hide
        return payload

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        ds = data.get("datasource")
        return cls(
            ref_id=data.get("refId", "A"),
            raw_sql=data.get("rawSql", ""),
            format_val=data.get("format", "table"),
            datasource=dashboard.DataSourceRef.from_json(ds) if ds is not None else None,
            hide=data.get("hide"),
        )


class SqlQueryBuilder(cogbuilder.Builder[SqlQuery]):
    def __init__(self) -> None:
        self._internal = SqlQuery()

    def build(self) -> SqlQuery:
        return self._internal

    def ref_id(self, ref_id: str) -> Self:
        self._internal.ref_id = ref_id
        return self

    def raw_sql(self, raw_sql: str) -> Self:
        self._internal.raw_sql = raw_sql
        return self

    def format(self, format_val: Format) -> Self:
        self._internal.format_val = format_val
        return self

    def datasource(self, datasource: dashboard.DataSourceRef) -> Self:
        self._internal.datasource = datasource
        return self


class SqlAnnotationTarget(dashboard.AnnotationTarget):
    """An annotation query's SQL: rows with ``time``, optional ``timeend``, ``text``, ``tags``."""

    def __init__(self, raw_sql: str = "", ref_id: str = "Anno") -> None:
        super().__init__()
        self.raw_sql = raw_sql
        self.ref_id = ref_id

    def to_json(self) -> dict[str, object]:
        return {
            "refId": self.ref_id,
            "rawSql": self.raw_sql,
            "format": "table",
            "editorMode": "code",
            "rawQuery": True,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(raw_sql=data.get("rawSql", ""), ref_id=data.get("refId", "Anno"))


class SqlAnnotationTargetBuilder(cogbuilder.Builder[SqlAnnotationTarget]):
    def __init__(self, raw_sql: str) -> None:
        self._internal = SqlAnnotationTarget(raw_sql)

    def build(self) -> SqlAnnotationTarget:
        return self._internal


def register() -> None:
    """The SDK's default plugin variants plus ``SqlQuery`` (idempotent)."""
    cogplugins.register_default_plugins()
    cogruntime.register_dataquery_variant(cogruntime.DataqueryConfig(PLUGIN, SqlQuery.from_json))


def to_json(model: object) -> dict[str, Any]:
    """An SDK model as plain JSON data (what Grafana stores and the API takes)."""
    data: dict[str, Any] = json.loads(json.dumps(model, cls=JSONEncoder))
    return data


def dashboard_from_json(data: dict[str, Any]) -> dashboard.Dashboard:
    """Parse dashboard JSON into the SDK's models, SQL queries and annotation targets typed."""
    register()
    model = dashboard.Dashboard.from_json(data)
    raw_annotations = data.get("annotations", {}).get("list", [])
    if model.annotations is not None and model.annotations.list_val:
        for parsed, raw in zip(model.annotations.list_val, raw_annotations, strict=True):
            target = raw.get("target")
            if isinstance(target, dict) and "rawSql" in target:
                parsed.target = SqlAnnotationTarget.from_json(target)
    return model
