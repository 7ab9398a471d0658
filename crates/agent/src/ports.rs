//! Host ports for routes: random within the configured range, checked by binding and against
//! the host's NAT table (a port some rule redirects elsewhere is never handed out), never one
//! that the registry records for another route or that an in-flight deploy reserved.
//!
//! Architecture invariant: choosing a port and reserving it happen under one lock, and a
//! reservation lasts until the deploy recorded the port in the registry or gave up, so two
//! concurrent deploys never get the same port.

use crate::nat::{self, ForwardedPorts};
use registry::{HostPorts, RouteKey};
use std::collections::BTreeSet;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::{IpAddr, TcpListener};
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex, PoisonError};

#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error(
        "no free host port left in {start}-{end} (bind address {bind}) for route {route}{}",
        redirected_note(*.redirected)
    )]
    Exhausted {
        start: u16,
        end: u16,
        bind: IpAddr,
        route: String,
        /// Ports of the range that the host's NAT table redirects elsewhere.
        redirected: usize,
    },
}

fn redirected_note(redirected: usize) -> String {
    if redirected == 0 {
        return String::new();
    }
    format!(
        "; {redirected} of them redirected elsewhere by the host's NAT table \
         (see `iptables-save -t nat`)"
    )
}

/// What a deploy wants: each route, and the port it would like back (its current one).
pub struct Wanted {
    pub key: RouteKey,
    pub preferred: Option<u16>,
    /// True when `preferred` is recorded for this very route (it may be bound by the route's
    /// own, about to be replaced, instance, so a bind check would wrongly fail).
    pub owned: bool,
}

pub struct PortAllocator {
    range: RangeInclusive<u16>,
    bind: IpAddr,
    reserved: Arc<Mutex<BTreeSet<u16>>>,
    /// Why the host's NAT table could not be read last time, so each reason is logged once.
    nat_unreadable: Mutex<Option<String>>,
}

/// Ports handed to one operation; unreserved when dropped (after the registry has them, or
/// when the operation failed).
pub struct Reservation {
    pub ports: HostPorts,
    reserved: Arc<Mutex<BTreeSet<u16>>>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut reserved = self.reserved.lock().unwrap_or_else(PoisonError::into_inner);
        for port in self.ports.values() {
            reserved.remove(port);
        }
    }
}

impl PortAllocator {
    pub fn new(range: RangeInclusive<u16>, bind: IpAddr) -> Self {
        Self {
            range,
            bind,
            reserved: Arc::default(),
            nat_unreadable: Mutex::default(),
        }
    }

    /// The ports the host's NAT table redirects now, for `allocate`. Where the table cannot
    /// be read (no iptables, not root), none: ports are then checked by binding alone.
    pub async fn redirected(&self) -> ForwardedPorts {
        let read = nat::read(self.bind.is_ipv6()).await;
        let mut unreadable = self
            .nat_unreadable
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match read {
            Ok(ports) => {
                *unreadable = None;
                ports
            }
            Err(why) => {
                if unreadable.as_ref() != Some(&why) {
                    tracing::info!(reason = %why, "host NAT table not read: host ports are checked by binding only");
                }
                *unreadable = Some(why);
                ForwardedPorts::default()
            }
        }
    }

    pub fn bind_address(&self) -> IpAddr {
        self.bind
    }

    /// A port for every wanted route. `held` are ports the registry records for other
    /// services' routes; `redirected` those the host's NAT table sends elsewhere (read just
    /// before). All or nothing: on error nothing stays reserved.
    pub fn allocate(
        &self,
        held: &BTreeSet<u16>,
        redirected: &ForwardedPorts,
        wanted: &[Wanted],
    ) -> Result<Reservation, PortError> {
        // Free for a new owner: nothing binds it and no NAT rule sends its traffic elsewhere.
        let free = |port: u16| !redirected.contains(port) && self.bindable(port);
        let mut reserved = self.reserved.lock().unwrap_or_else(PoisonError::into_inner);
        let mut chosen = HostPorts::new();
        let mut taken: BTreeSet<u16> = BTreeSet::new();
        let usable = |port: u16, taken: &BTreeSet<u16>, reserved: &BTreeSet<u16>| {
            self.range.contains(&port)
                && !held.contains(&port)
                && !taken.contains(&port)
                && !reserved.contains(&port)
        };
        for want in wanted {
            let keep = want
                .preferred
                .filter(|&p| usable(p, &taken, &reserved) && (want.owned || free(p)));
            let port = match keep {
                Some(port) => port,
                None => self
                    .search(|p| usable(p, &taken, &reserved) && free(p))
                    .ok_or_else(|| PortError::Exhausted {
                        start: *self.range.start(),
                        end: *self.range.end(),
                        bind: self.bind,
                        route: format!(
                            "{}/{}",
                            want.key.component,
                            if want.key.route.is_empty() {
                                "(unnamed)"
                            } else {
                                &want.key.route
                            }
                        ),
                        redirected: redirected.count_in(&self.range),
                    })?,
            };
            taken.insert(port);
            chosen.insert(want.key.clone(), port);
        }
        reserved.extend(taken);
        Ok(Reservation {
            ports: chosen,
            reserved: Arc::clone(&self.reserved),
        })
    }

    /// Keeps `ports` (which an instance being retired still serves on) out of reach of
    /// other allocations until the returned reservation is dropped.
    pub fn hold(&self, ports: impl IntoIterator<Item = u16>) -> Reservation {
        let mut reserved = self.reserved.lock().unwrap_or_else(PoisonError::into_inner);
        let mut held = HostPorts::new();
        for port in ports {
            if reserved.insert(port) {
                held.insert(RouteKey::new("", port.to_string()), port);
            }
        }
        Reservation {
            ports: held,
            reserved: Arc::clone(&self.reserved),
        }
    }

