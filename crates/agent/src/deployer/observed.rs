//! The observed state `mcp status` answers from: our containers as last listed, kept current
//! by podman's events, so status stops costing a podman listing while nothing is unknown.
//! (VMs are listed on every status: that is a scan of `<state>/vm`, no process.)
//!
//! Invariants:
//! - Kept containers are used only while podman's event stream is connected; a (re)connect
//!   marks everything unknown until the next full listing.
//! - Every listing records what it saw for the services it covers, as of when it began (a
//!   tick of `clock` and the wall clock). An older listing never overwrites a newer one.
//! - An event newer than the listing of its service is applied to the kept container
//!   (start, died, pause, remove). An older one that disagrees with what the listing saw, or
//!   one about a container the state cannot build from an event (a create), marks its
//!   service changed.
//! - Every change mcp asks of podman marks its service changed when the call returns
//!   (`noted.rs`). A service changed at or before a status call's arrival, not listed since,
//!   and not held by an operation, is listed again (by its label) before that status answers.
//!   So the status after any reply agrees with podman: an operation's reply comes from a
//!   listing taken after its last change, which clears its marks, and one that ends without
//!   such a listing (a rollback, a monitor restart) leaves marks the next status lists.
//!   Changes of an operation still under way show as their events arrive.
//! - Concurrent status calls refresh one at a time; the second finds the first's listing.

use runtime::InstanceInfo;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::AgentError;

/// More changed services than this are listed in one full listing instead of one each.
const LISTINGS_PER_STATUS: usize = 4;

/// When a listing began: a tick of the cache's clock, and podman's clock (events carry it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Began {
    tick: u64,
    unix_nanos: i128,
}

#[derive(Default)]
pub struct ObservedCache {
    /// Whether podman's event stream is connected; without it nothing is reused.
    events_connected: Arc<AtomicBool>,
    clock: AtomicU64,
    kept: Mutex<Kept>,
    /// One refresh at a time (single flight).
    refreshing: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Kept {
    /// Our containers by name.
    containers: BTreeMap<String, InstanceInfo>,
    /// The last full listing; `None` while none began after the last (re)connect.
    full: Option<Began>,
    /// Tick of the last (re)connect of the event stream.
    lost_at: u64,
    /// Per service, its last listing of its own.
    listed: HashMap<String, Began>,
    /// Per service, the tick of its newest change no listing has seen yet.
    changed: HashMap<String, u64>,
    /// A change to a container the state does not know the service of: a full listing.
    changed_unknown: Option<u64>,
    /// Per service, the tick of the last event applied to its kept containers: a listing
    /// begun before it (recorded after it) may not show it, and must not silently undo it.
    event_at: HashMap<String, u64>,
    /// The containers as a list, built once per change.
    snapshot: Option<Arc<Vec<InstanceInfo>>>,
    /// The service of each container kept once and removed since: a change mcp reports
    /// for one (its remove event may arrive before the remove call returns) marks that
    /// service, not "unknown" (which would cost a full listing).
    removed: HashMap<String, String>,
}

/// What a status call must list before it answers.
#[derive(Debug, PartialEq, Eq)]
enum Refresh {
    Nothing,
    All,
    Services(Vec<String>),
}

/// The most removed containers' services kept (names are reused: a service's slots).
const REMOVED_KEPT: usize = 4096;

fn remember_removed(removed: &mut HashMap<String, String>, name: &str, service: &str) {
    if removed.len() >= REMOVED_KEPT {
        removed.clear();
    }
    removed.insert(name.to_string(), service.to_string());
}

impl Kept {
    /// `name` (of `service`) is gone.
    fn forget(&mut self, name: &str, service: &str) {
        self.containers.remove(name);
        remember_removed(&mut self.removed, name, service);
    }

    /// When the kept state of `service` was last listed.
    fn listed_at(&self, service: &str) -> Option<Began> {
        self.full.max(self.listed.get(service).copied())
    }

    fn refresh_for(&self, arrival: u64, busy: &dyn Fn(&str) -> bool) -> Refresh {
        let full_current = self.full.is_some_and(|full| full.tick > self.lost_at);
        if !full_current || self.changed_unknown.is_some_and(|tick| tick <= arrival) {
            return Refresh::All;
        }
        let services: Vec<String> = self
            .changed
            .iter()
            .filter(|(service, tick)| **tick <= arrival && !busy(service))
            .map(|(service, _)| service.clone())
            .collect();
        match services.len() {
            0 => Refresh::Nothing,
            n if n > LISTINGS_PER_STATUS => Refresh::All,
            _ => Refresh::Services(services),
        }
    }

