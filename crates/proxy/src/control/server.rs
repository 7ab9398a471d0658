//! The control socket's server side: one task per connection, one response line per request
//! line; bad input gets `ok:false` and never stops the proxy.

use std::future::Future;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tracing::{debug, info, warn};

use super::{Request, Response};
use crate::error_chain;
use crate::state::State;

/// The longest request line accepted (a table of thousands of routes fits easily).
const MAX_LINE: u64 = 16 * 1024 * 1024;

/// Accepts control connections until `shutdown` resolves.
pub(crate) async fn serve(
    listener: UnixListener,
    state: Arc<State>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(connection(stream, Arc::clone(&state)));
                }
                Err(err) => {
                    warn!(error = %err, "control socket accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
        }
    }
}

async fn connection(stream: UnixStream, state: Arc<State>) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut reader)
            .take(MAX_LINE + 1)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(0) => return,
            Ok(_) => {}
            Err(err) => {
                debug!(error = %err, "control connection read failed");
                return;
            }
        }
        let complete = line.last() == Some(&b'\n');
        let too_long = !complete && line.len() as u64 > MAX_LINE;
        let response = if too_long {
            Response::error(format!("request longer than {MAX_LINE} bytes"))
        } else {
            handle(&line, &state).await
        };
        let mut out = serde_json::to_vec(&response).unwrap_or_else(|err| {
            format!(r#"{{"ok":false,"error":"cannot encode the response: {err}"}}"#).into_bytes()
        });
        out.push(b'\n');
        if let Err(err) = write.write_all(&out).await {
            debug!(error = %err, "control connection write failed");
            return;
        }
        if too_long || !complete {
            return; // the rest of an oversized line, or EOF: nothing more to read
        }
    }
}

async fn handle(line: &[u8], state: &State) -> Response {
    let request: Request = match serde_json::from_slice(line.trim_ascii()) {
        Ok(request) => request,
        Err(err) => return Response::error(format!("malformed request: {err}")),
    };
    match request {
        Request::Ping => Response {
            pid: Some(std::process::id()),
            version: Some(crate::VERSION.to_owned()),
            routes: Some(state.table().await.routes.len()),
            ..Response::ok()
        },
        Request::Table => Response {
            table: Some((*state.table().await).clone()),
            ..Response::ok()
        },
        Request::Active { backends } => Response {
            active: Some(state.active(&backends)),
            ..Response::ok()
        },
        Request::Apply { table } => {
            let routes = table.routes.len();
            match state.apply(table).await {
                Ok(()) => {
                    info!(routes, "routing table applied");
                    Response::ok()
                }
                Err(err) => {
                    let message = error_chain(&err);
                    warn!(error = %message, "routing table refused");
                    Response::error(message)
                }
            }
        }
    }
}
