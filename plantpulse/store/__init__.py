"""Stores for samples, alerts and the alert journal. ``open_store`` picks one by URL scheme."""

from __future__ import annotations

from plantpulse.store.base import Bucket, Store, TagInfo

__all__ = ["Bucket", "Store", "TagInfo", "open_store"]


def open_store(url: str) -> Store:
    """``sqlite:///path`` (embedded default) or ``postgresql://...`` (TimescaleDB or plain PostgreSQL)."""
    scheme = url.partition(":")[0].lower()
    if scheme == "sqlite":
        from plantpulse.store.sqlite import SQLiteStore

        return SQLiteStore(url)
    if scheme in {"postgresql", "postgres"}:
        from plantpulse.store.postgres import PostgresStore

        return PostgresStore(url)
    raise ValueError(f"unsupported store URL scheme {scheme!r}: use sqlite:///path or postgresql://...")