    /// Random probes first (cheap, spreads ports), then a full sweep from a random offset so
    /// "exhausted" is only said when it is true.
    fn search(&self, ok: impl Fn(u16) -> bool) -> Option<u16> {
        let start = u32::from(*self.range.start());
        let len = u32::from(*self.range.end()) - start + 1;
        let random = |salt: u32| {
            let r = RandomState::new().hash_one(salt);
            // Truncation is the point: a uniform value below `len`.
            #[allow(clippy::cast_possible_truncation)]
            let offset = (r % u64::from(len)) as u32;
            offset
        };
        let to_port = |offset: u32| u16::try_from(start + offset % len).ok();
        for salt in 0..32 {
            if let Some(port) = to_port(random(salt)).filter(|&p| ok(p)) {
                return Some(port);
            }
        }
        let from = random(u32::MAX);
        (0..len).filter_map(|i| to_port(from + i)).find(|&p| ok(p))
    }

    /// Free right now on the bind address (a foreign listener makes it unusable).
    fn bindable(&self, port: u16) -> bool {
        TcpListener::bind((self.bind, port)).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn wanted(route: &str) -> Wanted {
        Wanted {
            key: RouteKey::new("web", route),
            preferred: None,
            owned: false,
        }
    }

    fn free_range(n: u16) -> RangeInclusive<u16> {
        // A window of n ports starting at one the OS just handed out; tests re-check binds.
        let base = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let start = base.min(65535 - n);
        start..=start + n - 1
    }

    #[test]
    fn concurrent_reservations_never_overlap_and_drop_releases() {
        let range = free_range(40);
        let alloc = PortAllocator::new(range.clone(), IpAddr::V4(Ipv4Addr::LOCALHOST));
        let a = alloc
            .allocate(
                &BTreeSet::new(),
                &ForwardedPorts::default(),
                &[wanted("a"), wanted("b")],
            )
            .unwrap();
        let b = alloc
            .allocate(
                &BTreeSet::new(),
                &ForwardedPorts::default(),
                &[wanted("a"), wanted("b")],
            )
            .unwrap();
        let mut all: Vec<u16> = a.ports.values().chain(b.ports.values()).copied().collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 4);
        assert!(all.iter().all(|p| range.contains(p)));
        drop(a);
        assert_eq!(alloc.reserved.lock().unwrap().len(), 2);
    }

    #[test]
    fn held_and_foreign_ports_are_skipped_and_exhaustion_is_an_error() {
        let range = free_range(3);
        let (p0, p1, p2) = (*range.start(), *range.start() + 1, *range.end());
        // `free_range` found these ports free: another process taking p1 meanwhile is a
        // failure to look at, not a reason to check nothing.
        let _foreign = TcpListener::bind(("127.0.0.1", p1)).expect("p1 was free just now");
        let alloc = PortAllocator::new(range, IpAddr::V4(Ipv4Addr::LOCALHOST));
        let held = BTreeSet::from([p0]);
        let got = alloc.allocate(&held, &ForwardedPorts::default(), &[wanted("a")]);
        assert_eq!(
            got.unwrap().ports.values().copied().collect::<Vec<_>>(),
            vec![p2]
        );
        let err = alloc
            .allocate(
                &BTreeSet::from([p0, p2]),
                &ForwardedPorts::default(),
                &[wanted("a")],
            )
            .err()
            .unwrap();
        assert!(err.to_string().contains("no free host port"), "{err}");
    }

    #[test]
    fn a_port_the_nat_table_redirects_is_never_handed_out_unless_owned() {
        let range = free_range(1);
        let port = *range.start();
        let alloc = PortAllocator::new(range, IpAddr::V4(Ipv4Addr::LOCALHOST));
        let redirected = ForwardedPorts::parse(&format!(
            "-A X -d 127.0.0.1/32 -p tcp -m tcp --dport {port} -j DNAT --to-destination 10.88.4.24:{port}\n"
        ));
        let err = alloc
            .allocate(&BTreeSet::new(), &redirected, &[wanted("a")])
            .err();
        let err = err.expect("the only port is redirected").to_string();
        assert!(err.contains("1 of them redirected elsewhere"), "{err}");
        // The route's own instance (replaced in place) made that rule: it keeps its port.
        let mut own = wanted("a");
        own.preferred = Some(port);
        own.owned = true;
        let kept = alloc
            .allocate(&BTreeSet::new(), &redirected, &[own])
            .unwrap();
        assert_eq!(kept.ports.values().next(), Some(&port));
    }

    #[test]
    fn preferred_port_is_kept_when_free() {
        let range = free_range(20);
        let want = *range.start() + 7;
        let alloc = PortAllocator::new(range, IpAddr::V4(Ipv4Addr::LOCALHOST));
        let mut w = wanted("a");
        w.preferred = Some(want);
        w.owned = true;
        let got = alloc
            .allocate(&BTreeSet::new(), &ForwardedPorts::default(), &[w])
            .unwrap();
        assert_eq!(got.ports.values().next(), Some(&want));
    }

    #[test]
    fn all_or_nothing() {
        let range = free_range(1);
        let alloc = PortAllocator::new(range, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert!(
            alloc
                .allocate(
                    &BTreeSet::new(),
                    &ForwardedPorts::default(),
                    &[wanted("a"), wanted("b")]
                )
                .is_err()
        );
        assert!(alloc.reserved.lock().unwrap().is_empty());
    }
}
