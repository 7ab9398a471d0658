-- 0005: which runtime runs each component and how its VM is sized (as MCP's migration 5).
-- Never edit this file once landed; add a new numbered migration instead.

ALTER TABLE components ADD COLUMN runtime TEXT NOT NULL DEFAULT 'container'
    CHECK (runtime IN ('container', 'unikernel'));
ALTER TABLE components ADD COLUMN memory_mb INTEGER;
ALTER TABLE components ADD COLUMN vcpus INTEGER NOT NULL DEFAULT 1;

INSERT INTO schema_migrations (version, name, applied_at)
VALUES (5, 'component_runtime', CAST(strftime('%s', 'now') AS INTEGER));
