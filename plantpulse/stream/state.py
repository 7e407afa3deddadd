"""The engine snapshot file: what a restart continues from.

One JSON document, ``engine.json`` in the plant's state directory (next to the spool
segments), replaced atomically and fsync'd: a crash leaves either the previous snapshot or
the new one, never a torn file. It holds the engine state, each source's watermark and the
spool position it reflects: on start the engine is restored and the spool records after that
position are evaluated again before new data is taken.

With approvals on it also holds the change that made the rules the engine ran (``ruleset``),
so a start under another approved version reloads instead of resuming a changed condition's
state, and, in the snapshot a switch saves, the closing events of that switch (``closing``):
they are handed on after the save, and a crash in between must not lose them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from plantpulse.alerts import AlertEvent
from plantpulse.store.files import private_dir, replace_private
from plantpulse.store.spool import Position

__all__ = ["SNAPSHOT_FILE", "Saved", "Snapshot", "StateFile"]

log = logging.getLogger(__name__)

SNAPSHOT_FILE = "engine.json"
_VERSION = 1

Snapshot = dict[str, Any]


@dataclass(frozen=True)
class Saved:
    """A loaded snapshot: what ``StateFile.save`` was given."""

    engine: Snapshot
    position: Position
    watermarks: dict[str, int]
    ruleset: int | None = None  # the approved change the engine ran (None: approvals off)
    closing: list[AlertEvent] = field(default_factory=list)  # a switch's, maybe not handed on yet


class StateFile:
    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.path = self.dir / SNAPSHOT_FILE

    def save(
        self,
        engine: Snapshot,
        position: Position,
        watermarks: dict[str, int],
        saved_at: int,
        *,
        ruleset: int | None = None,
        closing: Sequence[AlertEvent] = (),
    ) -> None:
        """Blocking (run it in a thread); ``engine`` must not be shared with a running engine."""
        doc = {
            "version": _VERSION,
            "position": list(position),
            "watermarks": watermarks,
            "saved_at": saved_at,
            "ruleset": ruleset,
            "closing": [asdict(e) for e in closing],
            "engine": engine,
        }
        private_dir(self.dir)
        replace_private(self.path, json.dumps(doc, ensure_ascii=False).encode(), sync=True)

    def load(self) -> Saved | None:
        """The snapshot, or None when there is no usable one (a file that cannot be read is
        logged and set aside as ``engine.json.bad``). A snapshot from before approvals (no
        ``ruleset``, no ``closing``) loads with neither."""
        try:
            doc = json.loads(self.path.read_bytes())
            version = doc.get("version")
            seg, off = doc["position"]
            ruleset = doc.get("ruleset")
            loaded = Saved(
                doc["engine"],
                (int(seg), int(off)),
                {str(k): int(v) for k, v in doc["watermarks"].items()},
                None if ruleset is None else int(ruleset),
                [AlertEvent.from_dict(e) for e in doc.get("closing", [])],
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            self._set_aside(str(e))
            return None
        if version != _VERSION:
            self._set_aside(f"version {version!r}, this plantpulse reads {_VERSION}")
            return None
        return loaded

    def _set_aside(self, why: str) -> None:
        bad = self.path.with_name(SNAPSHOT_FILE + ".bad")
        log.error(
            "engine snapshot %s cannot be used (%s); starting without it, kept as %s", self.path, why, bad
        )
        self.path.replace(bad)
