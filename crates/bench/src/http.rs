//! Waiting for a first HTTP 200: a new attempt every few milliseconds, overlapping, so a
//! connection that stalls (QEMU's user-mode network accepts before the guest is up and holds
//! the connection) never delays the answer of a later attempt.

use anyhow::bail;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;

/// Attempts in flight at most; a stalled one gives up after `ATTEMPT_TIMEOUT`.
const MAX_IN_FLIGHT: usize = 256;
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Poller {
    rt: tokio::runtime::Runtime,
    pub interval: Duration,
}

impl Poller {
    pub fn new(interval: Duration) -> anyhow::Result<Self> {
        Ok(Self {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
            interval,
        })
    }

    /// When 127.0.0.1:`port` first answered `GET /` with 200 (at most `limit` from now).
    pub fn first_200(&self, port: u16, limit: Duration) -> anyhow::Result<Instant> {
        self.rt.block_on(first_200(port, self.interval, limit))
    }
}

async fn first_200(port: u16, interval: Duration, limit: Duration) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + limit;
    let mut attempts = JoinSet::new();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                crate::interrupt::check()?;
                if Instant::now() > deadline {
                    bail!("127.0.0.1:{port} gave no HTTP 200 within {limit:?}");
                }
                if attempts.len() < MAX_IN_FLIGHT {
                    attempts.spawn(attempt(port));
                }
            }
            Some(done) = attempts.join_next(), if !attempts.is_empty() => {
                if let Ok(Some(at)) = done {
                    return Ok(at);
                }
            }
        }
    }
}

/// One `GET /`; when the answer was a 200, the instant its status line arrived.
async fn attempt(port: u16) -> Option<Instant> {
    let work = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        stream.set_nodelay(true).ok()?;
        stream
            .write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await
            .ok()?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await.ok()?;
        let at = Instant::now();
        let ok = head.starts_with(b"HTTP/1.") && &head[8..12] == b" 200";
        ok.then_some(at)
    };
    tokio::time::timeout(ATTEMPT_TIMEOUT, work)
        .await
        .ok()
        .flatten()
}
