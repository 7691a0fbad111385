"""``integration._apps.outage_worker``'s app, connecting to PostgreSQL as a role of the test's.

Run by ``dockyard worker integration._apps.budget_worker:app``. The same variables as the
outage worker (``DOCKYARD_OUTAGE_*``: schema, destination, broker, application name,
``PG_PORT``, ``POOL_SIZE``, ``MAX_OVERFLOW``, and here ``POOL_TIMEOUT``) plus
``DOCKYARD_OUTAGE_ROLE``, the PostgreSQL role it logs in as: the test gives that role a
``CONNECTION LIMIT`` and counts its connections in ``pg_stat_activity``.
"""

from __future__ import annotations

import os

from dockyard.app import App
from integration._apps.outage_worker import build


def _from_environment() -> App:
    def env(key: str) -> str:
        return os.environ[f"DOCKYARD_OUTAGE_{key}"]

    port = os.environ.get("DOCKYARD_OUTAGE_PG_PORT", "5432")
    return build(
        f"postgresql+asyncpg://{env('ROLE')}@127.0.0.1:{port}/test",
        env("SCHEMA"),
        env("BROKER"),
        env("DESTINATION"),
        application_name=env("APPLICATION"),
        pool={
            key: int(env(key.upper()))
            for key in ("pool_size", "max_overflow", "pool_timeout")
            if f"DOCKYARD_OUTAGE_{key.upper()}" in os.environ
        },
    )


app = _from_environment
"""What ``dockyard worker`` loads (a function: it reads the environment when called)."""
