"""Where the bank's services find their databases and their broker."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields


@dataclass(frozen=True, slots=True)
class Settings:
    bank_database_url: str = "postgresql+asyncpg://postgres@localhost/bank"
    notifications_database_url: str = "postgresql+asyncpg://postgres@localhost/notifications"
    rabbit_url: str = "amqp://guest:guest@localhost:5672/"
    notifications_destination: str = "bank.notifications"

    @classmethod
    def from_environment(cls) -> Settings:
        """Each field from its environment variable (``BANK_DATABASE_URL``, …) when it is set."""
        names = [field.name for field in fields(cls)]
        return cls(
            **{name: os.environ[name.upper()] for name in names if name.upper() in os.environ}
        )
