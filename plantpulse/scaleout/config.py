"""The ``kafka:`` section of ``plant.yaml``: brokers, topics, security and the evaluators' pacing.

Every role (``run --role collect|evaluate|sink``) reads the same section, so the partition
count, the topic names and the group names agree by construction. Secrets are ``${VAR}``
references, expanded when the file is loaded and held as ``SecretStr``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator

from plantpulse.schema import Duration, StrictModel

__all__ = ["KafkaConfig", "KafkaSasl", "KafkaTls", "KafkaTopics"]

_HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:]+\]|[^\s:/\[\]]+):\d{1,5}$")
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,200}$")


class KafkaTopics(StrictModel):
    samples: str = Field("plantpulse.samples", description="sample batches and watermarks, by partition")
    alerts: str = Field("plantpulse.alerts", description="alert transitions, keyed by alert id")
    alert_partitions: int = Field(4, ge=1, le=10_000, description="partitions of the alerts topic")
    retention: Duration = Field(
        7 * 24 * 3600 * 1_000_000_000, gt=0, description="how long both topics keep messages (sinks replay)"
    )

    @field_validator("samples", "alerts")
    @classmethod
    def _legal(cls, v: str) -> str:
        if not _TOPIC.match(v) or v in (".", ".."):
            raise ValueError(f"{v!r} is not a Kafka topic name (letters, digits, '.', '_', '-')")
        return v


class KafkaSasl(StrictModel):
    mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    username: str = Field(min_length=1)
    password: SecretStr = Field(description="write ${VAR}: the password never lives in the file")


class KafkaTls(StrictModel):
    ca: Path | None = Field(None, description="CA bundle (PEM) the brokers' certificates chain to")
    certificate: Path | None = Field(None, description="client certificate (PEM) for mutual TLS")
    key: Path | None = Field(None, description="the client certificate's private key (PEM)")
    key_password: SecretStr | None = None
    check_hostname: bool = True


class KafkaConfig(StrictModel):
    brokers: list[str] = Field(min_length=1, description="bootstrap brokers, host:port")
    group: str = Field(
        "plantpulse", min_length=1, description="prefix of consumer groups and of the state changelog topic"
    )
    partitions: int = Field(
        8, ge=1, le=10_000, description="partitions of the samples topic: the most evaluators that share work"
    )
    replication: int = Field(1, ge=1, le=16, description="replication factor of the topics created")
    topics: KafkaTopics = KafkaTopics()
    sasl: KafkaSasl | None = None
    tls: KafkaTls | None = None
    linger: Duration = Field(
        50_000_000, gt=0, description="collectors: how long samples wait to travel in one batch"
    )
    heartbeat: Duration = Field(
        1_000_000_000, gt=0, description="collectors: how often every partition hears the watermark"
    )
    checkpoint: Duration = Field(
        5_000_000_000,
        gt=0,
        description="evaluators: how often partition state goes to the changelog (what a takeover replays)",
    )
    session_timeout: Duration = Field(
        10_000_000_000, ge=1_000_000_000, description="a worker silent this long loses its partitions"
    )

    @field_validator("brokers")
    @classmethod
    def _host_port(cls, v: list[str]) -> list[str]:
        for b in v:
            if not _HOST_PORT.match(b):
                raise ValueError(f"broker {b!r} is not host:port")
        return v

    @field_validator("group")
    @classmethod
    def _group(cls, v: str) -> str:
        if not _TOPIC.match(v):
            raise ValueError(f"{v!r} must be letters, digits, '.', '_' or '-' (it names topics)")
        return v

    @property
    def changelog_topic(self) -> str:
        """faust names a table's changelog ``<app id>-<table>-changelog``."""
        return f"{self.group}-evaluate-{STATE_TABLE}-changelog"


STATE_TABLE = "partition-state"
"""The faust table holding each samples partition's evaluation state (one key per partition)."""
