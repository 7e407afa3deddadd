"""The API tests share test_api's ``env`` fixture (a real SQLite store and outbox behind the app)."""

from test_api import env  # noqa: F401