    fn snapshot(&mut self) -> Arc<Vec<InstanceInfo>> {
        let containers = &self.containers;
        Arc::clone(
            self.snapshot
                .get_or_insert_with(|| Arc::new(containers.values().cloned().collect())),
        )
    }

    fn mark_changed(&mut self, service: &str, tick: u64) {
        self.changed.insert(service.to_string(), tick);
    }

    /// Clears the marks a listing begun at `began` has seen, for `service`.
    fn seen(&mut self, service: &str, began: Began) {
        if self
            .changed
            .get(service)
            .is_some_and(|tick| *tick < began.tick)
        {
            self.changed.remove(service);
        }
    }

    /// After `service`'s containers were replaced by a listing begun at `began`: an event
    /// applied since it began may be missing from it, so the service is listed again.
    fn recheck_events_since(&mut self, service: &str, began: Began) {
        if let Some(&tick) = self.event_at.get(service)
            && tick > began.tick
        {
            self.mark_changed(service, tick);
        }
    }
}

impl ObservedCache {
    /// Reuses listings while `events_connected` is true.
    pub fn new(events_connected: Arc<AtomicBool>) -> Self {
        Self {
            events_connected,
            ..Self::default()
        }
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Everything may have changed unseen (the event stream (re)connected): the next status
    /// lists everything.
    pub fn invalidate(&self) {
        let tick = self.tick();
        self.kept().lost_at = tick;
    }

    /// mcp changed container `name` (of `service`, when known): status lists it again
    /// unless a listing begun later has seen it.
    pub fn changed(&self, name: &str, service: Option<&str>) {
        let tick = self.tick();
        let mut kept = self.kept();
        let service = service.map(str::to_string).or_else(|| {
            kept.containers
                .get(name)
                .and_then(|c| c.service().map(str::to_string))
                .or_else(|| kept.removed.get(name).cloned())
        });
        match service {
            Some(service) => kept.mark_changed(&service, tick),
            None => kept.changed_unknown = Some(tick),
        }
    }

    /// Call before a listing; pass the result to `record_*`.
    pub fn begin(&self) -> Began {
        Began {
            tick: self.tick(),
            unix_nanos: unix_nanos(),
        }
    }

    /// Whether `service`'s containers may have changed since `began`: mcp changed them, an
    /// event about them arrived, or a listing began later (an operation lists its service
    /// when it ends).
    pub fn changed_since(&self, service: &str, began: Began) -> bool {
        let kept = self.kept();
        kept.changed
            .get(service)
            .is_some_and(|tick| *tick > began.tick)
            || kept
                .event_at
                .get(service)
                .is_some_and(|tick| *tick > began.tick)
            || kept
                .listed_at(service)
                .is_some_and(|at| at.tick > began.tick)
    }

    /// A listing of every container of ours, begun at `began`.
    pub fn record_all(&self, began: Began, listing: &[InstanceInfo]) {
        let mut kept = self.kept();
        if kept.full.is_some_and(|full| full > began) {
            return;
        }
        let mut services: BTreeSet<String> = kept
            .containers
            .values()
            .filter_map(|c| c.service().map(str::to_string))
            .collect();
        services.extend(
            listing
                .iter()
                .filter_map(|c| c.service().map(str::to_string)),
        );
        for service in services {
            // A service listed on its own after this listing began keeps that listing.
            if kept.listed.get(&service).is_some_and(|own| *own > began) {
                continue;
            }
            let kept = &mut *kept;
            replace_service(&mut kept.containers, &mut kept.removed, &service, listing);
            kept.listed.remove(&service);
            kept.recheck_events_since(&service, began);
        }
        kept.changed.retain(|_, tick| *tick >= began.tick);
        if kept.changed_unknown.is_some_and(|tick| tick < began.tick) {
            kept.changed_unknown = None;
        }
        kept.full = Some(began);
        kept.snapshot = None;
    }

    /// A listing of `service`'s containers, begun at `began`.
    pub fn record_service(&self, service: &str, began: Began, listing: &[InstanceInfo]) {
        let mut kept = self.kept();
        if kept.listed_at(service).is_some_and(|last| last > began) {
            return;
        }
        let kept = &mut *kept;
        replace_service(&mut kept.containers, &mut kept.removed, service, listing);
        kept.listed.insert(service.to_string(), began);
        kept.seen(service, began);
        kept.recheck_events_since(service, began);
        kept.snapshot = None;
    }

    /// Applies one of podman's container events to the kept containers.
    pub fn apply_event(&self, event: &ContainerEvent) {
        let tick = self.tick();
        let mut kept = self.kept();
        let seen_by_listing = kept
            .listed_at(&event.service)
            .is_some_and(|listed| event.unix_nanos < listed.unix_nanos);
        let same = kept
            .containers
            .get_mut(&event.name)
            .filter(|c| c.id == event.id);
        let known = same.is_some();
        let settled = match (seen_by_listing, same) {
            // A listing begun after the event no longer has that container: it is newer.
            (true, None) => true,
            (true, Some(container)) => event.agrees_with(container),
            (false, None) => event.action == EventAction::Remove,
            (false, Some(container)) => {
                event.apply_to(container);
                true
            }
        };
        if !settled {
            kept.mark_changed(&event.service, tick);
        } else if !seen_by_listing && known {
            if event.action == EventAction::Remove {
                kept.forget(&event.name, &event.service);
            }
            kept.event_at.insert(event.service.clone(), tick);
            kept.snapshot = None;
        }
    }

    /// Our containers as they are now: from the kept state when nothing unknown happened
    /// before this call, after listing what did otherwise (`list_all`, `list_service`: the
    /// runtime's listings, recorded here). `busy` says which services an operation holds
    /// (their changes show as their events arrive; the operation's reply lists them).
    pub async fn containers<All, AllFut, One, OneFut>(
        &self,
        list_all: All,
        list_service: One,
        busy: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<Arc<Vec<InstanceInfo>>, AgentError>
    where
        All: Fn() -> AllFut,
        AllFut: Future<Output = Result<Vec<InstanceInfo>, AgentError>>,
        One: Fn(String) -> OneFut,
        OneFut: Future<Output = Result<Vec<InstanceInfo>, AgentError>>,
    {
        if !self.events_connected.load(Ordering::SeqCst) {
            return list_all().await.map(Arc::new);
        }
        // Every change this caller can know of has a tick up to this one.
        let arrival = self.clock.load(Ordering::SeqCst);
        let _flight = self.refreshing.lock().await;
        let refresh = self.kept().refresh_for(arrival, busy);
        match refresh {
            Refresh::Nothing => {}
            Refresh::All => {
                let began = self.begin();
                let listing = list_all().await?;
                self.record_all(began, &listing);
            }
            Refresh::Services(services) => {
                for service in services {
                    let began = self.begin();
                    let listing = list_service(service.clone()).await?;
                    self.record_service(&service, began, &listing);
                }
            }
        }
        Ok(self.kept().snapshot())
    }
}

/// Replaces the kept containers of `service` by those of it in `listing`.
fn replace_service(
    containers: &mut BTreeMap<String, InstanceInfo>,
    removed: &mut HashMap<String, String>,
    service: &str,
    listing: &[InstanceInfo],
) {
    containers.retain(|name, c| {
        let other = c.service() != Some(service);
        if !other {
            remember_removed(removed, name, service);
        }
        other
    });
    for container in listing.iter().filter(|c| c.service() == Some(service)) {
        containers.insert(container.name.clone(), container.clone());
    }
}

fn unix_nanos() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX))
}

