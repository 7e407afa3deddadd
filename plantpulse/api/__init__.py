"""The HTTP API: acknowledge links and the bearer-token alert API (see ``plantpulse.api.app``)."""

from plantpulse.api.app import Api, create_app
from plantpulse.api.config import ApiConfig

__all__ = ["Api", "ApiConfig", "create_app"]
