"""Connecting to the brokers: one translation of ``kafka:`` into aiokafka and faust settings,
and the topic layout every role relies on (``plantpulse kafka topics [--create]``).

Errors of aiokafka are translated here into ``KafkaUnavailable`` (retried by the roles) so the
rest of the package never imports aiokafka's exception tree.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

from plantpulse.errors import PlantPulseError
from plantpulse.scaleout.config import KafkaConfig

NS_PER_MS = 1_000_000

__all__ = ["KafkaUnavailable", "TopicSpec", "aiokafka_options", "faust_credentials", "topic_specs"]


class KafkaUnavailable(PlantPulseError):
    """The brokers cannot be reached or refused a request that may succeed later."""


def _ssl_context(cfg: KafkaConfig) -> ssl.SSLContext | None:
    tls = cfg.tls
    if tls is None:
        return None
    from aiokafka.helpers import create_ssl_context

    ctx: ssl.SSLContext = create_ssl_context(
        cafile=str(tls.ca) if tls.ca else None,
        certfile=str(tls.certificate) if tls.certificate else None,
        keyfile=str(tls.key) if tls.key else None,
        password=tls.key_password.get_secret_value() if tls.key_password else None,
    )
    ctx.check_hostname = tls.check_hostname
    return ctx


def aiokafka_options(cfg: KafkaConfig) -> dict[str, Any]:
    """Keyword arguments shared by every aiokafka client of a role (producer, consumer, admin)."""
    ctx = _ssl_context(cfg)
    out: dict[str, Any] = {"bootstrap_servers": list(cfg.brokers), "client_id": f"{cfg.group}-plantpulse"}
    if cfg.sasl is not None:
        out |= {
            "security_protocol": "SASL_SSL" if ctx is not None else "SASL_PLAINTEXT",
            "sasl_mechanism": cfg.sasl.mechanism,
            "sasl_plain_username": cfg.sasl.username,
            "sasl_plain_password": cfg.sasl.password.get_secret_value(),
        }
    elif ctx is not None:
        out["security_protocol"] = "SSL"
    if ctx is not None:
        out["ssl_context"] = ctx
    return out


def faust_credentials(cfg: KafkaConfig) -> Any:
    """``broker_credentials`` for the faust app (None: plaintext)."""
    import faust

    ctx = _ssl_context(cfg)
    if cfg.sasl is not None:
        return faust.SASLCredentials(
            username=cfg.sasl.username,
            password=cfg.sasl.password.get_secret_value(),
            ssl_context=ctx,
            mechanism=cfg.sasl.mechanism,
        )
    if ctx is not None:
        return faust.SSLCredentials(ctx)
    return None


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]
    role: str


def topic_specs(cfg: KafkaConfig) -> list[TopicSpec]:
    """The topics of a deployment. The changelog has as many partitions as the samples topic
    (faust co-partitions them) and is compacted: only each partition's last state matters."""
    retention = str(cfg.topics.retention // NS_PER_MS)
    keep = {"cleanup.policy": "delete", "retention.ms": retention}
    return [
        TopicSpec(cfg.topics.samples, cfg.partitions, keep, "collectors -> evaluators, sinks"),
        TopicSpec(cfg.topics.alerts, cfg.topics.alert_partitions, keep, "evaluators -> sinks"),
        TopicSpec(cfg.changelog_topic, cfg.partitions, {"cleanup.policy": "compact"}, "evaluator state"),
    ]
