"""The life of every simulated device and broker: ``start``/``stop``, ``async with``, restart."""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self


class Service(ABC):
    @abstractmethod
    async def start(self) -> None:
        """Begin serving; idempotent."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop serving and release the port; ``start`` may be called again."""

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
