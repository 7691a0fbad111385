-- dockyard's schema (postgresql); safe to run again.
BEGIN;

CREATE SEQUENCE IF NOT EXISTS dockyard_events_position AS BIGINT START WITH 1 MINVALUE 1 MAXVALUE 281474976710655 CACHE 1;

CREATE TABLE IF NOT EXISTS dockyard_events (
    global_position BIGINT NOT NULL,
    event_id UUID NOT NULL,
    stream_id VARCHAR(255) NOT NULL,
    stream_version BIGINT NOT NULL,
    type_name VARCHAR(255) NOT NULL,
    schema_version INTEGER NOT NULL,
    data BYTEA NOT NULL,
    correlation_id VARCHAR(255),
    causation_id VARCHAR(255),
    occurred_at TIMESTAMP WITH TIME ZONE NOT NULL,
    recorded_at TIMESTAMP WITH TIME ZONE NOT NULL,
    CONSTRAINT pk_dockyard_events PRIMARY KEY (global_position),
    CONSTRAINT uq_dockyard_events_stream_id_stream_version UNIQUE (stream_id, stream_version),
    CONSTRAINT uq_dockyard_events_event_id UNIQUE (event_id)
);

COMMENT ON TABLE dockyard_events IS 'Every event of every stream; global_position orders them all.';

CREATE TABLE IF NOT EXISTS dockyard_idempotency_keys (
    stream_id VARCHAR(255) NOT NULL,
    idempotency_key VARCHAR(255) NOT NULL,
    first_version BIGINT,
    last_version BIGINT,
    first_position BIGINT,
    last_position BIGINT,
    recorded_at TIMESTAMP WITH TIME ZONE NOT NULL,
    CONSTRAINT pk_dockyard_idempotency_keys PRIMARY KEY (stream_id, idempotency_key)
);

COMMENT ON TABLE dockyard_idempotency_keys IS 'Appends made with an idempotency key, so a retry returns the first result.';

CREATE TABLE IF NOT EXISTS dockyard_inbox (
    message_id VARCHAR(255) NOT NULL,
    handler VARCHAR(255) NOT NULL,
    handled_at DOUBLE PRECISION NOT NULL,
    CONSTRAINT pk_dockyard_inbox PRIMARY KEY (message_id, handler)
);

COMMENT ON TABLE dockyard_inbox IS 'Messages each consumer has handled, written with the handler''s effects.';

COMMENT ON COLUMN dockyard_inbox.handled_at IS 'epoch seconds';

CREATE INDEX IF NOT EXISTS ix_dockyard_inbox_handled ON dockyard_inbox USING brin (handled_at);

CREATE TABLE IF NOT EXISTS dockyard_outbox (
    position BIGSERIAL NOT NULL,
    message_id VARCHAR(255) NOT NULL,
    destination VARCHAR(255) NOT NULL,
    type_name VARCHAR(255) NOT NULL,
    schema_version INTEGER NOT NULL,
    payload BYTEA NOT NULL,
    headers TEXT NOT NULL,
    partition_key VARCHAR(255),
    created_at DOUBLE PRECISION NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at DOUBLE PRECISION NOT NULL,
    status VARCHAR(16) NOT NULL,
    last_error TEXT,
    delivered_at DOUBLE PRECISION,
    CONSTRAINT pk_dockyard_outbox PRIMARY KEY (position),
    CONSTRAINT uq_dockyard_outbox_message_id UNIQUE (message_id)
);

COMMENT ON TABLE dockyard_outbox IS 'Messages for other services, written with the transaction that produced them.';

COMMENT ON COLUMN dockyard_outbox.headers IS 'JSON object of string headers';

COMMENT ON COLUMN dockyard_outbox.created_at IS 'epoch seconds';

COMMENT ON COLUMN dockyard_outbox.next_attempt_at IS 'epoch seconds';

COMMENT ON COLUMN dockyard_outbox.status IS 'pending, delivered or dead';

COMMENT ON COLUMN dockyard_outbox.delivered_at IS 'epoch seconds';

CREATE INDEX IF NOT EXISTS ix_dockyard_outbox_dead ON dockyard_outbox (position) WHERE status = 'dead';

CREATE INDEX IF NOT EXISTS ix_dockyard_outbox_delivered ON dockyard_outbox (delivered_at) WHERE status = 'delivered';

CREATE INDEX IF NOT EXISTS ix_dockyard_outbox_pending ON dockyard_outbox (position) WHERE status = 'pending';

CREATE INDEX IF NOT EXISTS ix_dockyard_outbox_pending_keys ON dockyard_outbox (partition_key, position) WHERE status = 'pending';

CREATE INDEX IF NOT EXISTS ix_dockyard_outbox_retrying ON dockyard_outbox (partition_key, position) WHERE status = 'pending' AND attempts > 0;

