//! The control socket's client side, for the agent: typed calls over one connection.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use super::Response;
use crate::table::Table;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to the proxy at {path:?}: {source}")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("talking to the proxy: {0}")]
    Io(#[from] std::io::Error),
    #[error("the proxy closed the control connection")]
    Closed,
    #[error("the proxy's response is not understood: {0}")]
    Malformed(#[from] serde_json::Error),
    /// The proxy answered `ok:false`; for `apply`, nothing changed.
    #[error("the proxy refused: {0}")]
    Refused(String),
    #[error("the proxy's response lacks {0}")]
    Missing(&'static str),
}

/// What `ping` tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub pid: u32,
    pub version: String,
    pub routes: usize,
}

/// A control connection; requests are sent one at a time, each awaiting its response.
/// Calls have no timeout of their own: wrap them in `tokio::time::timeout` where needed.
#[derive(Debug)]
pub struct Client {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    line: String,
}

/// The request shapes, borrowed, for sending.
#[derive(Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Outgoing<'a> {
    Ping,
    Apply { table: &'a Table },
    Table,
    Active { backends: &'a [SocketAddr] },
}

impl Client {
    /// Connects to the control socket (`proxy::socket_path(state_dir)`).
    pub async fn connect(socket: impl AsRef<Path>) -> Result<Self, ClientError> {
        let path = socket.as_ref();
        let stream = UnixStream::connect(path)
            .await
            .map_err(|source| ClientError::Connect {
                path: path.to_path_buf(),
                source,
            })?;
        let (read, writer) = stream.into_split();
        Ok(Self {
            reader: BufReader::new(read),
            writer,
            line: String::new(),
        })
    }

    /// The proxy's pid, version and number of routes served.
    pub async fn ping(&mut self) -> Result<Status, ClientError> {
        let response = self.call(&Outgoing::Ping).await?;
        Ok(Status {
            pid: response.pid.ok_or(ClientError::Missing("pid"))?,
            version: response.version.ok_or(ClientError::Missing("version"))?,
            routes: response.routes.ok_or(ClientError::Missing("routes"))?,
        })
    }

    /// Replaces the whole routing table. `Ok` once it is saved and served; on
    /// `ClientError::Refused` nothing changed.
    pub async fn apply(&mut self, table: &Table) -> Result<(), ClientError> {
        self.call(&Outgoing::Apply { table }).await.map(drop)
    }

    /// The table being served.
    pub async fn table(&mut self) -> Result<Table, ClientError> {
        self.call(&Outgoing::Table)
            .await?
            .table
            .ok_or(ClientError::Missing("table"))
    }

    /// Work in flight per backend: open l4 connections plus unfinished l7 requests.
    pub async fn active(
        &mut self,
        backends: &[SocketAddr],
    ) -> Result<BTreeMap<SocketAddr, u64>, ClientError> {
        self.call(&Outgoing::Active { backends })
            .await?
            .active
            .ok_or(ClientError::Missing("active"))
    }

    /// Sends `line` as is (a newline is added) and returns the response, `ok:false` included.
    pub async fn raw(&mut self, line: &[u8]) -> Result<Response, ClientError> {
        self.writer.write_all(line).await?;
        self.writer.write_all(b"\n").await?;
        self.read_response().await
    }

    /// Completes when the proxy closes this connection (it exited, or was killed), while no
    /// call is under way. Cancel-safe: dropping it loses nothing.
    pub async fn closed(&mut self) {
        // Nothing is sent unasked: anything read here is stray and dropped.
        while let Ok(stray) = self.reader.fill_buf().await {
            if stray.is_empty() {
                return;
            }
            let n = stray.len();
            self.reader.consume(n);
        }
    }

    async fn call(&mut self, request: &Outgoing<'_>) -> Result<Response, ClientError> {
        let mut line = serde_json::to_vec(request)?;
        line.push(b'\n');
        self.writer.write_all(&line).await?;
        let response = self.read_response().await?;
        if response.ok {
            Ok(response)
        } else {
            Err(ClientError::Refused(
                response
                    .error
                    .unwrap_or_else(|| "no reason given".to_owned()),
            ))
        }
    }

    async fn read_response(&mut self) -> Result<Response, ClientError> {
        self.line.clear();
        if self.reader.read_line(&mut self.line).await? == 0 {
            return Err(ClientError::Closed);
        }
        Ok(serde_json::from_str(&self.line)?)
    }
}
