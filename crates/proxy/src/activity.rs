//! Work in flight per backend (open l4 connections, unfinished l7 requests), for `active`.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

/// One backend's in-flight count, shared by every route that points at it.
pub(crate) type Counter = Arc<AtomicU64>;

/// The counters by backend address. A counter lives as long as a route of the current table or
/// some in-flight work holds it, so an old backend keeps being counted while it drains.
#[derive(Debug, Default)]
pub(crate) struct Activity {
    counters: Mutex<HashMap<SocketAddr, Weak<AtomicU64>>>,
}

impl Activity {
    /// The counter of `backend`, created at 0 when nothing counts it yet.
    pub(crate) fn counter(&self, backend: SocketAddr) -> Counter {
        let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(counter) = counters.get(&backend).and_then(Weak::upgrade) {
            return counter;
        }
        let counter = Counter::default();
        counters.insert(backend, Arc::downgrade(&counter));
        counter
    }

    /// The in-flight count of each of `backends` (0 for a backend nothing refers to).
    pub(crate) fn active(&self, backends: &[SocketAddr]) -> BTreeMap<SocketAddr, u64> {
        let counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        backends
            .iter()
            .map(|backend| {
                let count = counters
                    .get(backend)
                    .and_then(Weak::upgrade)
                    .map_or(0, |counter| counter.load(Ordering::Relaxed));
                (*backend, count)
            })
            .collect()
    }

    /// Forgets the counters nothing holds any more.
    pub(crate) fn prune(&self) {
        self.counters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, counter| counter.strong_count() > 0);
    }
}

/// One unit of in-flight work; counted from creation until dropped.
#[derive(Debug)]
pub(crate) struct InFlight(Counter);

impl InFlight {
    pub(crate) fn start(counter: &Counter) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(counter))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_guards_and_outlive_the_route() {
        let activity = Activity::default();
        let backend: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        let other: SocketAddr = "127.0.0.1:2".parse().expect("addr");
        let route_counter = activity.counter(backend);
        let a = InFlight::start(&route_counter);
        let b = InFlight::start(&activity.counter(backend));
        assert_eq!(activity.active(&[backend, other])[&backend], 2);
        assert_eq!(activity.active(&[other])[&other], 0);
        drop(route_counter); // the route is gone; the work still counts
        activity.prune();
        assert_eq!(activity.active(&[backend])[&backend], 2);
        drop(a);
        drop(b);
        assert_eq!(activity.active(&[backend])[&backend], 0);
        activity.prune();
        assert!(activity.counters.lock().expect("lock").is_empty());
    }
}
