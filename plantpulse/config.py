"""The one schema of ``plant.yaml``: site, sources and their tags, rule files, store, notifications.

Loading is all-or-nothing: every problem (YAML, unknown keys, bad values, missing
``${VAR}``, invalid rule files) is collected and raised together as a ConfigError before
any I/O, each as ``FILE:LINE:COL: where: what``.
"""

from __future__ import annotations

import glob
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from plantpulse import yamlsrc
from plantpulse.api.config import ApiConfig
from plantpulse.approvals.config import ApprovalsSetting
from plantpulse.collectors.admission import Accept
from plantpulse.collectors.modbus_config import ModbusSource
from plantpulse.collectors.mqtt_config import MqttSource
from plantpulse.collectors.opcua_nodeid import NodeRef, parse_node_id
from plantpulse.dashboards.grafana.config import GrafanaConfig
from plantpulse.dashboards.screens import BoardsConfig, check_boards
from plantpulse.errors import ConfigError, Problem
from plantpulse.notifier.links import env_secret_problem
from plantpulse.people.schema import TeamConfig
from plantpulse.scaleout.config import KafkaConfig
from plantpulse.schema import Duration, StrictModel


class Site(StrictModel):
    name: str = "plant"
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (use an IANA name such as Asia/Shanghai)") from None
        return v


class OpcUaTag(StrictModel):
    name: str = Field(description="plantpulse tag name, e.g. line1/weld01/current")
    node: str = Field(
        description="OPC UA NodeId: nsu=<namespace uri>;s=<name> (survives server restarts) or ns=2;s=<name>"
    )
    sampling_interval: Duration | None = Field(
        None, description="per-tag sampling; default: the source's publishing interval"
    )
    deadband: float | None = Field(
        None, ge=0, description="absolute deadband; changes smaller than this are not reported"
    )
    stale_after: Duration | None = Field(None, gt=0, description="watchdog; default: the source's")
    unit: str | None = None
    description: str | None = None

    @field_validator("node")
    @classmethod
    def _node_id(cls, v: str) -> str:
        parse_node_id(v)  # syntax only; nsu= URIs are resolved against the server at connect
        return v

    @property
    def ref(self) -> NodeRef:
        return parse_node_id(self.node)


class OpcUaSecurity(StrictModel):
    policy: Literal["None", "Basic256Sha256"] = "None"
    mode: Literal["None", "Sign", "SignAndEncrypt"] = "None"
    certificate: Path | None = None
    private_key: Path | None = None
    server_certificate: Path | None = None

    @model_validator(mode="after")
    def _consistent(self) -> OpcUaSecurity:
        if (self.policy == "None") != (self.mode == "None"):
            raise ValueError("policy and mode must both be None or both be set")
        if self.policy != "None" and (self.certificate is None or self.private_key is None):
            raise ValueError("a security policy needs certificate and private_key")
        return self


class OpcUaSource(StrictModel):
    kind: Literal["opcua"]
    name: str
    endpoint: str = Field(pattern=r"^opc\.tcp://")
    security: OpcUaSecurity = OpcUaSecurity()
    username: str | None = None
    password: SecretStr | None = None
    publishing_interval: Duration = 100_000_000
    heartbeat: Duration = 1_000_000_000
    timeout: Duration = 5_000_000_000
    stale_after: Duration | None = Field(
        None, gt=0, description="watchdog: a tag silent this long gets one bad marker per outage"
    )
    accept: Accept = Accept()
    tags: list[OpcUaTag] = Field(min_length=1)


Source = Annotated[OpcUaSource | ModbusSource | MqttSource, Field(discriminator="kind")]
"""Every collector kind, told apart by ``kind``."""


class TimescaleConfig(StrictModel):
    """What the PostgreSQL store creates when the ``timescaledb`` extension is present (docs/storage.md)."""

    mode: Literal["auto", "off"] = Field("auto", description="auto: timescaledb when installed; off: never")
    chunk_interval: Duration = Field(86_400_000_000_000, description="hypertable chunk_time_interval")
    compress_after: Duration | None = Field(7 * 86_400_000_000_000, description="compression policy age")
    retain_for: Duration | None = Field(
        365 * 86_400_000_000_000, description="retention policy drop_after on samples; null: keep forever"
    )
    refresh_start: Duration = Field(86_400_000_000_000, description="samples_1m refresh window start_offset")
    refresh_end: Duration = Field(60_000_000_000, description="samples_1m refresh window end_offset")
    refresh_every: Duration = Field(60_000_000_000, description="samples_1m refresh schedule_interval")

    @model_validator(mode="after")
    def _window(self) -> TimescaleConfig:
        if self.refresh_start - self.refresh_end < 120_000_000_000:
            raise ValueError("refresh_start - refresh_end must cover at least two 1-minute buckets")
        if self.chunk_interval <= 0:
            raise ValueError("chunk_interval must be positive")
        return self


