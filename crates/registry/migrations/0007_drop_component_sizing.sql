-- 0007: components' runtime, memory_mb and vcpus (migration 5) were written with every deploy
-- and never read: the spec JSON of the service holds them, and is what the agent reads.
-- Never edit this file once landed; add a new numbered migration instead.

ALTER TABLE components DROP COLUMN runtime;
ALTER TABLE components DROP COLUMN memory_mb;
ALTER TABLE components DROP COLUMN vcpus;

INSERT INTO schema_migrations (version, name, applied_at)
VALUES (7, 'drop_component_sizing', CAST(strftime('%s', 'now') AS INTEGER));
