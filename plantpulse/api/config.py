"""The ``api:`` section of ``plant.yaml``: where the acknowledge/alerts API listens and its token."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from plantpulse.schema import Duration, StrictModel


class ApiConfig(StrictModel):
    listen: str = Field("127.0.0.1:8080", description="host:port the API listens on")
    token: SecretStr = Field(description="bearer token for /api/*; write ${PLANTPULSE_API_TOKEN}")
    public_url: str | None = Field(
        None, description="how phones reach this API, e.g. https://pp.example (links: <public_url>/ack/...)"
    )
    max_shelve: Duration = Field(8 * 3600 * 10**9, description="a shelve through the API never lasts longer")

    @field_validator("listen")
    @classmethod
    def _host_port(cls, v: str) -> str:
        host, sep, port = v.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("listen is host:port, e.g. 127.0.0.1:8080")
        return v

    @field_validator("token")
    @classmethod
    def _long_enough(cls, v: SecretStr) -> SecretStr:
        if len(v.get_secret_value()) < 16:
            raise ValueError("the API token must be at least 16 characters")
        return v

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    def ack_base(self) -> str:
        """Base of the acknowledge links: ``public_url`` or the listen address."""
        base = self.public_url or f"http://{self.listen}"
        return base.rstrip("/") + "/ack"
