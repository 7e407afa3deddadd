"""The ``grafana:`` section of ``plant.yaml``: where Grafana is, its token, folder and data source.

Everything here is optional: ``plantpulse dashboards generate`` works from the plant alone,
and ``push`` takes ``--grafana URL`` / ``--token-env VAR`` on the command line. Secrets never
live in the file: the token is a ``${VAR}`` reference, the database password is named by the
environment variable Grafana (provisioning) or ``push`` reads it from.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, SecretStr, field_validator

from plantpulse.schema import Duration, StrictModel

Flavor = Literal["timescale", "plain"]
"""Which SQL the panels use: ``time_bucket`` (TimescaleDB) or ``date_bin`` (plain PostgreSQL)."""

_UID = re.compile(r"[A-Za-z0-9_-]{1,40}")
_ENV = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HOST_PORT = re.compile(
    r"[^\s/:]+(:\d{1,5})?|\[[0-9A-Fa-f:]+\](:\d{1,5})?|/\S+"
)  # host:port, [v6]:port, /socket


def check_uid(v: str) -> str:
    """Grafana uids: at most 40 letters, digits, ``-`` or ``_``."""
    if not _UID.fullmatch(v):
        raise ValueError(f"{v!r} is not a Grafana uid (1-40 letters, digits, '-' or '_')")
    return v


Uid = Annotated[str, AfterValidator(check_uid)]


class FolderConfig(StrictModel):
    uid: Uid = Field("plantpulse", description="folder uid the dashboards go into")
    title: str = Field("PlantPulse", min_length=1, description="folder title shown in Grafana")


class DatasourceConfig(StrictModel):
    """Grafana's PostgreSQL data source; connection parts default to the store URL's."""

    name: str = Field("PlantPulse", min_length=1, description="data source name in Grafana")
    uid: Uid = Field("plantpulse", description="data source uid the panels refer to")
    url: str | None = Field(
        None, description="host:port as Grafana reaches the database; default: the store URL's"
    )
    database: str | None = Field(None, description="database name; default: the store URL's")
    user: str | None = Field(None, description="read-only user for Grafana; default: the store URL's")
    password_env: str = Field(
        "PLANTPULSE_PG_PASSWORD",
        description="environment variable holding the password (provisioning and push read it)",
    )
    sslmode: Literal["disable", "require", "verify-ca", "verify-full"] = "disable"

    @field_validator("password_env")
    @classmethod
    def _env_name(cls, v: str) -> str:
        if not _ENV.fullmatch(v):
            raise ValueError(f"{v!r} is not an environment variable name")
        return v

    @field_validator("url")
    @classmethod
    def _host_port(cls, v: str | None) -> str | None:
        if v is not None and not _HOST_PORT.fullmatch(v):
            raise ValueError(
                "url is host:port (e.g. db.plant.local:5432) or a socket directory,"
                " without scheme or database"
            )
        return v


class GrafanaConfig(StrictModel):
    url: str | None = Field(None, description="Grafana root URL for push; --grafana overrides")
    token: SecretStr | None = Field(
        None, description="service-account token; write ${GRAFANA_TOKEN}; --token-env overrides"
    )
    timeout: Duration = Field(10_000_000_000, gt=0, description="per-request timeout of push")
    folder: FolderConfig = FolderConfig()
    datasource: DatasourceConfig = DatasourceConfig()
    flavor: Literal["auto", "timescale", "plain"] = Field(
        "auto",
        description="auto: plain when store.timescale.mode is off, else the layout the store recorded",
    )
    uid_prefix: str = Field("plantpulse", description="dashboard uids are <prefix>-overview, -asset, ...")
    dashboards_path: str = Field(
        "/var/lib/grafana/dashboards/plantpulse",
        description="where Grafana sees the generated dashboards directory (file provisioning)",
    )
    operator_role: str = Field(
        "operator", min_length=1, description="the roster role whose assignments are operator positions"
    )

    @field_validator("url")
    @classmethod
    def _http(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", v):
            raise ValueError("url is Grafana's root URL, e.g. http://grafana.plant.local:3000")
        return v

    @field_validator("uid_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        check_uid(v + "-overview")
        return v
