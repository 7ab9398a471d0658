//! A minimal QMP client: greeting, capabilities negotiation, then one command and its
//! answer, or (on the VM's second monitor) its events until QEMU ends.

use serde_json::Value;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::RuntimeError;

const TIMEOUT: Duration = Duration::from_secs(3);

fn qmp_err(socket: &Path, detail: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Failed {
        what: format!("QMP on {}", socket.display()),
        detail: detail.to_string(),
    }
}

/// Sends `command` (after the handshake) and returns its `return` value.
pub async fn execute(socket: &Path, command: &str) -> Result<Value, RuntimeError> {
    tokio::time::timeout(TIMEOUT, execute_inner(socket, command))
        .await
        .map_err(|_| qmp_err(socket, format!("no answer to {command} within {TIMEOUT:?}")))?
}

type Lines = tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>;

/// Connects and reads QEMU's greeting.
async fn connect(socket: &Path) -> Result<(Lines, tokio::net::unix::OwnedWriteHalf), RuntimeError> {
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|e| qmp_err(socket, e))?;
    let (read, write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let greeting = next_message(&mut lines, socket).await?;
    if greeting.get("QMP").is_none() {
        return Err(qmp_err(socket, format!("unexpected greeting {greeting}")));
    }
    Ok((lines, write))
}

/// A connection to a VM's events monitor, negotiated and waiting (`follow`).
pub struct EventFollower {
    lines: Lines,
    write: tokio::net::unix::OwnedWriteHalf,
}

/// Connects to the monitor on `socket` to follow its events (bounded by the timeout). QEMU
/// serves one client per monitor: this is the VM's second (`events.sock`), so commands on
/// the first are never held up.
pub async fn follow(socket: &Path) -> Result<EventFollower, RuntimeError> {
    tokio::time::timeout(TIMEOUT, async {
        let (lines, mut write) = connect(socket).await?;
        write
            .write_all(b"{\"execute\": \"qmp_capabilities\"}\n")
            .await
            .map_err(|e| qmp_err(socket, e))?;
        Ok(EventFollower { lines, write })
    })
    .await
    .map_err(|_| qmp_err(socket, format!("no greeting within {TIMEOUT:?}")))?
}

impl EventFollower {
    /// Waits as long as QEMU runs (until the connection closes): returns the last event that
    /// said why its guest went (`SHUTDOWN`, `GUEST_PANICKED`), or `None` when none did (QEMU
    /// was killed).
    pub async fn ended(mut self) -> Option<String> {
        let mut why = None;
        while let Ok(Some(line)) = self.lines.next_line().await {
            let Ok(message) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if let Some(event) = message.get("event").and_then(Value::as_str)
                && matches!(event, "SHUTDOWN" | "GUEST_PANICKED")
            {
                why = Some(event.to_string());
            }
        }
        let _ = self.write.shutdown().await;
        why
    }
}

async fn execute_inner(socket: &Path, command: &str) -> Result<Value, RuntimeError> {
    let (mut lines, mut write) = connect(socket).await?;
    for cmd in ["qmp_capabilities", command] {
        let request = serde_json::json!({ "execute": cmd }).to_string() + "\n";
        write
            .write_all(request.as_bytes())
            .await
            .map_err(|e| qmp_err(socket, e))?;
        // Asynchronous events may arrive before the answer; skip them.
        let answer = loop {
            let msg = next_message(&mut lines, socket).await?;
            if msg.get("event").is_none() {
                break msg;
            }
        };
        if let Some(error) = answer.get("error") {
            return Err(qmp_err(socket, format!("{cmd}: {error}")));
        }
        if cmd == command {
            return Ok(answer.get("return").cloned().unwrap_or(Value::Null));
        }
    }
    Ok(Value::Null)
}

async fn next_message(lines: &mut Lines, socket: &Path) -> Result<Value, RuntimeError> {
    let line = lines
        .next_line()
        .await
        .map_err(|e| qmp_err(socket, e))?
        .ok_or_else(|| qmp_err(socket, "connection closed"))?;
    serde_json::from_str(&line).map_err(|e| qmp_err(socket, format!("bad JSON {line:?}: {e}")))
}

/// `query-status`'s `status` ("running", "paused", "shutdown", ...).
pub async fn status(socket: &Path) -> Result<String, RuntimeError> {
    let answer = execute(socket, "query-status").await?;
    Ok(answer
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or("unknown")
        .to_string())
}
