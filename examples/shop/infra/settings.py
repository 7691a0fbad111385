"""Settings and cross-cutting ports the whole shop shares."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True, slots=True)
class ShopSettings:
    database_url: str
    currency: str = "EUR"


class Clock:
    """The time, as a port so tests can freeze it."""

    def now(self) -> datetime:
        return datetime.now(UTC)
