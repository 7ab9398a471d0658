//! The routing table the agent sends: its serde types and the consistency rules it must obey.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The whole routing table of a node; `apply` replaces it as one unit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Table {
    pub routes: Vec<Route>,
}

/// One public entry point: traffic for `port` (and `hostname`, if any) goes to `backend`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub service: String,
    pub component: String,
    pub route: String,
    /// The public port, bound on the proxy's `--bind` address.
    pub port: u16,
    pub mode: Mode,
    /// l4: matched against the TLS SNI; l7: against the Host header. `None` is the default route.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Where the component listens, normally `127.0.0.1:<host port>`.
    pub backend: SocketAddr,
    /// l7 only: the certificate for `hostname` (for a route without hostname: the default
    /// certificate). A port terminates TLS when any of its routes has one; routes without it
    /// on such a port are served over TLS too, bringing no certificate of their own.
    #[serde(default)]
    pub tls: Option<Tls>,
}

/// How a port forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// TCP passthrough; with hostnames, chosen by the SNI of the TLS ClientHello.
    L4,
    /// HTTP reverse proxy (HTTP/1.1 and HTTP/2), optionally terminating TLS.
    L7,
}

/// A certificate for TLS termination, as absolute paths of PEM files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Why a table is refused; every variant names the port it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    #[error("port 0: route {route} has no port")]
    ZeroPort { route: String },
    #[error("port {port}: routes mix l4 and l7 (all routes on one port share one mode)")]
    MixedModes { port: u16 },
    #[error("port {port}: more than one route for hostname {hostname}")]
    DuplicateHostname { port: u16, hostname: String },
    #[error("port {port}: more than one route without hostname")]
    DuplicateDefault { port: u16 },
    #[error("port {port}: route {route}: hostname {hostname:?} is not a DNS name")]
    InvalidHostname {
        port: u16,
        route: String,
        hostname: String,
    },
    #[error(
        "port {port}: route {route} is l4 and has tls (l4 passes TLS through; only l7 terminates it)"
    )]
    TlsOnL4 { port: u16, route: String },
    #[error("port {port}: route {route}: tls path {path:?} is not absolute")]
    RelativeTlsPath {
        port: u16,
        route: String,
        path: PathBuf,
    },
}

impl Route {
    /// `service/component/route`, for messages.
    pub fn label(&self) -> String {
        format!("{}/{}/{}", self.service, self.component, self.route)
    }
}

impl Table {
    /// The routes grouped by port, in table order within a port.
    pub fn by_port(&self) -> BTreeMap<u16, Vec<&Route>> {
        let mut ports: BTreeMap<u16, Vec<&Route>> = BTreeMap::new();
        for route in &self.routes {
            ports.entry(route.port).or_default().push(route);
        }
        ports
    }

    /// Checks the consistency rules; the first violation is returned.
    pub fn validate(&self) -> Result<(), TableError> {
        for (port, routes) in self.by_port() {
            validate_port(port, &routes)?;
        }
        Ok(())
    }

    /// Only the routes on the given ports.
    pub fn restricted_to(&self, ports: &[u16]) -> Table {
        Table {
            routes: self
                .routes
                .iter()
                .filter(|route| ports.contains(&route.port))
                .cloned()
                .collect(),
        }
    }
}

/// The rules for the routes sharing one port. With unique hostnames (no hostname counting as
/// one value), an l4 port is necessarily one route without hostname, or SNI routes plus at most
/// one default: no separate rule is needed for that.
fn validate_port(port: u16, routes: &[&Route]) -> Result<(), TableError> {
    let Some(first) = routes.first() else {
        return Ok(());
    };
    if port == 0 {
        return Err(TableError::ZeroPort {
            route: first.label(),
        });
    }
    if routes.iter().any(|route| route.mode != first.mode) {
        return Err(TableError::MixedModes { port });
    }
    let mut seen: Vec<Option<String>> = Vec::with_capacity(routes.len());
    for route in routes {
        if let Some(hostname) = &route.hostname
            && !is_dns_name(hostname)
        {
            return Err(TableError::InvalidHostname {
                port,
                route: route.label(),
                hostname: hostname.clone(),
            });
        }
        let key = route.hostname.as_deref().map(str::to_ascii_lowercase);
        if seen.contains(&key) {
            return Err(match key {
                Some(hostname) => TableError::DuplicateHostname { port, hostname },
                None => TableError::DuplicateDefault { port },
            });
        }
        seen.push(key);
        if let Some(tls) = &route.tls {
            if route.mode == Mode::L4 {
                return Err(TableError::TlsOnL4 {
                    port,
                    route: route.label(),
                });
            }
            for path in [&tls.cert, &tls.key] {
                if !path.is_absolute() {
                    return Err(TableError::RelativeTlsPath {
                        port,
                        route: route.label(),
                        path: path.clone(),
                    });
                }
            }
        }
    }
    Ok(())
}

