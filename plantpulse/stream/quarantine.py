"""Where samples the collector runner did not admit go: ``quarantine.jsonl`` in the state dir.

One JSON object per sample, so an operator can look with ``tail``/``jq``: when it arrived,
from which source, why (``ahead``, ``behind``, ``tag-limit``), and the sample itself (times in
ISO-8601 UTC). The file is bounded: past ``max_bytes`` it is renamed to ``quarantine.1.jsonl``
(replacing the previous one) and a new one starts, so at most twice that is kept. Counts per
source and cause are in each source's status; the runner logs once per source and cause.
Written with a flush per call, not fsync'd: this is a diagnostic record, not the data path.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from plantpulse.samples import Quality, Sample
from plantpulse.store.files import open_private, private_dir
from plantpulse.timefmt import iso_ms

__all__ = ["QUARANTINE_FILE", "QuarantineFile"]

log = logging.getLogger(__name__)

QUARANTINE_FILE = "quarantine.jsonl"


class QuarantineFile:
    def __init__(self, directory: Path, max_bytes: int = 16 << 20) -> None:
        self.dir = Path(directory)
        self.path = self.dir / QUARANTINE_FILE
        self.max_bytes = max_bytes
        self._out: IO[bytes] | None = None
        self._size = 0
        self.failed = False

    def write(self, source: str, cause: str, samples: Sequence[Sample], arrived: int) -> None:
        if self.failed:
            return
        lines = b"".join(
            json.dumps(
                {
                    "arrived": iso_ms(arrived),
                    "source": source,
                    "cause": cause,
                    "ts": s.ts,
                    "time": _iso(s.ts),
                    "tag": s.tag,
                    "value": s.value if math.isfinite(s.value) else None,
                    "quality": Quality(s.quality).name.lower(),
                },
                ensure_ascii=False,
            ).encode()
            + b"\n"
            for s in samples
        )
        try:
            out = self._open()
            out.write(lines)
            out.flush()
            self._size += len(lines)
            if self._size >= self.max_bytes:
                self.close()
                self.path.replace(self.dir / "quarantine.1.jsonl")
        except OSError as e:
            self.failed = True  # counted by the runner all the same; one line, not one per sample
            why = f"quarantine file {self.path} cannot be written ({e}); quarantined samples are only counted"
            log.error(why)  # noqa: TRY400  (the message is the error)

    def _open(self) -> IO[bytes]:
        if self._out is None:
            private_dir(self.dir)
            self._out = open_private(self.path, "ab")
            self._size = self._out.tell()
        return self._out

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None


def _iso(ts: int) -> str | None:
    try:
        return iso_ms(ts)
    except (ValueError, OverflowError, OSError):
        return None
