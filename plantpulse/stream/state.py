"""The engine snapshot file: what a restart continues from.

One JSON document, ``engine.json`` in the plant's state directory (next to the spool
segments), replaced atomically and fsync'd: a crash leaves either the previous snapshot or
the new one, never a torn file. It holds the engine state, each source's watermark and the
spool position it reflects: on start the engine is restored and the spool records after that
position are evaluated again before new data is taken.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from plantpulse.store.files import private_dir, replace_private
from plantpulse.store.spool import Position

__all__ = ["SNAPSHOT_FILE", "Snapshot", "StateFile"]

log = logging.getLogger(__name__)

SNAPSHOT_FILE = "engine.json"
_VERSION = 1

Snapshot = dict[str, Any]


class StateFile:
    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.path = self.dir / SNAPSHOT_FILE

    def save(self, engine: Snapshot, position: Position, watermarks: dict[str, int], saved_at: int) -> None:
        """Blocking (run it in a thread); ``engine`` must not be shared with a running engine."""
        doc = {
            "version": _VERSION,
            "position": list(position),
            "watermarks": watermarks,
            "saved_at": saved_at,
            "engine": engine,
        }
        private_dir(self.dir)
        replace_private(self.path, json.dumps(doc, ensure_ascii=False).encode(), sync=True)

    def load(self) -> tuple[Snapshot, Position, dict[str, int]] | None:
        """(engine state, position, watermarks), or None when there is no usable snapshot (a
        file that cannot be read is logged and set aside as ``engine.json.bad``)."""
        try:
            doc = json.loads(self.path.read_bytes())
            version = doc.get("version")
            seg, off = doc["position"]
            loaded = (
                doc["engine"],
                (int(seg), int(off)),
                {str(k): int(v) for k, v in doc["watermarks"].items()},
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
