//! The public listeners, one per port: building each port's forwarding config from the table,
//! binding new ports before anything switches, swapping configs, and the accept loops.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use http::uri::Authority;
use rustls::crypto::CryptoProvider;
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::activity::{Activity, Counter, InFlight};
use crate::hosts::HostMap;
use crate::l7::{Http, Site};
use crate::table::{Mode, Route, Table};
use crate::tls::{self, TlsError};
use crate::workers::Workers;
use crate::{l4, l7, sni};

const BACKLOG: u32 = 1024;

/// Why a port of a table cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("port {port}: route {route}: {source}")]
    Tls {
        port: u16,
        route: String,
        source: Box<TlsError>,
    },
    #[error("port {port}: cannot listen on {addr}: {reason}")]
    Bind {
        port: u16,
        addr: SocketAddr,
        reason: String,
        source: std::io::Error,
    },
}

/// A backend as the forwarding code needs it.
#[derive(Debug, Clone)]
pub(crate) struct Backend {
    pub(crate) addr: SocketAddr,
    /// `addr` as the authority of forwarded l7 requests.
    pub(crate) authority: Authority,
    active: Counter,
}

impl Backend {
    /// Counts one unit of work on this backend until the returned guard is dropped.
    pub(crate) fn start(&self) -> InFlight {
        InFlight::start(&self.active)
    }
}

/// How one port forwards: everything a connection needs, swapped as a whole by `apply`.
pub(crate) enum PortConfig {
    L4(HostMap<Backend>),
    L7(Site),
}

/// A port being served: its number and its current config. Shared by the accept loop and
/// the l7 connections, which look the config up again for each request.
pub(crate) struct Port {
    number: u16,
    config: RwLock<Arc<PortConfig>>,
}

impl Port {
    pub(crate) fn number(&self) -> u16 {
        self.number
    }

