//! A VM's output is its serial console log: the last lines, then (following) what is appended.

use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;

use crate::{LogLine, LogStream, LogStreamKind, RuntimeError};

const POLL: Duration = Duration::from_millis(200);

pub fn stream(path: PathBuf, tail: Option<u32>, follow: bool) -> LogStream {
    let (tx, rx) = mpsc::channel::<Result<LogLine, RuntimeError>>(256);
    tokio::spawn(async move {
        let (complete, mut offset) = read_end(&path, tail).await;
        let mut text = String::from_utf8_lossy(&complete).into_owned();
        // Lines the current log lacks come from the generation before it (`rotate`).
        let have = text.lines().count();
        let missing = tail.map_or(Some(None), |n| {
            (have < n as usize).then(|| Some(n - u32::try_from(have).unwrap_or(n)))
        });
        if let Some(older_tail) = missing {
            let (older, _) = read_end(&older_generation(&path), older_tail).await;
            text = String::from_utf8_lossy(&older).into_owned() + &text;
        }
        let lines: Vec<&str> = text.lines().collect();
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

/// The console's complete lines, only its end for a `tail` (a long-running VM's console can be
/// large), and the offset just after the last complete line (where following resumes; a
/// partial last line is sent when it completes).
async fn read_end(path: &Path, tail: Option<u32>) -> (Vec<u8>, u64) {
    let Ok(mut file) = tokio::fs::File::open(path).await else {
        return (Vec::new(), 0);
    };
    let len = file.metadata().await.map_or(0, |m| m.len());
    let mut window: u64 = 64 * 1024;
    loop {
        let start = if tail.is_some() {
            len.saturating_sub(window)
        } else {
            0
        };
        let mut bytes = Vec::new();
        let read = async {
            file.seek(std::io::SeekFrom::Start(start)).await?;
            (&mut file).take(len - start).read_to_end(&mut bytes).await
        };
        if read.await.is_err() {
            return (Vec::new(), 0);
        }
        let newlines = bytes.iter().filter(|b| **b == b'\n').count();
        // Enough lines in the window (one more than asked: the first may be cut), or the
        // whole file read.
        if start == 0 || tail.is_some_and(|n| newlines > n as usize) {
            let first = if start == 0 {
                0
            } else {
                bytes.iter().position(|b| *b == b'\n').map_or(0, |i| i + 1)
            };
            let end = bytes
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(first, |i| i + 1);
            let complete = bytes
                .get(first..end.max(first))
                .unwrap_or_default()
                .to_vec();
            return (complete, start + end as u64);
        }
        window = window.saturating_mul(4);
    }
}

/// `<log>.1`: where `rotate` moves a console log's content.
fn older_generation(log: &Path) -> PathBuf {
    let mut older = log.as_os_str().to_os_string();
    older.push(".1");
    PathBuf::from(older)
}

/// Keeps a console log within `max_bytes`: when it is larger, its content becomes
/// `<log>.1` (replacing the previous one) and the log is truncated in place, as logrotate's
/// copytruncate does. QEMU keeps writing through its descriptor, opened with O_APPEND
/// (`append=on`), so its next line lands at the new start; a line written between the copy and
/// the truncation is lost. True when it rotated.
pub fn rotate(log: &Path, max_bytes: u64) -> std::io::Result<bool> {
    let len = match std::fs::metadata(log) {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if max_bytes == 0 || len <= max_bytes {
        return Ok(false);
    }
    let older = older_generation(log);
    let mut partial = older.as_os_str().to_os_string();
    partial.push(".new");
    let partial = PathBuf::from(partial);
    std::fs::copy(log, &partial)?;
    std::fs::rename(&partial, &older)?;
    std::fs::OpenOptions::new()
        .write(true)
        .open(log)?
        .set_len(0)?;
    Ok(true)
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_console_over_its_limit_moves_to_dot_1_and_restarts_empty() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("console.log");
        // A writer like QEMU's: O_APPEND, kept open across the rotation.
        let mut qemu = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        qemu.write_all(&b"boot line\n".repeat(100)).unwrap();
        assert!(!rotate(&log, 4096).unwrap(), "1000 bytes stay");
        assert!(!rotate(&log, 0).unwrap(), "0 is no limit");
        assert!(rotate(&log, 500).unwrap());
        let older = dir.path().join("console.log.1");
        assert_eq!(std::fs::read(&older).unwrap().len(), 1000);
        assert_eq!(std::fs::metadata(&log).unwrap().len(), 0);
        qemu.write_all(b"after\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "after\n",
            "no hole before it"
        );
        qemu.write_all(&b"more lines\n".repeat(60)).unwrap();
        assert!(rotate(&log, 500).unwrap());
        assert!(
            std::fs::read_to_string(&older)
                .unwrap()
                .starts_with("after\n"),
            "one older generation is kept"
        );
        assert!(!rotate(&dir.path().join("absent.log"), 1).unwrap());
    }

    #[tokio::test]
    async fn a_tail_reads_only_the_end_and_resumes_after_the_last_complete_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.log");
        let mut text: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
        text.push_str("partial");
        std::fs::write(&path, &text).unwrap();
        let complete_end = (text.len() - "partial".len()) as u64;

        let (bytes, offset) = read_end(&path, Some(3)).await;
        // Only a window at the end was read, starting at a line boundary.
        assert!(bytes.len() <= 64 * 1024, "{} bytes read", bytes.len());
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("line "), "the cut first line is dropped");
        let last: Vec<&str> = text.lines().rev().take(3).collect();
        assert_eq!(last, ["line 19999", "line 19998", "line 19997"]);
        assert_eq!(offset, complete_end);

        let (all, offset) = read_end(&path, None).await;
        assert_eq!(all.len() as u64, complete_end);
        assert_eq!(offset, complete_end);
        let (none, offset) = read_end(&dir.path().join("missing"), Some(3)).await;
        assert!(none.is_empty() && offset == 0);
    }

    #[tokio::test]
    async fn a_tail_takes_what_the_current_log_lacks_from_the_rotated_one() {
        use tokio_stream::StreamExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.log");
        std::fs::write(&path, "old 1\nold 2\nold 3\n").unwrap();
        assert!(rotate(&path, 1).unwrap());
        std::fs::write(&path, "new 1\n").unwrap();
        let lines = |tail| {
            let path = path.clone();
            async move {
                stream(path, tail, false)
                    .map(|l| l.unwrap().line)
                    .collect::<Vec<_>>()
                    .await
            }
        };
        assert_eq!(lines(Some(3)).await, ["old 2", "old 3", "new 1"]);
        assert_eq!(lines(Some(1)).await, ["new 1"]);
        assert_eq!(lines(None).await, ["old 1", "old 2", "old 3", "new 1"]);
    }
}