CREATE TABLE IF NOT EXISTS dockyard_outbox_scheduled (
    position BIGSERIAL NOT NULL,
    message_id VARCHAR(255) NOT NULL,
    destination VARCHAR(255) NOT NULL,
    type_name VARCHAR(255) NOT NULL,
    schema_version INTEGER NOT NULL,
    payload BYTEA NOT NULL,
    headers TEXT NOT NULL,
    partition_key VARCHAR(255),
    created_at DOUBLE PRECISION NOT NULL,
    deliver_at DOUBLE PRECISION NOT NULL,
    CONSTRAINT pk_dockyard_outbox_scheduled PRIMARY KEY (position),
    CONSTRAINT uq_dockyard_outbox_scheduled_message_id UNIQUE (message_id)
);

COMMENT ON TABLE dockyard_outbox_scheduled IS 'Outbox messages not due yet; the relay moves each into dockyard_outbox when due.';

COMMENT ON COLUMN dockyard_outbox_scheduled.position IS 'scheduling order: breaks ties between equal due times';

COMMENT ON COLUMN dockyard_outbox_scheduled.headers IS 'JSON object of string headers';

COMMENT ON COLUMN dockyard_outbox_scheduled.created_at IS 'epoch seconds';

COMMENT ON COLUMN dockyard_outbox_scheduled.deliver_at IS 'epoch seconds: due time';

CREATE INDEX IF NOT EXISTS ix_dockyard_outbox_scheduled_due ON dockyard_outbox_scheduled (deliver_at, position);

CREATE TABLE IF NOT EXISTS dockyard_processes (
    process_name VARCHAR(255) NOT NULL,
    process_key VARCHAR(255) NOT NULL,
    definition_version INTEGER NOT NULL,
    status VARCHAR(16) NOT NULL,
    state_type VARCHAR(255) NOT NULL,
    state_schema INTEGER NOT NULL,
    state_data BYTEA NOT NULL,
    version BIGINT NOT NULL,
    timeout_id VARCHAR(255),
    timeout_at DOUBLE PRECISION,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    CONSTRAINT pk_dockyard_processes PRIMARY KEY (process_name, process_key)
);

COMMENT ON TABLE dockyard_processes IS 'One row per process manager instance, written with its handlers'' own writes.';

COMMENT ON COLUMN dockyard_processes.status IS 'active or completed';

COMMENT ON COLUMN dockyard_processes.version IS 'the fence of every write';

COMMENT ON COLUMN dockyard_processes.timeout_id IS 'the pending timeout''s id';

COMMENT ON COLUMN dockyard_processes.timeout_at IS 'epoch seconds';

COMMENT ON COLUMN dockyard_processes.created_at IS 'epoch seconds';

COMMENT ON COLUMN dockyard_processes.updated_at IS 'epoch seconds';

CREATE INDEX IF NOT EXISTS ix_dockyard_processes_created ON dockyard_processes (created_at, process_name, process_key);

CREATE INDEX IF NOT EXISTS ix_dockyard_processes_status ON dockyard_processes (status, created_at, process_name, process_key);

CREATE TABLE IF NOT EXISTS dockyard_projection_checkpoints (
    name VARCHAR(255) NOT NULL,
    position BIGINT NOT NULL,
    failed_position BIGINT,
    error TEXT,
    attempts INTEGER NOT NULL,
    failed_at TIMESTAMP WITH TIME ZONE,
    applied_since_reset BIGINT NOT NULL,
    reset_at TIMESTAMP WITH TIME ZONE,
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
    paused_at TIMESTAMP WITH TIME ZONE,
    CONSTRAINT pk_dockyard_projection_checkpoints PRIMARY KEY (name)
);

COMMENT ON TABLE dockyard_projection_checkpoints IS 'One row per catch-up projection: its position, written with its read model.';

COMMENT ON COLUMN dockyard_projection_checkpoints.paused_at IS 'set while paused';

CREATE TABLE IF NOT EXISTS dockyard_projection_leases (
    name VARCHAR(255) NOT NULL,
    owner VARCHAR(255) NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    CONSTRAINT pk_dockyard_projection_leases PRIMARY KEY (name)
);

COMMENT ON TABLE dockyard_projection_leases IS 'Which runner may apply a projection, until when (epoch seconds, database clock).';

CREATE TABLE IF NOT EXISTS dockyard_sagas (
    saga_id VARCHAR(255) NOT NULL,
    saga_name VARCHAR(255) NOT NULL,
    definition_version INTEGER NOT NULL,
    status VARCHAR(16) NOT NULL,
    current_step VARCHAR(255),
    step_action VARCHAR(16) NOT NULL,
    attempts INTEGER NOT NULL,
    state_type VARCHAR(255) NOT NULL,
    state_schema INTEGER NOT NULL,
    state_data BYTEA NOT NULL,
    version BIGINT NOT NULL,
    owner VARCHAR(255),
    lease_until DOUBLE PRECISION,
    due_at DOUBLE PRECISION NOT NULL,
    last_error TEXT,
    step_log TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    CONSTRAINT pk_dockyard_sagas PRIMARY KEY (saga_id)
);

COMMENT ON TABLE dockyard_sagas IS 'One row per saga instance, checkpointed with each step''s own writes.';

COMMENT ON COLUMN dockyard_sagas.status IS 'see dockyard.sagas.SagaStatus';

