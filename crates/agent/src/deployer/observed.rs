//! The observed state `mcp status` answers from: the last merged listing, reused while
//! nothing can have changed it, so status calls stop costing a podman listing each.
//!
//! Invariants: the listing is reused only while podman's event stream is connected (events
//! tell of every change to our containers made outside mcp) and its generation is current.
//! The generation moves on every event about our containers, every VM that appears or
//! disappears, and every release of a service's lock (each change mcp makes happens under
//! one, so the status after an operation's reply never sees the listing from before it).
//! Concurrent calls that find it stale share one new listing (single flight): a listing begun
//! at or after a caller's arrival answers that caller, so callers waiting during churn do not
//! each list again in turn.

use runtime::InstanceInfo;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::AgentError;

#[derive(Default)]
pub struct ObservedCache {
    generation: AtomicU64,
    /// Whether podman's event stream is connected; without it nothing is reused.
    events_connected: Arc<AtomicBool>,
    last: tokio::sync::Mutex<Option<(u64, Arc<Vec<InstanceInfo>>)>>,
}

impl ObservedCache {
    /// Reuses listings while `events_connected` is true.
    pub fn new(events_connected: Arc<AtomicBool>) -> Self {
        Self {
            events_connected,
            ..Self::default()
        }
    }

    /// Something may have changed: the next call lists again.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// The current listing: the kept one when still current, else `list()`'s.
    pub async fn get_or_list<F>(
        &self,
        list: impl FnOnce() -> F,
    ) -> Result<Arc<Vec<InstanceInfo>>, AgentError>
    where
        F: Future<Output = Result<Vec<InstanceInfo>, AgentError>>,
    {
        if !self.events_connected.load(Ordering::SeqCst) {
            return list().await.map(Arc::new);
        }
        // Every change this caller can know of happened before this point: a listing begun at
        // this generation or later shows them all, even one another caller started.
        let arrival = self.generation.load(Ordering::SeqCst);
        let mut last = self.last.lock().await;
        if let Some((kept, listing)) = last.as_ref()
            && *kept >= arrival
        {
            return Ok(Arc::clone(listing));
        }
        // Read before listing: a change during the listing leaves it stale for later callers.
        let generation = self.generation.load(Ordering::SeqCst);
        let listing = Arc::new(list().await?);
        *last = Some((generation, Arc::clone(&listing)));
        Ok(listing)
    }
}

/// A service's lock; releasing it moves the observed state's generation on.
pub struct ServiceGuard {
    _guard: tokio::sync::OwnedMutexGuard<()>,
    observed: Arc<ObservedCache>,
}

impl ServiceGuard {
    pub(super) fn new(
        guard: tokio::sync::OwnedMutexGuard<()>,
        observed: Arc<ObservedCache>,
    ) -> Self {
        Self {
            _guard: guard,
            observed,
        }
    }
}

impl Drop for ServiceGuard {
    fn drop(&mut self) {
        self.observed.invalidate();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test]
    async fn a_listing_is_reused_until_something_changes_and_only_with_events() {
        let connected = Arc::new(AtomicBool::new(false));
        let cache = ObservedCache::new(Arc::clone(&connected));
        let calls = AtomicUsize::new(0);
        let list = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(Vec::new())
        };
        cache.get_or_list(list).await.unwrap();
        cache.get_or_list(list).await.unwrap();
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "no event stream: always listed"
        );
        connected.store(true, Ordering::SeqCst);
        cache.get_or_list(list).await.unwrap();
        cache.get_or_list(list).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 3, "reused");
        cache.invalidate();
        cache.get_or_list(list).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 4, "listed after a change");
    }

    #[tokio::test]
    async fn a_listing_begun_after_a_caller_arrived_answers_it_though_changes_follow() {
        let connected = Arc::new(AtomicBool::new(true));
        let cache = ObservedCache::new(connected);
        let calls = AtomicUsize::new(0);
        cache
            .get_or_list(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                // A change lands while this listing runs.
                cache.invalidate();
                Ok(Vec::new())
            })
            .await
            .unwrap();
        // The change may not be in that listing: the next caller lists again.
        cache
            .get_or_list(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(Vec::new())
            })
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_listing() {
        let connected = Arc::new(AtomicBool::new(true));
        let cache = Arc::new(ObservedCache::new(connected));
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let cache = Arc::clone(&cache);
            let calls = Arc::clone(&calls);
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_list(|| async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        Ok(Vec::new())
                    })
                    .await
                    .unwrap();
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
