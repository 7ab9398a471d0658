-- 0001: services and their components, plus the operator-visible migration log.
-- Never edit this file once landed; add a new numbered migration instead.

CREATE TABLE schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at INTEGER NOT NULL
);

CREATE TABLE services (
    name          TEXT PRIMARY KEY,
    node          TEXT NOT NULL,
    active        INTEGER NOT NULL,
    desired_state TEXT NOT NULL CHECK (desired_state IN ('running', 'stopped')),
    spec_json     TEXT NOT NULL,
    spec_hash     TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

CREATE TABLE components (
    service       TEXT NOT NULL REFERENCES services (name) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    image         TEXT NOT NULL,
    desired_state TEXT NOT NULL CHECK (desired_state IN ('running', 'stopped')),
    spec_hash     TEXT NOT NULL,
    position      INTEGER NOT NULL,
    PRIMARY KEY (service, name)
);

INSERT INTO schema_migrations (version, name, applied_at)
VALUES (1, 'services', CAST(strftime('%s', 'now') AS INTEGER));
