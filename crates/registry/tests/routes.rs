//! Routes' host ports: recorded with a deploy, released on stop, re-assigned on start, never
//! held twice, gone with the service.

#![allow(clippy::unwrap_used)]

mod common;

use registry::{DesiredState, HostPorts, Registry};
use servicedef::Service;

fn routed(name: &str) -> Service {
    servicedef::parse_str(
        "t.toml",
        &format!(
            "name = \"{name}\"\nnode = \"local\"\n[[components]]\nname = \"web\"\nimage = \"i\"\n\
             [[components.routes]]\nname = \"rest\"\nport = 8443\nmode = \"l7\"\n\
             [[components.routes]]\nname = \"admin\"\nport = 9000\n"
        ),
    )
    .unwrap()
}

fn ports(pairs: &[(&str, u16)]) -> HostPorts {
    pairs
        .iter()
        .map(|(route, port)| (registry::RouteKey::new("web", *route), *port))
        .collect()
}

#[test]
fn deploy_records_each_route_with_its_host_port() {
    let mut reg = Registry::open_in_memory().unwrap();
    let rec = reg
        .record_deploy(
            &routed("a"),
            &ports(&[("rest", 20001), ("admin", 20002)]),
            "t",
        )
        .unwrap();
    assert_eq!(rec.routes.len(), 2);
    let rest = rec
        .routes
        .iter()
        .find(|r| r.route.as_deref() == Some("rest"))
        .unwrap();
    assert_eq!(
        (rest.port, rest.mode.as_str(), rest.host_port),
        (8443, "l7", Some(20001))
    );
    assert_eq!(reg.service("a").unwrap().unwrap().routes, rec.routes);
    assert_eq!(
        rec.host_ports(),
        ports(&[("rest", 20001), ("admin", 20002)])
    );
    assert_eq!(reg.held_host_ports(None).unwrap().len(), 2);
    assert!(reg.held_host_ports(Some("a")).unwrap().is_empty());
}

#[test]
fn a_host_port_is_never_recorded_twice() {
    let mut reg = Registry::open_in_memory().unwrap();
    reg.record_deploy(
        &routed("a"),
        &ports(&[("rest", 20001), ("admin", 20002)]),
        "t",
    )
    .unwrap();
    let clash = reg.record_deploy(
        &routed("b"),
        &ports(&[("rest", 20002), ("admin", 20003)]),
        "t",
    );
    assert!(clash.is_err());
    assert!(
        reg.service("b").unwrap().is_none(),
        "the failed deploy left nothing"
    );
}

#[test]
fn stop_releases_and_start_reassigns() {
    let mut reg = Registry::open_in_memory().unwrap();
    reg.record_deploy(
        &routed("a"),
        &ports(&[("rest", 20001), ("admin", 20002)]),
        "t",
    )
    .unwrap();
    reg.set_desired_state(
        "a",
        DesiredState::Stopped,
        None,
        registry::EventAction::Stop,
        "t",
    )
    .unwrap();
    let rec = reg.service("a").unwrap().unwrap();
    assert!(rec.routes.iter().all(|r| r.host_port.is_none()));
    assert!(rec.routes.iter().any(|r| r.last_host_port == Some(20001)));
    assert!(
        reg.held_host_ports(None).unwrap().is_empty(),
        "released ports are free"
    );

    let new = ports(&[("rest", 20001), ("admin", 20009)]);
    reg.set_desired_state(
        "a",
        DesiredState::Running,
        Some(&new),
        registry::EventAction::Start,
        "t",
    )
    .unwrap();
    assert_eq!(reg.service("a").unwrap().unwrap().host_ports(), new);
}

#[test]
fn undeploy_frees_every_port() {
    let mut reg = Registry::open_in_memory().unwrap();
    reg.record_deploy(
        &routed("a"),
        &ports(&[("rest", 20001), ("admin", 20002)]),
        "t",
    )
    .unwrap();
    reg.delete_service("a", "t").unwrap();
    assert!(reg.held_host_ports(None).unwrap().is_empty());
}

#[test]
fn monitor_bookkeeping_round_trips_and_resets_on_deploy() {
    let mut reg = Registry::open_in_memory().unwrap();
    reg.record_deploy(
        &routed("a"),
        &ports(&[("rest", 20001), ("admin", 20002)]),
        "t",
    )
    .unwrap();
    let health = registry::Health {
        restart_count: 3,
        last_exit_code: Some(7),
        backoff_ms: 4000,
        backoff_until: Some(1_000),
        drift: Some("exited".into()),
        ..Default::default()
    };
    reg.set_health(
        "a",
        "web",
        &health,
        &[(registry::EventAction::Restart, "restart #3")],
    )
    .unwrap();
    assert_eq!(reg.health("a", "web").unwrap(), health);
    assert_eq!(reg.all_health().unwrap().len(), 1);
    assert_eq!(reg.events(Some("a"), 1).unwrap()[0].actor, "monitor");
    // Gone services are not tracked.
    reg.set_health("ghost", "web", &health, &[]).unwrap();
    assert_eq!(reg.all_health().unwrap().len(), 1);
    reg.record_deploy(
        &routed("a"),
        &ports(&[("rest", 20001), ("admin", 20002)]),
        "t",
    )
    .unwrap();
    assert_eq!(reg.health("a", "web").unwrap(), registry::Health::default());
}

#[test]
fn pending_operations_are_journaled_until_ended() {
    let mut reg = Registry::open_in_memory().unwrap();
    let spec = routed("a");
    reg.begin_operation("a", registry::Operation::Deploy, "alice", Some(&spec))
        .unwrap();
    let pending = reg.pending_operations().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].action, registry::Operation::Deploy);
    assert_eq!(pending[0].spec.as_ref(), Some(&spec));
    reg.begin_operation("a", registry::Operation::Stop, "alice", None)
        .unwrap();
    assert_eq!(
        reg.pending_operation("a").unwrap().unwrap().action,
        registry::Operation::Stop
    );
    reg.end_operation("a").unwrap();
    assert!(reg.pending_operations().unwrap().is_empty());
    for op in registry::Operation::ALL {
        reg.begin_operation("a", op, "alice", None).unwrap();
        assert_eq!(reg.pending_operation("a").unwrap().unwrap().action, op);
    }
}

#[test]
fn an_unknown_journal_entry_is_an_error_not_skipped() {
    let (_dir, path, reg) = common::temp_registry();
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "INSERT INTO pending_operations (service, action, actor, started_at) VALUES ('a', 'migrate', 'x', 1)",
        [],
    )
    .unwrap();
    let err = reg.pending_operations().unwrap_err().to_string();
    assert!(err.contains("unknown operation \"migrate\""), "{err}");
}
