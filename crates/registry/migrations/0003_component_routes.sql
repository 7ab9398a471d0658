-- 0003: routes of each component and the host port the agent gave each one.
-- Never edit this file once landed; add a new numbered migration instead.
-- Rows belong to the service (not the component row, which a redeploy rewrites).

CREATE TABLE component_routes (
    service        TEXT NOT NULL REFERENCES services (name) ON DELETE CASCADE,
    component      TEXT NOT NULL,
    route          TEXT NOT NULL,   -- '' for a component's single unnamed route
    port           INTEGER NOT NULL,
    mode           TEXT NOT NULL,
    hostname       TEXT,
    host_port      INTEGER,         -- NULL while released (service stopped)
    last_host_port INTEGER,         -- what a later start tries to get back
    PRIMARY KEY (service, component, route)
);

-- A host port is never recorded for two routes at once.
CREATE UNIQUE INDEX component_routes_host_port
    ON component_routes (host_port) WHERE host_port IS NOT NULL;

INSERT INTO schema_migrations (version, name, applied_at)
VALUES (3, 'component_routes', CAST(strftime('%s', 'now') AS INTEGER));