/// What podman's container event says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventAction {
    Create,
    Start,
    Died,
    Pause,
    Unpause,
    Remove,
}

/// One of podman's events about a container of ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    pub action: EventAction,
    pub name: String,
    pub id: String,
    pub service: String,
    pub unix_nanos: i128,
    pub exit_code: Option<i32>,
}

impl EventAction {
    /// podman's name of the action; `None` for one that changes nothing kept.
    fn from_podman(action: &str) -> Option<Self> {
        Some(match action {
            "create" => Self::Create,
            "start" => Self::Start,
            "died" => Self::Died,
            "pause" => Self::Pause,
            "unpause" => Self::Unpause,
            "remove" => Self::Remove,
            _ => return None,
        })
    }
}

impl ContainerEvent {
    /// Parses an event of podman's API stream (Docker's shape); `None` for an event not
    /// about one of our containers or not one of the actions above.
    pub fn parse(line: &[u8]) -> Option<Self> {
        let event: serde_json::Value = serde_json::from_slice(line).ok()?;
        let actor = event.get("Actor")?;
        let attributes = actor.get("Attributes")?;
        let text = |value: &serde_json::Value| value.as_str().map(str::to_string);
        let action = EventAction::from_podman(event.get("Action")?.as_str()?)?;
        Some(Self {
            action,
            name: text(attributes.get("name")?)?,
            id: text(actor.get("ID")?)?,
            service: text(attributes.get(runtime::LABEL_SERVICE)?)?,
            unix_nanos: event
                .get("timeNano")
                .and_then(serde_json::Value::as_i64)
                .map(i128::from)?,
            exit_code: attributes
                .get("containerExitCode")
                .and_then(|code| code.as_str()?.parse().ok()),
        })
    }

