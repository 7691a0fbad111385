"""PostgreSQL: the global log's positions and the horizon readers may read up to.

See docs/design/event-store-ordering.md. In short:

* positions come from one sequence, taken while the appending statement holds its stream's
  row, so a stream's events are numbered in version order;
* an appending transaction first *announces* itself with a shared advisory lock whose key
  carries a lower bound of every position it will take (the sequence's next value, read
  before its first ``nextval``), held until it ends;
* a reader computes a horizon, the smallest announced bound or else the sequence's next
  value, and then, in a later snapshot, reads only positions below it.

Only appenders hold readers back: a transaction that never appends is invisible here, however
long it stays open and whatever else it writes.
"""

from __future__ import annotations

from sqlalchemy import DDL, BigInteger, Sequence, event
from sqlalchemy.dialects import postgresql

from dockyard.sql._eventsourcing.tables import events_table
from dockyard.sql._metadata import metadata

__all__ = [
    "HORIZON",
    "LOG_HEAD",
    "OPEN_APPENDS",
    "POSITION_LIMIT",
    "SEQUENCE",
    "event_log_ddl",
    "key_sql",
    "lower_bound_sql",
    "old_triggers_ddl",
]

SEQUENCE = "dockyard_events_position"

POSITION_LIMIT = (1 << 48) - 1
"""The largest global position: an announcement's lock key holds the position in 48 bits."""

positions = Sequence(
    SEQUENCE,
    metadata=metadata,
    start=1,
    minvalue=1,
    maxvalue=POSITION_LIMIT,
    cache=1,  # a session's cache would hand out numbers out of time order
    data_type=BigInteger(),
)
"""The global positions of ``dockyard_events`` on PostgreSQL (SQLite: AUTOINCREMENT)."""

# The advisory lock key of an announcement: 0 | 1 | 14 bits of the sequence's oid | 48 bits of
# the bound. The oid keeps two stores in one database (two schemas) from holding each other
# back; bit 62 keeps our keys far from small ones (other advisory locks hash into int4).
_TAG = f"((('{SEQUENCE}'::regclass::oid::bigint & 16383) | 16384) << 48)"


def key_sql(bound: str) -> str:
    """The announcement's lock key for a position bound (an SQL expression)."""
    return f"({_TAG} | ({bound}))"


def lower_bound_sql() -> str:
    """SQL: no position handed out after this expression is evaluated is below its value."""
    return f"(SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM {SEQUENCE})"


_COLUMNS = ", ".join(column.name for column in events_table.columns)
# RETURNS TABLE, not SETOF the table's row type: a function depending on the row type would
# keep ``DROP TABLE dockyard_events`` from working
_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]  # SQLAlchemy leaves it untyped
_RESULT = ", ".join(
    f"{column.name} {column.type.compile(dialect=_DIALECT)}" for column in events_table.columns
)

_HORIZON_FUNCTION = f"""
CREATE OR REPLACE FUNCTION dockyard_log_horizon() RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    next_position bigint;
    announced bigint;
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'dockyard: the global log is read in READ COMMITTED transactions, not %',
            current_setting('transaction_isolation') USING ERRCODE = 'DY001';
    END IF;
    -- first the sequence, then the announcements: an appender announces before it takes a
    -- position, so any position below next_position is either announced here or final
    next_position := {lower_bound_sql()};
    SELECT min(((l.classid::bigint & 65535) << 32) | l.objid::bigint) INTO announced
    FROM pg_locks l
    WHERE l.locktype = 'advisory' AND l.objsubid = 1
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND (l.classid::bigint << 32) & ~((1::bigint << 48) - 1) = {_TAG};
    RETURN least(next_position, announced);
END $$
"""

# Each reads in the function's later statements, so in snapshots taken after the horizon.
_READ_ALL_FUNCTION = f"""
CREATE OR REPLACE FUNCTION dockyard_read_all(after bigint, page integer, names text[])
RETURNS TABLE ({_RESULT}) LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    horizon bigint := dockyard_log_horizon();
BEGIN
    IF names IS NULL THEN
        RETURN QUERY SELECT {_COLUMNS} FROM {events_table.name}
            WHERE global_position > after AND global_position < horizon
            ORDER BY global_position LIMIT page;
    ELSE
        RETURN QUERY SELECT {_COLUMNS} FROM {events_table.name}
            WHERE global_position > after AND global_position < horizon
              AND type_name = ANY(names)
            ORDER BY global_position LIMIT page;
    END IF;
END $$
"""
_LOG_HEAD_FUNCTION = f"""
CREATE OR REPLACE FUNCTION dockyard_log_head(OUT head bigint, OUT pending bigint)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    horizon bigint := dockyard_log_horizon();
BEGIN
    SELECT coalesce(max(global_position), 0) INTO head
    FROM {events_table.name} WHERE global_position < horizon;
    SELECT coalesce(max(global_position), 0) INTO pending FROM {events_table.name};
END $$
"""
_COUNT_AFTER_FUNCTION = f"""
CREATE OR REPLACE FUNCTION dockyard_count_after(after bigint) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    horizon bigint := dockyard_log_horizon();
BEGIN
    RETURN (SELECT count(*) FROM {events_table.name}
            WHERE global_position > after AND global_position < horizon);
END $$
"""

# Databases made before positions came from the sequence: continue above the largest one.
_CATCH_UP_SEQUENCE = f"""
SELECT setval('{SEQUENCE}', m) FROM (SELECT max(global_position) AS m FROM {events_table.name}) t
WHERE m IS NOT NULL AND m >= {lower_bound_sql()}
"""

event_log_ddl = (
    _HORIZON_FUNCTION,
    _READ_ALL_FUNCTION,
    _LOG_HEAD_FUNCTION,
    _COUNT_AFTER_FUNCTION,
    _CATCH_UP_SEQUENCE,
)
"""PostgreSQL statements, after the tables and the sequence exist, that create the functions
readers of the global log call. ``create_tables`` runs them (they are idempotent); add them to
your migrations if you create the tables another way."""

old_triggers_ddl = (
    f"DROP TRIGGER IF EXISTS dockyard_events_notify ON {events_table.name}",
    "DROP FUNCTION IF EXISTS dockyard_notify_events()",
    "DROP TRIGGER IF EXISTS dockyard_outbox_notify ON dockyard_outbox",
    "DROP FUNCTION IF EXISTS dockyard_notify_outbox()",
)
"""The ``NOTIFY`` triggers of earlier versions serialised every writing commit
(bench/concurrency.py); the process that wrote notifies instead (sql/_notices.py).
``create_tables`` drops them."""

for _statement in event_log_ddl:
    ddl = DDL(_statement.replace("%", "%%"))  # type: ignore[no-untyped-call]  # DDL() is untyped
    event.listen(events_table, "after_create", ddl.execute_if(dialect="postgresql"))

LOG_HEAD = "SELECT head, pending FROM dockyard_log_head()"
HORIZON = "SELECT dockyard_log_horizon()"

OPEN_APPENDS = f"""
SELECT min(((l.classid::bigint & 65535) << 32) | l.objid::bigint) AS bound, a.pid,
       extract(epoch FROM clock_timestamp() - a.xact_start) AS age, a.state,
       a.application_name
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.objsubid = 1
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND (l.classid::bigint << 32) & ~((1::bigint << 48) - 1) = {_TAG}
GROUP BY a.pid, a.xact_start, a.state, a.application_name
ORDER BY bound, a.xact_start LIMIT :limit
"""
"""Transactions that appended and are still open, oldest announcement first; one row each
(a transaction that appended more than once may hold two announcements: see ``append``)."""
