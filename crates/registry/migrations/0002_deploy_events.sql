-- 0002: the deploy history, an append-only audit log.
-- Never edit this file once landed; add a new numbered migration instead.
-- No foreign key to services: the history must outlive an undeploy.

CREATE TABLE deploy_events (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    service   TEXT NOT NULL,
    action    TEXT NOT NULL,
    actor     TEXT NOT NULL,
    at        INTEGER NOT NULL,
    spec_json TEXT,
    detail    TEXT
);

-- Serves "history of one service, newest first".
CREATE INDEX deploy_events_service_id ON deploy_events (service, id);

INSERT INTO schema_migrations (version, name, applied_at)
VALUES (2, 'deploy_events', CAST(strftime('%s', 'now') AS INTEGER));