    /// Parses a line of podman's event log file (libpod's own shape: `Status`, `Name`,
    /// RFC 3339 `Time`, the labels in `Attributes`); `None` as for `parse`.
    pub fn parse_logged(line: &[u8]) -> Option<Self> {
        let event: serde_json::Value = serde_json::from_slice(line).ok()?;
        if event.get("Type")?.as_str()? != "container" {
            return None;
        }
        let text = |value: &serde_json::Value| value.as_str().map(str::to_string);
        let time = time::OffsetDateTime::parse(
            event.get("Time")?.as_str()?,
            &time::format_description::well_known::Rfc3339,
        )
        .ok()?;
        Some(Self {
            action: EventAction::from_podman(event.get("Status")?.as_str()?)?,
            name: text(event.get("Name")?)?,
            id: text(event.get("ID")?)?,
            service: text(event.get("Attributes")?.get(runtime::LABEL_SERVICE)?)?,
            unix_nanos: time.unix_timestamp_nanos(),
            exit_code: event
                .get("ContainerExitCode")
                .and_then(serde_json::Value::as_i64)
                .and_then(|code| i32::try_from(code).ok()),
        })
    }

    /// Whether `kept` (listed after this event happened) shows this event's outcome.
    fn agrees_with(&self, kept: &InstanceInfo) -> bool {
        use runtime::InstanceState as S;
        match self.action {
            EventAction::Create => true,
            EventAction::Start | EventAction::Unpause => kept.state == S::Running,
            EventAction::Died => kept.state == S::Exited,
            EventAction::Pause => kept.state == S::Paused,
            EventAction::Remove => false,
        }
    }