COMMENT ON COLUMN dockyard_sagas.step_action IS 'act or compensate';

COMMENT ON COLUMN dockyard_sagas.version IS 'the fence of every runner write';

COMMENT ON COLUMN dockyard_sagas.lease_until IS 'epoch seconds, database clock';

COMMENT ON COLUMN dockyard_sagas.due_at IS 'epoch seconds, database clock';

COMMENT ON COLUMN dockyard_sagas.step_log IS 'JSON array of log entries';

COMMENT ON COLUMN dockyard_sagas.created_at IS 'epoch seconds';

COMMENT ON COLUMN dockyard_sagas.updated_at IS 'epoch seconds';

CREATE INDEX IF NOT EXISTS ix_dockyard_sagas_created ON dockyard_sagas (created_at, saga_id);

CREATE INDEX IF NOT EXISTS ix_dockyard_sagas_due ON dockyard_sagas (due_at) WHERE status IN ('running', 'compensating');

CREATE INDEX IF NOT EXISTS ix_dockyard_sagas_status ON dockyard_sagas (status, created_at, saga_id);

CREATE TABLE IF NOT EXISTS dockyard_snapshots (
    stream_id VARCHAR(255) NOT NULL,
    stream_version BIGINT NOT NULL,
    type_name VARCHAR(255) NOT NULL,
    schema_version INTEGER NOT NULL,
    data BYTEA NOT NULL,
    recorded_at TIMESTAMP WITH TIME ZONE NOT NULL,
    CONSTRAINT pk_dockyard_snapshots PRIMARY KEY (stream_id)
);

COMMENT ON TABLE dockyard_snapshots IS 'The latest snapshot of a stream''s state; a cache, safe to truncate.';

CREATE TABLE IF NOT EXISTS dockyard_streams (
    stream_id VARCHAR(255) NOT NULL,
    version BIGINT NOT NULL,
    deleted_at TIMESTAMP WITH TIME ZONE,
    CONSTRAINT pk_dockyard_streams PRIMARY KEY (stream_id)
);

COMMENT ON TABLE dockyard_streams IS 'One row per stream: its current version (the optimistic lock) and tombstone.';

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
    next_position := (SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM dockyard_events_position);
    SELECT min(((l.classid::bigint & 65535) << 32) | l.objid::bigint) INTO announced
    FROM pg_locks l
    WHERE l.locktype = 'advisory' AND l.objsubid = 1
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND (l.classid::bigint << 32) & ~((1::bigint << 48) - 1) = ((('dockyard_events_position'::regclass::oid::bigint & 16383) | 16384) << 48);
    RETURN least(next_position, announced);
END $$;

CREATE OR REPLACE FUNCTION dockyard_read_all(after bigint, page integer, names text[])
RETURNS TABLE (global_position BIGINT, event_id UUID, stream_id VARCHAR(255), stream_version BIGINT, type_name VARCHAR(255), schema_version INTEGER, data BYTEA, correlation_id VARCHAR(255), causation_id VARCHAR(255), occurred_at TIMESTAMP WITH TIME ZONE, recorded_at TIMESTAMP WITH TIME ZONE) LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    horizon bigint := dockyard_log_horizon();
BEGIN
    IF names IS NULL THEN
        RETURN QUERY SELECT global_position, event_id, stream_id, stream_version, type_name, schema_version, data, correlation_id, causation_id, occurred_at, recorded_at FROM dockyard_events
            WHERE global_position > after AND global_position < horizon
            ORDER BY global_position LIMIT page;
    ELSE
        RETURN QUERY SELECT global_position, event_id, stream_id, stream_version, type_name, schema_version, data, correlation_id, causation_id, occurred_at, recorded_at FROM dockyard_events
            WHERE global_position > after AND global_position < horizon
              AND type_name = ANY(names)
            ORDER BY global_position LIMIT page;
    END IF;
END $$;

CREATE OR REPLACE FUNCTION dockyard_log_head(OUT head bigint, OUT pending bigint)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    horizon bigint := dockyard_log_horizon();
BEGIN
    SELECT coalesce(max(global_position), 0) INTO head
    FROM dockyard_events WHERE global_position < horizon;
    SELECT coalesce(max(global_position), 0) INTO pending FROM dockyard_events;
END $$;

CREATE OR REPLACE FUNCTION dockyard_count_after(after bigint) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    horizon bigint := dockyard_log_horizon();
BEGIN
    RETURN (SELECT count(*) FROM dockyard_events
            WHERE global_position > after AND global_position < horizon);
END $$;

SELECT setval('dockyard_events_position', m) FROM (SELECT max(global_position) AS m FROM dockyard_events) t
WHERE m IS NOT NULL AND m >= (SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM dockyard_events_position);

DROP TRIGGER IF EXISTS dockyard_events_notify ON dockyard_events;

DROP FUNCTION IF EXISTS dockyard_notify_events();

DROP TRIGGER IF EXISTS dockyard_outbox_notify ON dockyard_outbox;

DROP FUNCTION IF EXISTS dockyard_notify_outbox();

COMMIT;
