//! The public listeners, one per port: building each port's forwarding config from the table,
//! binding new ports before anything switches, swapping configs, and the accept loops.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use http::uri::Authority;
use rustls::crypto::CryptoProvider;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::activity::{Activity, Counter, InFlight};
use crate::hosts::HostMap;
use crate::l7::Site;
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

    fn replace(&self, config: PortConfig) {
        *self.config.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(config);
    }
}

struct Running {
    port: Arc<Port>,
    accept: JoinHandle<()>,
}

/// A table made ready to switch to: every config built and every new port bound.
pub(crate) struct Prepared {
    configs: BTreeMap<u16, PortConfig>,
    bound: BTreeMap<u16, TcpListener>,
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
            let Some(listener) = prepared.bound.remove(&number) else {
                continue;
            };
            let port = Arc::new(Port {
                number,
                config: RwLock::new(Arc::new(config)),
            });
            let accept = tokio::spawn(accept_loop(
                listener,
                Arc::clone(&port),
                Arc::clone(&self.workers),
            ));
            info!(port = number, "listening");
            self.running.insert(number, Running { port, accept });
        }
        for number in removed {
            if let Some(running) = self.running.remove(&number) {
                running.accept.abort();
                // Wait until the listener is closed, so the port is free when this returns.
                let _ = running.accept.await;
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
    fn listen(&self, port: u16) -> Result<TcpListener, PortError> {
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
        socket.bind(addr).map_err(bind_err)?;
        socket.listen(BACKLOG).map_err(bind_err)
    }
}

fn authority_of(addr: SocketAddr) -> Authority {
    // A SocketAddr always formats as a valid authority ("1.2.3.4:5" or "[::1]:5").
    addr.to_string()
        .parse()
        .unwrap_or_else(|_| Authority::from_static("127.0.0.1"))
}

/// Accepts until aborted; each connection is handed to its mode's forwarding in its own task.
async fn accept_loop(listener: TcpListener, port: Arc<Port>, workers: Arc<Workers>) {
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
        // The connection moves to a worker's runtime: a std stream, registered there.
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(err) => {
                debug!(port = port.number, error = %err, "cannot hand the connection over");
                continue;
            }
        };
        let worker = workers.pick();
        let config = port.current();
        let port = Arc::clone(&port);
        let http = Arc::clone(&worker.http);
        worker.handle.spawn(async move {
            let stream = match TcpStream::from_std(stream) {
                Ok(stream) => stream,
                Err(err) => {
                    debug!(port = port.number, error = %err, "cannot register the connection");
                    return;
                }
            };
            match &*config {
                PortConfig::L4(hosts) if hosts.has_hostnames() => {
                    sni::serve(stream, Arc::clone(&config)).await;
                }
                PortConfig::L4(hosts) => match hosts.default_entry() {
                    Some(backend) => l4::serve(stream, backend.clone()).await,
                    None => debug!(port = port.number, "no route; connection closed"),
                },
                PortConfig::L7(site) => {
                    let tls = site.tls.clone();
                    l7::serve(stream, peer, tls, port, http).await;
                }
            }
        });
    }
}