    /// Applies this event to `container` (kept, listed before it happened). A remove is
    /// the caller's to apply.
    fn apply_to(&self, container: &mut InstanceInfo) {
        use runtime::InstanceState as S;
        let seconds = i64::try_from(self.unix_nanos / 1_000_000_000).ok();
        match self.action {
            EventAction::Start => {
                container.state = S::Running;
                container.started_at = seconds;
                container.exit_code = None;
            }
            EventAction::Died => {
                container.state = S::Exited;
                container.exit_code = self.exit_code;
                container.exited_at = seconds;
            }
            EventAction::Pause => container.state = S::Paused,
            EventAction::Unpause => container.state = S::Running,
            EventAction::Create | EventAction::Remove => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use runtime::InstanceState;
    use std::sync::atomic::AtomicUsize;

    fn container(service: &str, name: &str, id: &str, state: InstanceState) -> InstanceInfo {
        InstanceInfo {
            name: name.into(),
            id: id.into(),
            image: "img".into(),
            state,
            started_at: None,
            exit_code: None,
            exited_at: None,
            ports: Vec::new(),
            runtime: servicedef::RuntimeKind::Container,
            labels: BTreeMap::from([(runtime::LABEL_SERVICE.into(), service.into())]),
            accelerator: None,
        }
    }

    fn event(action: EventAction, name: &str, id: &str, service: &str) -> ContainerEvent {
        ContainerEvent {
            action,
            name: name.into(),
            id: id.into(),
            service: service.into(),
            unix_nanos: unix_nanos(),
            exit_code: (action == EventAction::Died).then_some(137),
        }
    }

    /// A podman stand-in: what it lists, and how often it was asked.
    #[derive(Default)]
    struct Podman {
        containers: Mutex<Vec<InstanceInfo>>,
        full: AtomicUsize,
        by_service: Mutex<Vec<String>>,
    }

    impl Podman {
        fn set(&self, containers: Vec<InstanceInfo>) {
            *self.containers.lock().unwrap() = containers;
        }

        async fn status(&self, cache: &ObservedCache, busy: &[&str]) -> Vec<InstanceInfo> {
            let listed = cache
                .containers(
                    || async {
                        self.full.fetch_add(1, Ordering::SeqCst);
                        Ok(self.containers.lock().unwrap().clone())
                    },
                    |service| async move {
                        self.by_service.lock().unwrap().push(service.clone());
                        let mut list = self.containers.lock().unwrap().clone();
                        list.retain(|c| c.service() == Some(service.as_str()));
                        Ok(list)
                    },
                    &|service| busy.contains(&service),
                )
                .await
                .unwrap();
            Vec::clone(&listed)
        }

        fn listings(&self) -> (usize, Vec<String>) {
            (
                self.full.load(Ordering::SeqCst),
                self.by_service.lock().unwrap().clone(),
            )
        }
    }

    fn connected() -> ObservedCache {
        ObservedCache::new(Arc::new(AtomicBool::new(true)))
    }

    #[test]
    fn events_name_our_containers_only() {
        let ours = br#"{"Type":"container","Action":"died","timeNano":1796121967432732287,"Actor":{"ID":"abc","Attributes":{"name":"web-api","mcp.service":"web","containerExitCode":"137"}}}"#;
        let event = ContainerEvent::parse(ours).unwrap();
        assert_eq!(
            (event.action, event.name.as_str(), event.service.as_str()),
            (EventAction::Died, "web-api", "web")
        );
        assert_eq!(
            (event.id.as_str(), event.exit_code, event.unix_nanos),
            ("abc", Some(137), 1_796_121_967_432_732_287)
        );
        let foreign = br#"{"Type":"container","Action":"died","timeNano":1,"Actor":{"ID":"abc","Attributes":{"name":"other"}}}"#;
        assert_eq!(ContainerEvent::parse(foreign), None);
        let other_action = br#"{"Type":"container","Action":"init","timeNano":1,"Actor":{"ID":"abc","Attributes":{"name":"web-api","mcp.service":"web"}}}"#;
        assert_eq!(ContainerEvent::parse(other_action), None);
        assert_eq!(ContainerEvent::parse(b"not json"), None);
    }

    /// A remove event that arrives before mcp's remove call returns (an event log is read
    /// at once) leaves the container's service known: status lists that service, not all.
    #[tokio::test]
    async fn a_change_to_a_container_removed_meanwhile_marks_its_service() {
        let cache = connected();
        let podman = Podman::default();
        podman.set(vec![container(
            "web",
            "web-api",
            "1",
            InstanceState::Running,
        )]);
        podman.status(&cache, &[]).await;
        cache.apply_event(&event(EventAction::Remove, "web-api", "1", "web"));
        cache.changed("web-api", None);
        podman.set(Vec::new());
        assert!(podman.status(&cache, &[]).await.is_empty());
        assert_eq!(podman.listings(), (1, vec!["web".to_string()]));
    }

    /// What a monitor pass asks under a service's lock: did anything touch the service
    /// after its listing began?
    #[test]
    fn changed_since_sees_changes_events_and_later_listings_of_the_service() {
        let cache = connected();
        let began = cache.begin();
        cache.record_all(began, &[]);
        assert!(!cache.changed_since("web", began));
        // mcp changed it (an operation under way, or ended and listed it again).
        let pass = cache.begin();
        cache.changed("web-api", Some("web"));
        assert!(cache.changed_since("web", pass));
        assert!(!cache.changed_since("db", pass));
        let ended = cache.begin();
        cache.record_service("web", ended, &[]);
        assert!(
            cache.changed_since("web", pass),
            "the mark is cleared, the listing is newer"
        );
        assert!(!cache.changed_since("web", cache.begin()));
        // An event about it.
        let pass = cache.begin();
        cache.apply_event(&event(EventAction::Died, "db-api", "2", "db"));
        assert!(cache.changed_since("db", pass));
        assert!(!cache.changed_since("web", pass));
    }

    #[test]
    fn logged_events_read_as_streamed_ones() {
        let died = br#"{"ContainerExitCode":137,"ID":"abc","Image":"img","Name":"web-api","Status":"died","Time":"2026-12-01T12:59:49.905854975Z","Type":"container","Attributes":{"mcp.component":"api","mcp.service":"web"}}"#;
        let event = ContainerEvent::parse_logged(died).unwrap();
        assert_eq!(
            (event.action, event.name.as_str(), event.service.as_str()),
            (EventAction::Died, "web-api", "web")
        );
        assert_eq!(
            (event.id.as_str(), event.exit_code, event.unix_nanos),
            ("abc", Some(137), 1_796_129_989_905_854_975)
        );
        // A local time zone gives the same instant.
        let east = br#"{"ID":"abc","Name":"web-api","Status":"start","Time":"2026-12-01T13:59:49.905854975+01:00","Type":"container","Attributes":{"mcp.service":"web"}}"#;
        let event = ContainerEvent::parse_logged(east).unwrap();
        assert_eq!(
            (event.action, event.unix_nanos, event.exit_code),
            (EventAction::Start, 1_796_129_989_905_854_975, None)
        );
        for other in [
            &br#"{"Status":"refresh","Time":"2026-12-01T12:54:18.024755313Z","Type":"system","Attributes":null}"#[..],
            br#"{"ID":"abc","Name":"other","Status":"died","Time":"2026-12-01T12:59:49Z","Type":"container","Attributes":{}}"#,
            br#"{"ID":"abc","Name":"web-api","Status":"cleanup","Time":"2026-12-01T12:59:49Z","Type":"container","Attributes":{"mcp.service":"web"}}"#,
            b"{\"ID\":\"abc\",\"Na",
        ] {
            assert_eq!(ContainerEvent::parse_logged(other), None);
        }
    }

    #[tokio::test]
    async fn without_the_event_stream_every_status_lists() {
        let cache = ObservedCache::new(Arc::new(AtomicBool::new(false)));
        let podman = Podman::default();
        podman.status(&cache, &[]).await;
        podman.status(&cache, &[]).await;
        assert_eq!(podman.listings(), (2, vec![]));
    }

    #[tokio::test]
    async fn a_change_mcp_made_lists_its_service_again_unless_an_operation_holds_it() {
        let cache = connected();
        let podman = Podman::default();
        podman.set(vec![container("a", "a-web", "1", InstanceState::Running)]);
        podman.status(&cache, &[]).await;
        podman.status(&cache, &[]).await;
        assert_eq!(podman.listings(), (1, vec![]), "kept after the first");

        // mcp stops a-web; its reply listed nothing afterwards (a rollback, say).
        podman.set(vec![container("a", "a-web", "1", InstanceState::Exited)]);
        cache.changed("a-web", None);
        // While the operation holds the service, status answers what it kept.
        let held = podman.status(&cache, &["a"]).await;
        assert_eq!(held[0].state, InstanceState::Running);
        let after = podman.status(&cache, &[]).await;
        assert_eq!(after[0].state, InstanceState::Exited);
        assert_eq!(podman.listings(), (1, vec!["a".to_string()]));
        podman.status(&cache, &[]).await;
        assert_eq!(podman.listings(), (1, vec!["a".to_string()]), "seen once");

        // A listing of the service begun after the change (an operation's reply) clears it.
        cache.changed("a-web", Some("a"));
        let began = cache.begin();
        cache.record_service("a", began, &podman.containers.lock().unwrap().clone());
        podman.status(&cache, &[]).await;
        assert_eq!(podman.listings(), (1, vec!["a".to_string()]));
    }

    #[tokio::test]
    async fn events_move_the_kept_state_without_a_listing() {
        let cache = connected();
        let podman = Podman::default();
        podman.set(vec![
            container("a", "a-web", "1", InstanceState::Running),
            container("b", "b-web", "2", InstanceState::Running),
        ]);
        podman.status(&cache, &[]).await;
        cache.apply_event(&event(EventAction::Died, "a-web", "1", "a"));
        let listed = podman.status(&cache, &[]).await;
        assert_eq!(listed[0].state, InstanceState::Exited);
        assert_eq!(listed[0].exit_code, Some(137));
        cache.apply_event(&event(EventAction::Start, "a-web", "1", "a"));
        cache.apply_event(&event(EventAction::Remove, "b-web", "2", "b"));
        let listed = podman.status(&cache, &[]).await;
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].state, InstanceState::Running);
        assert_eq!(listed[0].exit_code, None);
        assert_eq!(podman.listings(), (1, vec![]), "no listing for any of it");

        // A container the state cannot build from its event: its service is listed.
        podman.set(vec![
            container("a", "a-web", "1", InstanceState::Running),
            container("c", "c-web", "3", InstanceState::Running),
        ]);
        cache.apply_event(&event(EventAction::Create, "c-web", "3", "c"));
        let listed = podman.status(&cache, &[]).await;
        assert_eq!(listed.len(), 2);
        assert_eq!(podman.listings(), (1, vec!["c".to_string()]));
    }

