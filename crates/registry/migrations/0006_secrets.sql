-- 0006: secrets of services, sealed by the agent (values never appear here in clear).
-- Never edit this file once landed; add a new numbered migration instead.

-- One row per secret name a service ever had. No foreign key: a secret may be set before
-- its service's first deploy and outlives an undeploy. A removed secret keeps its row with
-- `sealed` NULL, so a later one of the same name gets a higher version (versions name
-- entries in podman's secret store and are part of spec hashes: never reused).
CREATE TABLE secrets (
    service TEXT NOT NULL,
    name    TEXT NOT NULL,
    version INTEGER NOT NULL CHECK (version > 0),
    sealed  BLOB,                       -- nonce || ciphertext; NULL once removed
    set_at  INTEGER NOT NULL,           -- unix seconds
    PRIMARY KEY (service, name)
);

INSERT INTO schema_migrations (version, name, applied_at)
VALUES (6, 'secrets', CAST(strftime('%s', 'now') AS INTEGER));
