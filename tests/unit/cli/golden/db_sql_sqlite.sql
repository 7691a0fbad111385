-- dockyard's schema (sqlite); safe to run again.
BEGIN;

CREATE TABLE IF NOT EXISTS dockyard_events (
    global_position INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    event_id CHAR(32) NOT NULL,
    stream_id VARCHAR(255) NOT NULL,
    stream_version BIGINT NOT NULL,
    type_name VARCHAR(255) NOT NULL,
    schema_version INTEGER NOT NULL,
    data BLOB NOT NULL,
    correlation_id VARCHAR(255),
    causation_id VARCHAR(255),
    occurred_at DATETIME NOT NULL,
    recorded_at DATETIME NOT NULL,
    CONSTRAINT uq_dockyard_events_stream_id_stream_version UNIQUE (stream_id, stream_version),
    CONSTRAINT uq_dockyard_events_event_id UNIQUE (event_id)
);

CREATE TABLE IF NOT EXISTS dockyard_idempotency_keys (
    stream_id VARCHAR(255) NOT NULL,
    idempotency_key VARCHAR(255) NOT NULL,
    first_version BIGINT,
    last_version BIGINT,
    first_position BIGINT,
    last_position BIGINT,
    recorded_at DATETIME NOT NULL,
    CONSTRAINT pk_dockyard_idempotency_keys PRIMARY KEY (stream_id, idempotency_key)
);

CREATE TABLE IF NOT EXISTS dockyard_inbox (
    message_id VARCHAR(255) NOT NULL,
    handler VARCHAR(255) NOT NULL,
    handled_at DOUBLE NOT NULL,
    CONSTRAINT pk_dockyard_inbox PRIMARY KEY (message_id, handler)
);

CREATE INDEX IF NOT EXISTS ix_dockyard_inbox_handled ON dockyard_inbox (handled_at);

CREATE TABLE IF NOT EXISTS dockyard_outbox (
    position INTEGER NOT NULL,
    message_id VARCHAR(255) NOT NULL,
    destination VARCHAR(255) NOT NULL,
    type_name VARCHAR(255) NOT NULL,
    schema_version INTEGER NOT NULL,
    payload BLOB NOT NULL,
    headers TEXT NOT NULL,
    partition_key VARCHAR(255),
    created_at DOUBLE NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at DOUBLE NOT NULL,
    status VARCHAR(16) NOT NULL,
    last_error TEXT,
    delivered_at DOUBLE,
    CONSTRAINT pk_dockyard_outbox PRIMARY KEY (position),
    CONSTRAINT uq_dockyard_outbox_message_id UNIQUE (message_id)
);

CREATE INDEX IF NOT EXISTS ix_dockyard_outbox_dead ON dockyard_outbox (position) WHERE status = 'dead';

CREATE INDEX IF NOT EXISTS ix_dockyard_outbox_delivered ON dockyard_outbox (delivered_at) WHERE status = 'delivered';

CREATE INDEX IF NOT EXISTS ix_dockyard_outbox_pending ON dockyard_outbox (position) WHERE status = 'pending';

CREATE INDEX IF NOT EXISTS ix_dockyard_outbox_pending_keys ON dockyard_outbox (partition_key, position) WHERE status = 'pending';

CREATE INDEX IF NOT EXISTS ix_dockyard_outbox_retrying ON dockyard_outbox (partition_key, position) WHERE status = 'pending' AND attempts > 0;

CREATE TABLE IF NOT EXISTS dockyard_outbox_scheduled (
    position INTEGER NOT NULL,
    message_id VARCHAR(255) NOT NULL,
    destination VARCHAR(255) NOT NULL,
    type_name VARCHAR(255) NOT NULL,
    schema_version INTEGER NOT NULL,
    payload BLOB NOT NULL,
    headers TEXT NOT NULL,
    partition_key VARCHAR(255),
    created_at DOUBLE NOT NULL,
    deliver_at DOUBLE NOT NULL,
    CONSTRAINT pk_dockyard_outbox_scheduled PRIMARY KEY (position),
    CONSTRAINT uq_dockyard_outbox_scheduled_message_id UNIQUE (message_id)
);

