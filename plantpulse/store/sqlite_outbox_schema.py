"""Tables and row codecs of the SQLite outbox (plantpulse.store.sqlite_outbox), apart so the
class reads as its transactions. Migrations: ``user_version`` says which layout a file has."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from plantpulse.notifier.outbox import Ack, OutboxRow

SCHEMA_VERSION = 1

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS notify_state (
        alert_id TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        info TEXT NOT NULL,
        active INTEGER NOT NULL,
        error TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS notify_state_active ON notify_state (active) WHERE active = 1",
    "CREATE TABLE IF NOT EXISTS notify_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        alert_id TEXT NOT NULL,
        step INTEGER NOT NULL,
        kind TEXT NOT NULL,
        recipient TEXT NOT NULL,
        channel TEXT NOT NULL,
        title TEXT NOT NULL,
        body TEXT NOT NULL,
        notify_type TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        status TEXT NOT NULL,
        msg_key TEXT NOT NULL,
        meta TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX IF NOT EXISTS outbox_open ON outbox (status, channel, id)",
    "CREATE INDEX IF NOT EXISTS outbox_alert ON outbox (alert_id, id)",
    """CREATE TABLE IF NOT EXISTS deliveries (
        id INTEGER PRIMARY KEY,
        outbox_id INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        at INTEGER NOT NULL,
        channel TEXT NOT NULL,
        recipient TEXT NOT NULL,
        status TEXT NOT NULL,
        response TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS deliveries_row ON deliveries (outbox_id, id)",
    """CREATE TABLE IF NOT EXISTS used_nonces (
        nonce TEXT PRIMARY KEY,
        alert_id TEXT NOT NULL,
        person TEXT NOT NULL,
        at INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS acks (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        alert_id TEXT NOT NULL UNIQUE,
        acked_by TEXT NOT NULL,
        at INTEGER NOT NULL,
        comment TEXT,
        source TEXT NOT NULL,
        forwarded INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX IF NOT EXISTS acks_unforwarded ON acks (seq) WHERE forwarded = 0",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
]

ROW_COLUMNS = (
    "alert_id, step, kind, recipient, channel, title, body, notify_type, created_at, status, msg_key, meta,"
    " id, attempts"
)
INSERT_ROW = (
    "INSERT INTO outbox (alert_id, step, kind, recipient, channel, title, body, notify_type, created_at,"
    " status, msg_key, meta) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"
)
ACK_COLUMNS = "alert_id, acked_by, at, comment, source, seq, forwarded"
IN_JSON = "(SELECT value FROM json_each(?))"  # one bound JSON array instead of N placeholders


def finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return "NaN" if math.isnan(obj) else ("Infinity" if obj > 0 else "-Infinity")
    if isinstance(obj, dict):
        return {str(k): finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite(v) for v in obj]
    return obj


def to_json(obj: Any) -> str:
    return json.dumps(finite(obj), sort_keys=True, allow_nan=False)


def row_of(r: Sequence[Any]) -> OutboxRow:
    return OutboxRow(
        alert_id=r[0], step=int(r[1]), kind=r[2], recipient=r[3], channel=r[4], title=r[5], body=r[6],
        notify_type=r[7], created_at=int(r[8]), status=r[9], msg_key=r[10], meta=json.loads(r[11]),
        id=int(r[12]), attempts=int(r[13]),
    )  # fmt: skip


def ack_of(r: Sequence[Any]) -> Ack:
    return Ack(r[0], r[1], int(r[2]), r[3], r[4], int(r[5]), bool(r[6]))


__all__ = [
    "ACK_COLUMNS", "INSERT_ROW", "IN_JSON", "ROW_COLUMNS", "SCHEMA", "SCHEMA_VERSION", "ack_of", "finite",
    "row_of", "to_json",
]  # fmt: skip