    /// The current config (a short read lock, then an `Arc` clone).
    pub(crate) fn current(&self) -> Arc<PortConfig> {
        Arc::clone(&self.config.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Picks a backend from the current config and starts counting work on it, both under
    /// the config's read lock. A switch takes the write lock, so once `apply` returned, work
    /// either was counted on the old backend or goes to the new one: a drain that asks after
    /// the switch never misses work about to reach the old backend.
    pub(crate) fn start_on(
        &self,
        pick: impl FnOnce(&PortConfig) -> Option<&Backend>,
    ) -> Option<(Backend, InFlight)> {
        let config = self.config.read().unwrap_or_else(PoisonError::into_inner);
        let backend = pick(&config)?;
        Some((backend.clone(), backend.start()))
    }

    fn replace(&self, config: PortConfig) {
        *self.config.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(config);
    }
}

struct Running {
    port: Arc<Port>,
    /// One accept loop per worker.
    accepts: Vec<JoinHandle<()>>,
}

/// One listening socket per worker on the same port (SO_REUSEPORT: the kernel spreads new
/// connections over them), not yet registered with any runtime.
type Bound = Vec<std::net::TcpListener>;

/// A table made ready to switch to: every config built and every new port bound.
pub(crate) struct Prepared {
    configs: BTreeMap<u16, PortConfig>,
    bound: BTreeMap<u16, Bound>,
}

/// All public listeners of the proxy.
pub(crate) struct Listeners {
    bind: IpAddr,
    workers: Arc<Workers>,
    activity: Arc<Activity>,
    provider: Arc<CryptoProvider>,
    running: BTreeMap<u16, Running>,
}

impl Listeners {
    pub(crate) fn new(bind: IpAddr, activity: Arc<Activity>, workers: Arc<Workers>) -> Self {
        Self {
            bind,
            workers,
            activity,
            provider: tls::provider(),
            running: BTreeMap::new(),
        }
    }

    /// Builds every port's config and binds the ports not served yet; nothing is switched.
    /// The table must have been validated. Any failure drops what was bound.
    pub(crate) fn prepare(&self, table: &Table) -> Result<Prepared, PortError> {
        let mut prepared = Prepared {
            configs: BTreeMap::new(),
            bound: BTreeMap::new(),
        };
        let by_port = table.by_port();
        // Configs first (cert loading fails more often than binding, and binds nothing).
        for (&port, routes) in &by_port {
            prepared
                .configs
                .insert(port, self.port_config(port, routes)?);
        }
        for &port in by_port.keys() {
            if !self.running.contains_key(&port) {
                prepared.bound.insert(port, self.listen(port)?);
            }
        }
        Ok(prepared)
    }

    /// At start: serves every port of `table` that can be served, logging the others.
    /// Returns the part of the table that is served.
    pub(crate) async fn restore(&mut self, table: &Table) -> Table {
        let mut prepared = Prepared {
            configs: BTreeMap::new(),
            bound: BTreeMap::new(),
        };
        for (port, routes) in table.by_port() {
            let ready = self
                .port_config(port, &routes)
                .and_then(|config| Ok((config, self.listen(port)?)));
            match ready {
                Ok((config, listener)) => {
                    prepared.configs.insert(port, config);
                    prepared.bound.insert(port, listener);
                }
                Err(err) => warn!(error = %err, "not serving a port of the saved table"),
            }
        }
        let served: Vec<u16> = prepared.configs.keys().copied().collect();
        self.commit(prepared).await;
        table.restricted_to(&served)
    }

    /// Switches to a prepared table: kept ports get their new config, new ports start
    /// accepting, ports no longer in the table stop accepting (open connections carry on).
    pub(crate) async fn commit(&mut self, mut prepared: Prepared) {
        let removed: Vec<u16> = self
            .running
            .keys()
            .filter(|port| !prepared.configs.contains_key(port))
            .copied()
            .collect();
        for (number, config) in prepared.configs {
            if let Some(running) = self.running.get(&number) {
                running.port.replace(config);
                continue;
            }
            let Some(listeners) = prepared.bound.remove(&number) else {
                continue;
            };
            let port = Arc::new(Port {
                number,
                config: RwLock::new(Arc::new(config)),
            });
            // Each worker accepts on its own socket and serves what it accepted itself.
            let accepts = listeners
                .into_iter()
                .zip(self.workers.all())
                .map(|(listener, worker)| {
                    worker.handle.spawn(accept_loop(
                        listener,
                        Arc::clone(&port),
                        Arc::clone(&worker.http),
                    ))
                })
                .collect();
            info!(port = number, "listening");
            self.running.insert(number, Running { port, accepts });
        }
        for number in removed {
            if let Some(running) = self.running.remove(&number) {
                for accept in &running.accepts {
                    accept.abort();
                }
                // Wait until the listeners are closed, so the port is free when this returns.
                for accept in running.accepts {
                    let _ = accept.await;
                }
                info!(port = number, "stopped listening");
            }
        }
        self.activity.prune();
    }

    fn port_config(&self, port: u16, routes: &[&Route]) -> Result<PortConfig, PortError> {
        let mut hosts = HostMap::default();
        for route in routes {
            hosts.insert(route.hostname.as_deref(), self.backend(route.backend));
        }
        match routes.first().map(|route| route.mode) {
            Some(Mode::L7) => {
                let tls = if routes.iter().any(|route| route.tls.is_some()) {
                    let certs =
                        tls::load_certs(routes, &self.provider).map_err(|(route, source)| {
                            PortError::Tls {
                                port,
                                route: route.label(),
                                source: Box::new(source),
                            }
                        })?;
                    let config = tls::server_config(certs, &self.provider).map_err(|source| {
                        PortError::Tls {
                            port,
                            route: "(all)".to_owned(),
                            source: Box::new(source),
                        }
                    })?;
                    Some(TlsAcceptor::from(config))
                } else {
                    None
                };
                Ok(PortConfig::L7(Site { hosts, tls }))
            }
            Some(Mode::L4) | None => Ok(PortConfig::L4(hosts)),
        }
    }

    fn backend(&self, addr: SocketAddr) -> Backend {
        Backend {
            addr,
            authority: authority_of(addr),
            active: self.activity.counter(addr),
        }
    }

    /// Binds `bind:port` with SO_REUSEADDR (a restarted proxy rebinds despite TIME_WAIT; a port
    /// another socket listens on still fails).
    /// Binds one socket per worker on `bind:port`; the first one that fails fails them all.
    /// A plain bind comes first: SO_REUSEPORT would let our sockets share a port that another
    /// process (another proxy, say) already listens on with the same option.
    fn listen(&self, port: u16) -> Result<Bound, PortError> {
        drop(self.listen_one(port, false)?);
        (0..self.workers.all().len())
            .map(|_| self.listen_one(port, true))
            .collect()
    }

    fn listen_one(&self, port: u16, shared: bool) -> Result<std::net::TcpListener, PortError> {
        let addr = SocketAddr::new(self.bind, port);
        let bind_err = |source: std::io::Error| PortError::Bind {
            port,
            addr,
            reason: match source.kind() {
                std::io::ErrorKind::AddrInUse => "address in use".to_owned(),
                _ => source.to_string(),
            },
            source,
        };
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(bind_err)?;
        socket.set_reuseaddr(true).map_err(bind_err)?;
        // Only sockets that ask for it share the port: a port another process listens on
        // without SO_REUSEPORT still fails with "address in use".
        socket.set_reuseport(shared).map_err(bind_err)?;
        socket.bind(addr).map_err(bind_err)?;
        socket
            .listen(BACKLOG)
            .and_then(TcpListener::into_std)
            .map_err(bind_err)
    }
}

fn authority_of(addr: SocketAddr) -> Authority {
    // A SocketAddr always formats as a valid authority ("1.2.3.4:5" or "[::1]:5").
    addr.to_string()
        .parse()
        .unwrap_or_else(|_| Authority::from_static("127.0.0.1"))
}

/// Accepts until aborted; each connection is handed to its mode's forwarding in its own task.
async fn accept_loop(listener: std::net::TcpListener, port: Arc<Port>, http: Arc<Http>) {
    // Registered with the runtime of the worker this loop runs on.
    let listener = match TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(err) => {
            warn!(port = port.number, error = %err, "cannot accept on a worker");
            return;
        }
    };
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                use std::io::ErrorKind::{ConnectionAborted, ConnectionReset, Interrupted};
                if !matches!(
                    err.kind(),
                    ConnectionAborted | ConnectionReset | Interrupted
                ) {
                    // Out of file descriptors and the like: do not spin.
                    warn!(port = port.number, error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let config = port.current();
        match &*config {
            PortConfig::L4(hosts) if hosts.has_hostnames() => {
                tokio::spawn(sni::serve(stream, Arc::clone(&port)));
            }
            PortConfig::L4(_) => {
                let picked = port.start_on(|config| match config {
                    PortConfig::L4(hosts) if !hosts.has_hostnames() => hosts.default_entry(),
                    _ => None,
                });
                match picked {
                    Some((backend, in_flight)) => {
                        tokio::spawn(l4::serve(stream, backend, in_flight));
                    }
                    None => debug!(port = port.number, "no route; connection closed"),
                }
            }
            PortConfig::L7(site) => {
                let tls = site.tls.clone();
                tokio::spawn(l7::serve(
                    stream,
                    peer,
                    tls,
                    Arc::clone(&port),
                    Arc::clone(&http),
                ));
            }
        }
    }
}