CREATE INDEX IF NOT EXISTS ix_dockyard_outbox_scheduled_due ON dockyard_outbox_scheduled (deliver_at, position);

CREATE TABLE IF NOT EXISTS dockyard_processes (
    process_name VARCHAR(255) NOT NULL,
    process_key VARCHAR(255) NOT NULL,
    definition_version INTEGER NOT NULL,
    status VARCHAR(16) NOT NULL,
    state_type VARCHAR(255) NOT NULL,
    state_schema INTEGER NOT NULL,
    state_data BLOB NOT NULL,
    version BIGINT NOT NULL,
    timeout_id VARCHAR(255),
    timeout_at DOUBLE,
    created_at DOUBLE NOT NULL,
    updated_at DOUBLE NOT NULL,
    CONSTRAINT pk_dockyard_processes PRIMARY KEY (process_name, process_key)
);

CREATE INDEX IF NOT EXISTS ix_dockyard_processes_created ON dockyard_processes (created_at, process_name, process_key);

CREATE INDEX IF NOT EXISTS ix_dockyard_processes_status ON dockyard_processes (status, created_at, process_name, process_key);

CREATE TABLE IF NOT EXISTS dockyard_projection_checkpoints (
    name VARCHAR(255) NOT NULL,
    position BIGINT NOT NULL,
    failed_position BIGINT,
    error TEXT,
    attempts INTEGER NOT NULL,
    failed_at DATETIME,
    applied_since_reset BIGINT NOT NULL,
    reset_at DATETIME,
    updated_at DATETIME NOT NULL,
    paused_at DATETIME,
    CONSTRAINT pk_dockyard_projection_checkpoints PRIMARY KEY (name)
);

CREATE TABLE IF NOT EXISTS dockyard_projection_leases (
    name VARCHAR(255) NOT NULL,
    owner VARCHAR(255) NOT NULL,
    expires_at DOUBLE NOT NULL,
    CONSTRAINT pk_dockyard_projection_leases PRIMARY KEY (name)
);

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
    state_data BLOB NOT NULL,
    version BIGINT NOT NULL,
    owner VARCHAR(255),
    lease_until DOUBLE,
    due_at DOUBLE NOT NULL,
    last_error TEXT,
    step_log TEXT NOT NULL,
    created_at DOUBLE NOT NULL,
    updated_at DOUBLE NOT NULL,
    CONSTRAINT pk_dockyard_sagas PRIMARY KEY (saga_id)
);

CREATE INDEX IF NOT EXISTS ix_dockyard_sagas_created ON dockyard_sagas (created_at, saga_id);

CREATE INDEX IF NOT EXISTS ix_dockyard_sagas_due ON dockyard_sagas (due_at) WHERE status IN ('running', 'compensating');

CREATE INDEX IF NOT EXISTS ix_dockyard_sagas_status ON dockyard_sagas (status, created_at, saga_id);

CREATE TABLE IF NOT EXISTS dockyard_snapshots (
    stream_id VARCHAR(255) NOT NULL,
    stream_version BIGINT NOT NULL,
    type_name VARCHAR(255) NOT NULL,
    schema_version INTEGER NOT NULL,
    data BLOB NOT NULL,
    recorded_at DATETIME NOT NULL,
    CONSTRAINT pk_dockyard_snapshots PRIMARY KEY (stream_id)
);

CREATE TABLE IF NOT EXISTS dockyard_streams (
    stream_id VARCHAR(255) NOT NULL,
    version BIGINT NOT NULL,
    deleted_at DATETIME,
    CONSTRAINT pk_dockyard_streams PRIMARY KEY (stream_id)
);

COMMIT;