    #[tokio::test]
    async fn an_event_older_than_the_listing_is_checked_against_it() {
        let cache = connected();
        let podman = Podman::default();
        podman.set(vec![container("a", "a-web", "1", InstanceState::Running)]);
        // Happened before the listing began.
        let died = event(EventAction::Died, "a-web", "1", "a");
        let start = event(EventAction::Start, "a-web", "1", "a");
        podman.status(&cache, &[]).await;
        // It shows running: the start is in the listing; the death disagrees, so the
        // service is listed again rather than believed either way.
        cache.apply_event(&start);
        let listed = podman.status(&cache, &[]).await;
        assert_eq!(listed[0].state, InstanceState::Running);
        assert_eq!(podman.listings(), (1, vec![]));
        cache.apply_event(&died);
        podman.status(&cache, &[]).await;
        assert_eq!(podman.listings(), (1, vec!["a".to_string()]));
        // A container gone from a later listing: its old events change nothing.
        podman.set(Vec::new());
        cache.invalidate();
        podman.status(&cache, &[]).await;
        cache.apply_event(&died);
        assert!(podman.status(&cache, &[]).await.is_empty());
        assert_eq!(podman.listings(), (2, vec!["a".to_string()]));
    }

    #[tokio::test]
    async fn a_reconnect_lists_everything_and_an_older_listing_never_wins() {
        let cache = connected();
        let podman = Podman::default();
        podman.set(vec![container("a", "a-web", "1", InstanceState::Running)]);
        podman.status(&cache, &[]).await;
        cache.invalidate();
        podman.status(&cache, &[]).await;
        assert_eq!(podman.listings(), (2, vec![]));

        let older = cache.begin();
        let newer = cache.begin();
        cache.record_service(
            "a",
            newer,
            &[container("a", "a-web", "1", InstanceState::Exited)],
        );
        cache.record_all(
            older,
            &[container("a", "a-web", "1", InstanceState::Running)],
        );
        cache.record_service(
            "a",
            older,
            &[container("a", "a-web", "1", InstanceState::Running)],
        );
        let listed = podman.status(&cache, &[]).await;
        assert_eq!(listed[0].state, InstanceState::Exited);
    }

    #[tokio::test]
    async fn a_listing_begun_before_an_applied_event_does_not_undo_it() {
        let cache = connected();
        let podman = Podman::default();
        podman.set(vec![container("a", "a-web", "1", InstanceState::Running)]);
        podman.status(&cache, &[]).await;
        // A listing begins, podman answers "running"; the container dies and its event is
        // applied; then that listing is recorded.
        let began = cache.begin();
        let answer = vec![container("a", "a-web", "1", InstanceState::Running)];
        cache.apply_event(&event(EventAction::Died, "a-web", "1", "a"));
        cache.record_service("a", began, &answer);
        podman.set(vec![container("a", "a-web", "1", InstanceState::Exited)]);
        let listed = podman.status(&cache, &[]).await;
        assert_eq!(listed[0].state, InstanceState::Exited, "listed again");
        assert_eq!(podman.listings(), (1, vec!["a".to_string()]));
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_listing() {
        let cache = Arc::new(connected());
        let podman = Arc::new(Podman::default());
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (cache, podman) = (Arc::clone(&cache), Arc::clone(&podman));
            tasks.push(tokio::spawn(async move {
                podman.status(&cache, &[]).await;
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(podman.listings(), (1, vec![]));
    }
}
