"""Stores for samples, alerts and the alert journal. ``open_store`` picks one by URL scheme."""

from __future__ import annotations

from typing import TYPE_CHECKING

from plantpulse.store.base import Bucket, Store, TagInfo

if TYPE_CHECKING:
    from plantpulse.config import StoreConfig

__all__ = ["Bucket", "Store", "TagInfo", "open_store"]


def open_store(config: StoreConfig | str) -> Store:
    """``sqlite:///path`` (embedded default) or ``postgresql://...`` (TimescaleDB or plain
    PostgreSQL), from a URL or a whole ``store:`` section (pool size, Timescale settings)."""
    url = config if isinstance(config, str) else config.url
    scheme = url.partition(":")[0].lower()
    if scheme == "sqlite":
        from plantpulse.store.sqlite import SQLiteStore

        return SQLiteStore(url)
    if scheme in {"postgresql", "postgres"}:
        from plantpulse.store.postgres import PostgresStore

        return PostgresStore(url, None if isinstance(config, str) else config)
    raise ValueError(f"unsupported store URL scheme {scheme!r}: use sqlite:///path or postgresql://...")
