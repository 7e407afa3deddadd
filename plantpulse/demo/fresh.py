"""Each ``plantpulse demo`` starts afresh, unless ``--resume``.

The demo's store and its state directory (spool, notifier outbox, engine snapshot: beside the
SQLite file, ``plantpulse-demo.db.spool/``) would otherwise carry the previous run into this
one: its active alerts restored, its unacknowledged ones escalating again to people who are
watching a new run. So a fresh start deletes them, but only what a demo wrote: the state
directory holds a ``DEMO`` marker, and a store without one (a real plant's, given by mistake
with ``--store``) is refused, never deleted. A PostgreSQL store is never emptied: only the
demo's state is removed, and the banner says the store keeps the previous runs' alerts.
Before anything is deleted the spool's lock is taken, so a demo still running is named
(SpoolInUse) rather than pulled from under its feet.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import shutil
from collections.abc import Iterator
from pathlib import Path

from plantpulse.config import StoreConfig
from plantpulse.errors import AccessDenied, PlantPulseError, SpoolInUse
from plantpulse.store.files import open_private, private_dir
from plantpulse.store.spool import lock_holder
from plantpulse.store.sqlite import parse_sqlite_url

__all__ = ["MARKER", "NotADemoStore", "Start", "prepare"]

MARKER = "DEMO"
_MARKER_TEXT = b"written by plantpulse demo: the next demo run deletes this store and its state\n"


class Start(enum.Enum):
    NEW = "new"  # nothing from a previous run
    FRESH = "fresh"  # a previous run's store and state were removed
    FRESH_STATE = "fresh-state"  # its state was removed; the (PostgreSQL) store keeps its history
    RESUMED = "resumed"  # --resume: the previous run goes on


class NotADemoStore(PlantPulseError):
    """``--store`` names a store the demo did not write: it is neither deleted nor used."""

    def __init__(self, where: Path) -> None:
        super().__init__(f"demo: {where} was not written by plantpulse demo (no {MARKER} marker)")
        self.hint = "give the demo a store of its own with --store, or --resume to run on this one as it is"


def _database(store: StoreConfig) -> Path | None:
    if not store.url.lower().startswith("sqlite:"):
        return None
    path = parse_sqlite_url(store.url)
    return None if path == ":memory:" else Path(path)


@contextlib.contextmanager
def _locked(state: Path) -> Iterator[None]:
    """Hold the spool's lock while its directory is inspected and removed."""
    lock = state / "LOCK"
    if not lock.exists():
        yield
        return
    with lock.open("rb") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise SpoolInUse(state, lock_holder(lock)) from None
        yield


def prepare(store: StoreConfig, *, resume: bool) -> Start:
    """Make the store and state directory ready for a run: removed (fresh) or kept (resume)."""
    state = store.state_dir
    db = _database(store)
    files = [db, *(db.with_name(db.name + s) for s in ("-wal", "-shm", "-journal"))] if db else []
    found = state.exists() or any(f.exists() for f in files)
    with _locked(state):
        if resume:
            start = Start.RESUMED if found else Start.NEW
        elif not found:
            start = Start.NEW
        elif not (state / MARKER).exists():
            raise NotADemoStore(db if db is not None and db.exists() else state)
        else:
            shutil.rmtree(state)
            for f in files:
                f.unlink(missing_ok=True)
            start = Start.FRESH if db is not None else Start.FRESH_STATE
    if start is not Start.RESUMED:
        try:
            private_dir(state)
            with open_private(state / MARKER, "wb") as out:
                out.write(_MARKER_TEXT)
        except OSError as e:
            if AccessDenied.is_denied(e):
                raise AccessDenied("the spool and state directory", state, e) from e
            raise
    return start