class SpoolConfig(StrictModel):
    """The durable local spool that carries writes through store outages (docs/storage.md).

    Its directory is also the process's local state: the notifier's outbox and the engine's
    snapshot live next to the segments, so one directory belongs to exactly one plant."""

    dir: Path | None = Field(
        None, description="directory of the spool segments; default: derived from the store URL"
    )
    max_bytes: int = Field(1 << 30, ge=1 << 20, description="samples are refused (and counted) beyond this")
    segment_bytes: int = Field(16 << 20, ge=1 << 16, description="size at which a new segment file starts")
    fsync: bool = Field(True, description="fsync every record before acknowledging it")
    commit_samples: int = Field(
        50_000, ge=1, description="samples per store transaction at most when several records are pending"
    )
    lock_wait: Duration = Field(
        10_000_000_000,
        description="how long a start waits for a previous plantpulse that still holds the spool",
    )


class StoreConfig(StrictModel):
    url: str = "sqlite:///plantpulse.db"
    pool_size: int = Field(4, ge=1, description="PostgreSQL connection pool size at most")
    connect_timeout: Duration = Field(5_000_000_000, description="how long a connection attempt may take")
    timescale: TimescaleConfig = TimescaleConfig()
    spool: SpoolConfig = SpoolConfig()

    @property
    def state_dir(self) -> Path:
        """The spool directory: samples on their way to the store, the outbox, engine state."""
        return self.spool.dir if self.spool.dir is not None else default_state_dir(self.url)

    @property
    def spool_config(self) -> SpoolConfig:
        """``spool`` with its directory resolved (what ``SpoolWriter`` takes)."""
        return self.spool.model_copy(update={"dir": self.state_dir})


def default_state_dir(url: str) -> Path:
    """Where a store's spool lives unless ``store.spool.dir`` says: ``plant.db`` ->
    ``plant.db.spool/`` beside the database file; PostgreSQL -> ``postgresql-HOST-PORT-DB.spool/``
    in the working directory. Two plants with different stores never share a spool."""
    scheme, _, rest = url.partition("://")
    if scheme.lower() == "sqlite":
        from plantpulse.store.sqlite import parse_sqlite_url

        path = parse_sqlite_url(url)
        if path == ":memory:":
            return Path("plantpulse-memory.spool")
        file = Path(path)
        return file.with_name(file.name + ".spool")
    hostpart = rest.rpartition("@")[2]
    hostport, _, dbname = hostpart.partition("/")
    host, _, port = hostport.partition(":")
    name = f"{scheme.lower()}-{host or 'localhost'}-{port or 5432}-{dbname.partition('?')[0] or 'postgres'}"
    return Path(re.sub(r"[^A-Za-z0-9._-]", "_", name) + ".spool")


class NotificationsConfig(StrictModel):
    urls: list[SecretStr] = Field(
        default_factory=list, description="Apprise URLs that receive every raise and clear"
    )
    timeout: Duration = 5_000_000_000


class StreamConfig(StrictModel):
    batch_max: int = Field(10_000, ge=1, description="samples per micro-batch at most")
    batch_interval: Duration = 50_000_000
    queue_size: int = Field(100_000, ge=1, description="samples held before collectors are made to wait")
    snapshot_interval: Duration = Field(
        10_000_000_000, gt=0, description="how often the engine state is saved (and at every stop)"
    )
    stop_timeout: Duration = Field(
        10_000_000_000, gt=0, description="each component's shutdown is bounded by this"
    )


class PlantConfig(StrictModel):
    site: Site = Site()
    sources: list[Source] = Field(default_factory=list)
    rules: list[str] = Field(default_factory=list, description="rule files or globs, relative to this file")
    kpis: list[str] = Field(default_factory=list, description="KPI files or globs, relative to this file")
    store: StoreConfig = StoreConfig()
    notifications: NotificationsConfig = NotificationsConfig()
    stream: StreamConfig = StreamConfig()
    team: TeamConfig = TeamConfig()  # people, roster, escalation (docs/people.md)
    api: ApiConfig | None = None  # acknowledge links and the HTTP API (plantpulse/api)
    grafana: GrafanaConfig | None = None  # dashboards generate | push (docs/dashboards.md)
    boards: BoardsConfig | None = None  # the shop-floor board's screens (docs/dashboards.md)
    approvals: ApprovalsSetting = None  # rule and KPI changes through sign-off (docs/approvals.md)
    kafka: KafkaConfig | None = None  # run --role collect|evaluate|sink (docs/scale-out.md)

    @model_validator(mode="after")
    def _unique(self) -> PlantConfig:
        seen: set[str] = set()
        for src in self.sources:
            if src.name in seen:
                raise ValueError(f"source name {src.name!r} is used twice")
            seen.add(src.name)
        tags: set[str] = set()
        for src in self.sources:
            for tag in src.tags:
                if tag.name in tags:
                    raise ValueError(f"tag {tag.name!r} is read by two sources")
                tags.add(tag.name)
        if self.grafana is not None and self.store.url.partition("://")[0].lower() not in (
            "postgresql",
            "postgres",
        ):
            msg = "Grafana reads the PostgreSQL store; store.url is not postgresql://..."
            raise ValidationError.from_exception_data(
                "PlantConfig",
                [InitErrorDetails(type=PydanticCustomError("store", msg), loc=("grafana",), input=None)],
            )
        return self


