//! Streaming `podman logs`: stdout and stderr merged line by line into one stream.

use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::mpsc;

use crate::{LogLine, LogStream, LogStreamKind, RuntimeError};

pub(super) async fn stream(
    podman: &podman_cli::Podman,
    argv: &[String],
    name: &str,
) -> Result<LogStream, RuntimeError> {
    let mut cmd = podman.command(argv);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| podman.unavailable(source))?;
    let (tx, rx) = mpsc::channel::<Result<LogLine, RuntimeError>>(256);
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let name = name.to_string();
    tokio::spawn(async move {
        // podman writes the container's stderr on its own stderr, and its own errors there
        // too; when podman fails, the last stderr lines become the error.
        let mut tasks = Vec::new();
        if let Some(out) = stdout {
            tasks.push(tokio::spawn(forward(
                out,
                LogStreamKind::Stdout,
                tx.clone(),
            )));
        }
        if let Some(err) = stderr {
            tasks.push(tokio::spawn(forward(
                err,
                LogStreamKind::Stderr,
                tx.clone(),
            )));
        }
        let status = tokio::select! {
            status = child.wait() => status,
            () = tx.closed() => return, // reader went away: kill_on_drop ends podman
        };
        for task in tasks {
            let _ = task.await;
        }
        if let Ok(status) = status
            && !status.success()
        {
            let _ = tx
                .send(Err(RuntimeError::Command {
                    what: format!("podman logs {name}"),
                    code: status.code(),
                    stderr: "see the preceding stderr lines".into(),
                }))
                .await;
        }
    });
    Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
}

async fn forward<R: AsyncRead + Unpin>(
    reader: R,
    stream: LogStreamKind,
    tx: mpsc::Sender<Result<LogLine, RuntimeError>>,
) {
    let mut lines = BufReader::new(reader).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if tx.send(Ok(LogLine { stream, line })).await.is_err() {
            return;
        }
    }
}
