//! Forwarding workers: each a thread with a single-threaded runtime and its own pooled
//! backend client. A client connection lives on one worker for its whole life, together
//! with the backend connections it uses, so forwarding a request never wakes a task on
//! another thread (measured: a multi-threaded runtime spent much of l7's time on that).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::Handle;

use crate::l7::Http;

pub(crate) struct Worker {
    pub(crate) handle: Handle,
    pub(crate) http: Arc<Http>,
}

pub(crate) struct Workers {
    workers: Vec<Worker>,
    next: AtomicUsize,
}

impl Workers {
    /// Starts `count` workers (at least one). Their threads run until the process ends.
    pub(crate) fn start(count: usize) -> std::io::Result<Self> {
        let mut workers = Vec::with_capacity(count.max(1));
        for index in 0..count.max(1) {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::Builder::new()
                .name(format!("mcp-proxy-worker-{index}"))
                .spawn(move || {
                    match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(runtime) => {
                            let _ = tx.send(Ok(runtime.handle().clone()));
                            runtime.block_on(std::future::pending::<()>());
                        }
                        Err(err) => {
                            let _ = tx.send(Err(err));
                        }
                    }
                })?;
            let handle = rx.recv().map_err(|_| {
                std::io::Error::other(format!("worker {index} ended before it started"))
            })??;
            workers.push(Worker {
                handle,
                http: Arc::new(Http::new()),
            });
        }
        Ok(Self {
            workers,
            next: AtomicUsize::new(0),
        })
    }

    /// The worker for the next connection (round robin).
    pub(crate) fn pick(&self) -> &Worker {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.workers.len();
        &self.workers[index]
    }
}