class LoadedConfig(StrictModel):
    """A validated config plus the rule and KPI files it resolved to (absolute paths)."""

    path: Path
    plant: PlantConfig
    rule_files: list[Path]
    kpi_files: list[Path] = Field(default_factory=list)
    warnings: list[Problem] = Field(default_factory=list)
    """Findings that do not stop a run (``check`` prints them): certificates out of validity."""


NO_SOURCES = (
    "a plant needs at least one OPC UA, Modbus or MQTT source under sources: "
    "(plantpulse discover writes one; see docs/first-device.md)"
)


def load_config(path: str | Path, *, need_sources: bool = False) -> LoadedConfig:
    """Validate ``plant.yaml`` and every rule and KPI file it names (KPIs against the team and
    the rule ids); raise ConfigError with all problems.

    ``need_sources``: a plant that collects nothing is a problem too (``run`` and ``check``:
    an empty or forgotten file must not pass as a plant; ``ack -c`` only wants the store)."""
    from plantpulse.kpi.loader import load_kpi_files
    from plantpulse.rules.loader import load_rule_files

    doc = yamlsrc.load(path, interpolate_env=True)
    plant = yamlsrc.validate(PlantConfig, doc)
    base = Path(path).resolve().parent
    problems: list[Problem] = []
    secret = plant.team.links.secret
    if (why := env_secret_problem(secret.get_secret_value() if secret else None, os.environ)) is not None:
        problems.append(doc.problem(("team", "links"), why, "team.links"))  # run would fail on it

    def expand(key: str, what: str) -> list[Path]:
        files: list[Path] = []
        for i, pattern in enumerate(getattr(plant, key)):
            matches = sorted(glob.glob(str(base / pattern)))
            if not matches:
                problems.append(doc.problem((key, i), f"no {what} file matches {pattern!r}", key))
            files.extend(Path(m) for m in matches)
        return files

    files, kpi_files = expand("rules", "rule"), expand("kpis", "KPI")
    if plant.approvals is not None:
        from plantpulse.approvals.config import problems as approval_problems
        from plantpulse.approvals.config import relative

        names = [relative(f, base) for f in (*files, *kpi_files)]
        problems += approval_problems(
            plant.approvals,
            plant.team,
            names,
            lambda p, what: doc.problem(("approvals", *p), what, "approvals"),
        )
    if problems:
        raise ConfigError(problems)
    rule_ids: set[str] | None = None
    try:
        rule_ids = {r.id for r in load_rule_files(files)}
    except ConfigError as e:
        problems.extend(e.problems)
    kpi_ids: set[str] | None = None
    try:
        kpi_ids = {k.id for k in load_kpi_files(kpi_files, team=plant.team, rule_ids=rule_ids).kpis}
    except ConfigError as e:
        problems.extend(e.problems)
    if plant.boards is not None:
        names = [t.name for src in plant.sources for t in src.tags]
        known = not any(isinstance(src, MqttSource) for src in plant.sources)  # MQTT discovers tags
        problems.extend(check_boards(plant.boards, doc, names, kpi_ids, tags_known=known))
    if problems:
        raise ConfigError(problems)
    if need_sources and not plant.sources:  # last: what is written is fine, but nothing is collected
        empty = doc.data is None  # nothing but comments and blank lines
        what = f"the file is empty; {NO_SOURCES}" if empty else f"no sources; {NO_SOURCES}"
        raise ConfigError([doc.problem(("sources",), what)])
    warnings = certificate_warnings(plant, doc, datetime.now(UTC))
    return LoadedConfig(
        path=Path(path).resolve(), plant=plant, rule_files=files, kpi_files=kpi_files, warnings=warnings
    )


def certificate_warnings(plant: PlantConfig, doc: yamlsrc.Document, now: datetime) -> list[Problem]:
    """OPC UA certificates that cannot be read or are outside their validity at ``now``.

    Warnings, not errors: ``check`` may run where the deployment's files are not, and a
    certificate that expires tomorrow is valid today; the collector reports the refusal itself."""
    from plantpulse.collectors.opcua_certs import load_certificate, validity_problem

    out: list[Problem] = []
    for i, src in enumerate(plant.sources):
        if not isinstance(src, OpcUaSource):
            continue
        sec = src.security
        for key, file, who in (
            ("certificate", sec.certificate, "client certificate"),
            ("server_certificate", sec.server_certificate, "pinned server certificate"),
        ):
            if file is None:
                continue
            where = ("sources", i, "security", key)
            label = f"warning: sources.{i}.security.{key}"
            try:
                cert = load_certificate(file)
            except OSError as e:
                out.append(doc.problem(where, f"cannot read the {who} {file}: {e.strerror}", label))
                continue
            except ValueError:
                out.append(doc.problem(where, f"the {who} {file} is not a PEM or DER certificate", label))
                continue
            why = validity_problem(cert, now)
            if why is not None:
                refusal = "servers refuse it" if key == "certificate" else "the server must present a new one"
                what = f"{who} {file} {why}: {refusal} (BadCertificateTimeInvalid)"
                out.append(doc.problem(where, what, label))
    return out
