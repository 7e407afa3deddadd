"""``plantpulse kafka topics [--create]``: compare the brokers' topics with the deployment's layout
(``client.topic_specs``) and create what is missing, with its partitions and cleanup policy."""

from __future__ import annotations

from dataclasses import dataclass

from plantpulse.scaleout.client import KafkaUnavailable, TopicSpec, aiokafka_options, topic_specs
from plantpulse.scaleout.config import KafkaConfig

__all__ = ["TopicState", "ensure_topics"]


@dataclass(frozen=True, slots=True)
class TopicState:
    spec: TopicSpec
    partitions: int | None  # on the brokers; None: missing
    created: bool = False

    @property
    def ok(self) -> bool:
        return self.partitions == self.spec.partitions

    @property
    def status(self) -> str:
        if self.created:
            return "created"
        if self.partitions is None:
            return "missing"
        if self.partitions != self.spec.partitions:
            return f"has {self.partitions} partitions, the deployment needs {self.spec.partitions}"
        return "ok"


async def ensure_topics(cfg: KafkaConfig, *, create: bool) -> list[TopicState]:
    """The state of every topic of the deployment, after creating the missing ones if asked.
    A topic with another partition count is reported, never changed (that would move tags)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import KafkaError

    admin = AIOKafkaAdminClient(**aiokafka_options(cfg))
    try:
        await admin.start()
        existing = await _partitions(admin, [s.name for s in topic_specs(cfg)])
        out: list[TopicState] = []
        for spec in topic_specs(cfg):
            have = existing.get(spec.name)
            if have is None and create:
                await admin.create_topics(
                    [NewTopic(spec.name, spec.partitions, cfg.replication, topic_configs=spec.config)]
                )
                out.append(TopicState(spec, spec.partitions, created=True))
            else:
                out.append(TopicState(spec, have))
        return out
    except KafkaError as e:
        raise KafkaUnavailable(f"brokers {', '.join(cfg.brokers)}: {e}") from e
    finally:
        await admin.close()


async def _partitions(admin: object, names: list[str]) -> dict[str, int]:
    listed = set(await admin.list_topics())  # type: ignore[attr-defined]
    wanted = [n for n in names if n in listed]
    if not wanted:
        return {}
    described = await admin.describe_topics(wanted)  # type: ignore[attr-defined]
    return {d["topic"]: len(d["partitions"]) for d in described if not d.get("error_code")}