/// Letters, digits, `-` and `_` in dot-separated labels of 1 to 63 bytes, at most 253 in all.
fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(port: u16, mode: Mode, hostname: Option<&str>) -> Route {
        Route {
            service: "svc".into(),
            component: "web".into(),
            route: format!("r{port}"),
            port,
            mode,
            hostname: hostname.map(str::to_owned),
            backend: "127.0.0.1:9000".parse().expect("addr"),
            tls: None,
        }
    }

    fn tls() -> Option<Tls> {
        Some(Tls {
            cert: "/etc/cert.pem".into(),
            key: "/etc/key.pem".into(),
        })
    }

    fn check(routes: Vec<Route>) -> Result<(), TableError> {
        Table { routes }.validate()
    }

    #[test]
    fn empty_table_is_valid() {
        assert_eq!(check(vec![]), Ok(()));
    }

    #[test]
    fn single_l4_route_is_valid() {
        assert_eq!(check(vec![route(80, Mode::L4, None)]), Ok(()));
    }

    #[test]
    fn sni_routes_with_one_default_are_valid() {
        let routes = vec![
            route(443, Mode::L4, Some("a.example")),
            route(443, Mode::L4, Some("b.example")),
            route(443, Mode::L4, None),
        ];
        assert_eq!(check(routes), Ok(()));
    }

    #[test]
    fn two_l4_routes_without_hostname_are_refused() {
        let routes = vec![route(443, Mode::L4, None), route(443, Mode::L4, None)];
        assert_eq!(
            check(routes),
            Err(TableError::DuplicateDefault { port: 443 })
        );
    }

    #[test]
    fn duplicate_hostname_is_refused_case_insensitively() {
        let routes = vec![
            route(443, Mode::L7, Some("A.example")),
            route(443, Mode::L7, Some("a.EXAMPLE")),
        ];
        assert_eq!(
            check(routes),
            Err(TableError::DuplicateHostname {
                port: 443,
                hostname: "a.example".into()
            })
        );
    }

    #[test]
    fn same_hostname_on_two_ports_is_fine() {
        let routes = vec![
            route(80, Mode::L7, Some("a.example")),
            route(81, Mode::L7, Some("a.example")),
        ];
        assert_eq!(check(routes), Ok(()));
    }

    #[test]
    fn mixed_modes_on_a_port_are_refused() {
        let routes = vec![
            route(8443, Mode::L4, Some("a.example")),
            route(8443, Mode::L7, Some("b.example")),
        ];
        let err = check(routes).expect_err("mixed");
        assert_eq!(err, TableError::MixedModes { port: 8443 });
        assert!(err.to_string().starts_with("port 8443:"), "{err}");
    }

    #[test]
    fn tls_on_l4_is_refused() {
        let mut r = route(443, Mode::L4, None);
        r.tls = tls();
        assert!(matches!(
            check(vec![r]),
            Err(TableError::TlsOnL4 { port: 443, .. })
        ));
    }

    #[test]
    fn l7_port_may_have_routes_without_tls_beside_routes_with_tls() {
        // The port terminates TLS; the route without tls just brings no certificate.
        let mut a = route(443, Mode::L7, Some("a.example"));
        a.tls = tls();
        let b = route(443, Mode::L7, None);
        assert_eq!(check(vec![a, b]), Ok(()));
    }

    #[test]
    fn l7_tls_on_every_route_is_valid() {
        let mut a = route(443, Mode::L7, Some("a.example"));
        a.tls = tls();
        let mut b = route(443, Mode::L7, None);
        b.tls = tls();
        assert_eq!(check(vec![a, b]), Ok(()));
    }

    #[test]
    fn relative_tls_path_is_refused() {
        let mut a = route(443, Mode::L7, None);
        a.tls = Some(Tls {
            cert: "cert.pem".into(),
            key: "/k.pem".into(),
        });
        assert!(matches!(
            check(vec![a]),
            Err(TableError::RelativeTlsPath { port: 443, .. })
        ));
    }

    #[test]
    fn port_zero_is_refused() {
        assert!(matches!(
            check(vec![route(0, Mode::L4, None)]),
            Err(TableError::ZeroPort { .. })
        ));
    }

    #[test]
    fn bad_hostnames_are_refused() {
        for bad in ["", "a..b", "a b", "a.example:80", ".a", "a.", "é.example"] {
            let err = check(vec![route(80, Mode::L7, Some(bad))]);
            assert!(
                matches!(err, Err(TableError::InvalidHostname { port: 80, .. })),
                "{bad:?}: {err:?}"
            );
        }
    }

    #[test]
    fn json_shape_round_trips_and_unknown_fields_are_refused() {
        let json = r#"{"routes":[{"service":"hello","component":"web","route":"rest","port":8443,
            "mode":"l4","hostname":null,"backend":"127.0.0.1:23817","tls":null}]}"#;
        let table: Table = serde_json::from_str(json).expect("parse");
        assert_eq!(table.routes[0].mode, Mode::L4);
        assert_eq!(table.routes[0].backend.port(), 23817);
        let again: Table =
            serde_json::from_str(&serde_json::to_string(&table).expect("ser")).expect("parse");
        assert_eq!(again, table);

        let minimal = r#"{"routes":[{"service":"s","component":"c","route":"r","port":1,
            "mode":"l7","backend":"127.0.0.1:2"}]}"#;
        assert!(serde_json::from_str::<Table>(minimal).is_ok());
        let unknown = r#"{"routes":[{"service":"s","component":"c","route":"r","port":1,
            "mode":"l7","backend":"127.0.0.1:2","extra":1}]}"#;
        assert!(serde_json::from_str::<Table>(unknown).is_err());
        let bad_mode = r#"{"routes":[{"service":"s","component":"c","route":"r","port":1,
            "mode":"l5","backend":"127.0.0.1:2"}]}"#;
        assert!(serde_json::from_str::<Table>(bad_mode).is_err());
    }
}
