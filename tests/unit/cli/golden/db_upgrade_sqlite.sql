-- dockyard db upgrade db_app:app: 2 changes
BEGIN;

CREATE INDEX ix_dockyard_outbox_dead ON dockyard_outbox (position) WHERE status = 'dead';

ALTER TABLE dockyard_projection_checkpoints ADD COLUMN reset_at DATETIME;

COMMIT;
