//! A VM's output is its serial console log: the last lines, then (following) what is appended.

use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;

use crate::{LogLine, LogStream, LogStreamKind, RuntimeError};

const POLL: Duration = Duration::from_millis(200);

pub fn stream(path: PathBuf, tail: Option<u32>, follow: bool) -> LogStream {
    let (tx, rx) = mpsc::channel::<Result<LogLine, RuntimeError>>(256);
    tokio::spawn(async move {
        let text = tokio::fs::read(&path).await.unwrap_or_default();
        let mut offset = text.len() as u64;
        let text = String::from_utf8_lossy(&text);
        // Only complete lines now; a partial last line is sent when it completes.
        let complete = match text.rfind('\n') {
            Some(end) => &text[..=end],
            None => "",
        };
        offset -= (text.len() - complete.len()) as u64;
        let lines: Vec<&str> = complete.lines().collect();
        let skip = tail.map_or(0, |n| lines.len().saturating_sub(n as usize));
        for line in &lines[skip..] {
            if send(&tx, line).await.is_err() {
                return;
            }
        }
        if !follow {
            return;
        }
        let mut pending = String::new();
        loop {
            tokio::select! {
                () = tokio::time::sleep(POLL) => {}
                () = tx.closed() => return,
            }
            let Ok(mut file) = tokio::fs::File::open(&path).await else {
                continue;
            };
            let Ok(len) = file.metadata().await.map(|m| m.len()) else {
                continue;
            };
            if len < offset {
                offset = 0; // truncated: start over
            }
            if len == offset || file.seek(std::io::SeekFrom::Start(offset)).await.is_err() {
                continue;
            }
            let mut chunk = Vec::new();
            if file.read_to_end(&mut chunk).await.is_err() {
                continue;
            }
            offset += chunk.len() as u64;
            pending.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = pending.find('\n') {
                let line: String = pending.drain(..=end).collect();
                if send(&tx, line.trim_end_matches(['\n', '\r']))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

async fn send(
    tx: &mpsc::Sender<Result<LogLine, RuntimeError>>,
    line: &str,
) -> Result<(), mpsc::error::SendError<Result<LogLine, RuntimeError>>> {
    tx.send(Ok(LogLine {
        stream: LogStreamKind::Stdout,
        line: line.trim_end_matches('\r').to_string(),
    }))
    .await
}
