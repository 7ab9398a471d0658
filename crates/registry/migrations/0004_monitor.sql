-- 0004: what the monitor knows about each component, and operations in flight.
-- Never edit this file once landed; add a new numbered migration instead.

-- Restart bookkeeping and current drift, per component. Kept across agent restarts so a
-- crash-looping component keeps backing off instead of starting over.
CREATE TABLE component_health (
    service         TEXT NOT NULL REFERENCES services (name) ON DELETE CASCADE,
    component       TEXT NOT NULL,
    restart_count   INTEGER NOT NULL DEFAULT 0,
    last_exit_code  INTEGER,
    last_exit_at    INTEGER,          -- unix seconds
    last_restart_at INTEGER,          -- unix seconds
    backoff_ms      INTEGER NOT NULL DEFAULT 0,
    backoff_until   INTEGER,          -- unix milliseconds; no restart before
    drift           TEXT,             -- NULL when observed matches desired
    drift_detail    TEXT,
    drift_since     INTEGER,          -- unix seconds
    PRIMARY KEY (service, component)
);

-- A mutating operation the agent started and has not finished. Written before the runtime
-- is touched and deleted when the operation ends, so a restarted agent knows what a crash
-- interrupted. No foreign key: an interrupted first deploy has no service row yet.
CREATE TABLE pending_operations (
    service    TEXT PRIMARY KEY,
    action     TEXT NOT NULL,
    actor      TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    spec_json  TEXT
);

INSERT INTO schema_migrations (version, name, applied_at)
VALUES (4, 'monitor', CAST(strftime('%s', 'now') AS INTEGER));
