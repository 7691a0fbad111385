"""A worker whose saga step has a circuit breaker, for the recovery test of the breaker's branch.

Run by ``dockyard worker integration._apps.saga_breaker_worker:app``, with the database of
``saga_worker`` (same variables, same tables). With ``DOCKYARD_TEST_BREAKER_OPEN=1`` the
process's breaker starts open. The `guarded` saga's `charge` (behind the breaker) writes an
effect; its fallback `backup` writes one, says it has begun and waits at the gate.
"""

from __future__ import annotations

import os

from dockyard.app import App
from dockyard.modules import module
from dockyard.retry import CircuitBreaker
from dockyard.sagas import Saga, SagaSettings, SagasModule, step
from dockyard.sql import SqlModule, SqlSagaBackend
from integration._apps.saga_worker import Job, WaitAtGate, WriteEffect, engine_options

BREAKER = CircuitBreaker("gateway", failure_threshold=1, reset_after=3600)
if os.environ.get("DOCKYARD_TEST_BREAKER_OPEN") == "1":
    BREAKER.acquire()
    BREAKER.failed(ConnectionError("the gateway was down when this process started"))

GUARDED = Saga(
    "guarded",
    version=1,
    state=Job,
    steps=[
        step("charge", WriteEffect, breaker=BREAKER, fallback=step("backup", WaitAtGate)),
        step("after", WriteEffect),
    ],
)


def build(url: str, schema: str | None = None, *, run_runner: bool = True) -> App:
    sql = SqlModule.register(url, **engine_options(schema))
    sagas = SagasModule.register(
        sagas=[GUARDED],
        backend=SqlSagaBackend(),
        imports=[sql],
        settings=SagaSettings(concurrency=1, lease_ttl=1.5, max_poll_interval=0.05),
        run_runner=run_runner,
    )

    @module(imports=[sql, sagas])
    class BreakerWorker: ...

    return App.build(BreakerWorker)


def app() -> App:
    return build(os.environ["DOCKYARD_TEST_SAGA_URL"], os.environ.get("DOCKYARD_TEST_SCHEMA"))
