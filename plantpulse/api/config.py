"""The ``api:`` section of ``plant.yaml``: where the acknowledge/alerts API listens and its tokens."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from plantpulse.observe.config import ReadyConfig
from plantpulse.schema import Duration, StrictModel


class ApiConfig(StrictModel):
    listen: str = Field("127.0.0.1:8080", description="host:port the API listens on")
    token: SecretStr = Field(description="bearer token for /api/*; write ${PLANTPULSE_API_TOKEN}")
    public_url: str | None = Field(
        None, description="how phones reach this API, e.g. https://pp.example (links: <public_url>/ack/...)"
    )
    max_shelve: Duration = Field(8 * 3600 * 10**9, description="a shelve through the API never lasts longer")
    metrics_token: SecretStr | None = Field(
        None, description="a bearer token that only reads /metrics (Prometheus'); the API token does too"
    )
    ready: ReadyConfig = Field(default_factory=ReadyConfig, description="what /api/health/ready requires")

    @field_validator("listen")
    @classmethod
    def _host_port(cls, v: str) -> str:
        host, sep, port = v.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("listen is host:port, e.g. 127.0.0.1:8080")
        return v

    @field_validator("token", "metrics_token")
    @classmethod
    def _long_enough(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and len(v.get_secret_value()) < 16:
            raise ValueError("a token must be at least 16 characters")
        return v

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    def local_url(self) -> str:
        """How a command on this machine reaches the running process: ``listen`` with a
        wildcard host (0.0.0.0, ::) replaced by loopback."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    def ack_base(self) -> str:
        """Base of the acknowledge links: ``public_url`` or the listen address."""
        base = self.public_url or f"http://{self.listen}"
        return base.rstrip("/") + "/ack"
