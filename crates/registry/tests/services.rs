//! Deploy, lookup, desired-state changes and removal of services.
#![allow(clippy::unwrap_used)]

mod common;

use registry::HostPorts;
use registry::{DesiredState, Registry, RegistryError};
use rusqlite::Connection;

#[test]
fn deploy_round_trips_the_spec() {
    let mut reg = Registry::open_in_memory().unwrap();
    let spec = common::service("app", true, &[("web", "img:1"), ("db", "pg:16")]);
    let recorded = reg
        .record_deploy(&spec, &HostPorts::new(), "alice")
        .unwrap();

    let loaded = reg.service("app").unwrap().unwrap();
    assert_eq!(loaded, recorded);
    assert_eq!(loaded.spec, spec);
    assert_eq!(loaded.spec_hash, spec.spec_hash());
    assert_eq!(loaded.desired, DesiredState::Running);
    let names: Vec<_> = loaded.components.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["web", "db"], "components keep spec order");
    assert_eq!(loaded.components[1].image, "pg:16");
    assert_eq!(
        loaded.components[1].spec_hash,
        spec.components[1].spec_hash()
    );
    assert!(
        loaded
            .components
            .iter()
            .all(|c| c.desired == DesiredState::Running)
    );
}

#[test]
fn inactive_spec_is_recorded_stopped() {
    let mut reg = Registry::open_in_memory().unwrap();
    let rec = reg
        .record_deploy(
            &common::service("app", false, &[("web", "i")]),
            &HostPorts::new(),
            "a",
        )
        .unwrap();
    assert_eq!(rec.desired, DesiredState::Stopped);
    assert_eq!(rec.components[0].desired, DesiredState::Stopped);
    assert_eq!(reg.service("app").unwrap().unwrap(), rec);
}

#[test]
fn unknown_service_is_none() {
    let reg = Registry::open_in_memory().unwrap();
    assert!(reg.service("nope").unwrap().is_none());
}

#[test]
fn redeploy_keeps_created_at_and_replaces_components() {
    let (_dir, path, mut reg) = common::temp_registry();
    reg.record_deploy(
        &common::service("app", true, &[("web", "img:1"), ("worker", "img:1")]),
        &HostPorts::new(),
        "a",
    )
    .unwrap();
    // Backdate so "kept" is distinguishable from "rewritten in the same second".
    let other = Connection::open(&path).unwrap();
    other
        .execute("UPDATE services SET created_at = 1, updated_at = 1", [])
        .unwrap();

    let v2 = common::service("app", true, &[("web", "img:2")]);
    let rec = reg.record_deploy(&v2, &HostPorts::new(), "b").unwrap();
    assert_eq!(rec.created_at, 1);
    assert!(rec.updated_at > 1);

    let loaded = reg.service("app").unwrap().unwrap();
    assert_eq!(loaded.created_at, 1);
    assert_eq!(loaded.spec, v2);
    assert_eq!(loaded.components.len(), 1);
    assert_eq!(loaded.components[0].image, "img:2");
    assert_eq!(common::count(&other, "components"), 1);
}

#[test]
fn services_are_sorted_by_name() {
    let mut reg = Registry::open_in_memory().unwrap();
    for name in ["zeta", "alpha", "mid"] {
        reg.record_deploy(
            &common::service(name, true, &[("web", "i")]),
            &HostPorts::new(),
            "a",
        )
        .unwrap();
    }
    let names: Vec<_> = reg
        .services()
        .unwrap()
        .into_iter()
        .map(|s| s.spec.name.as_str().to_owned())
        .collect();
    assert_eq!(names, ["alpha", "mid", "zeta"]);
}

#[test]
fn set_desired_state_updates_service_and_components() {
    let mut reg = Registry::open_in_memory().unwrap();
    reg.record_deploy(
        &common::service("app", true, &[("a", "i"), ("b", "i")]),
        &HostPorts::new(),
        "x",
    )
    .unwrap();
    reg.set_desired_state(
        "app",
        DesiredState::Stopped,
        None,
        registry::EventAction::Stop,
        "bob",
    )
    .unwrap();

    let loaded = reg.service("app").unwrap().unwrap();
    assert_eq!(loaded.desired, DesiredState::Stopped);
    assert!(
        loaded
            .components
            .iter()
            .all(|c| c.desired == DesiredState::Stopped)
    );
    let latest = &reg.events(Some("app"), 1).unwrap()[0];
    assert_eq!(
        (latest.action.as_str(), latest.actor.as_str()),
        ("stop", "bob")
    );
}

#[test]
fn set_desired_state_on_unknown_is_not_found() {
    let mut reg = Registry::open_in_memory().unwrap();
    let err = reg
        .set_desired_state(
            "ghost",
            DesiredState::Running,
            None,
            registry::EventAction::Start,
            "a",
        )
        .unwrap_err();
    assert!(matches!(err, RegistryError::NotFound { ref service } if service == "ghost"));
    assert!(
        reg.events(None, 10).unwrap().is_empty(),
        "no event for a miss"
    );
}

#[test]
fn delete_removes_rows_but_keeps_history() {
    let (_dir, path, mut reg) = common::temp_registry();
    reg.record_deploy(
        &common::service("app", true, &[("a", "i"), ("b", "i")]),
        &HostPorts::new(),
        "x",
    )
    .unwrap();
    assert!(reg.delete_service("app", "carol").unwrap());

    assert!(reg.service("app").unwrap().is_none());
    let other = Connection::open(&path).unwrap();
    assert_eq!(common::count(&other, "services"), 0);
    assert_eq!(common::count(&other, "components"), 0);
    let actions: Vec<_> = reg
        .events(Some("app"), 10)
        .unwrap()
        .into_iter()
        .map(|e| (e.action, e.actor))
        .collect();
    assert_eq!(
        actions,
        [
            ("undeploy".into(), "carol".into()),
            ("deploy".into(), "x".into())
        ]
    );
}

#[test]
fn delete_unknown_returns_false_without_event() {
    let mut reg = Registry::open_in_memory().unwrap();
    assert!(!reg.delete_service("ghost", "a").unwrap());
    assert!(reg.events(None, 10).unwrap().is_empty());
}

#[test]
fn failed_first_deploy_leaves_nothing() {
    let (_dir, path, mut reg) = common::temp_registry();
    // Validation would reject duplicate component names, so build the bad spec by hand: the
    // second component insert violates the primary key after the service row was written.
    let mut bad = common::service("app", true, &[("web", "i")]);
    bad.components.push(bad.components[0].clone());
    let err = reg.record_deploy(&bad, &HostPorts::new(), "a").unwrap_err();
    assert!(matches!(err, RegistryError::Service { ref service, .. } if service == "app"));

    let other = Connection::open(&path).unwrap();
    assert_eq!(common::count(&other, "services"), 0);
    assert_eq!(common::count(&other, "components"), 0);
    assert_eq!(common::count(&other, "deploy_events"), 0);
    assert!(reg.service("app").unwrap().is_none());
}

#[test]
fn failed_redeploy_keeps_previous_deploy() {
    let mut reg = Registry::open_in_memory().unwrap();
    let good = common::service("app", true, &[("web", "img:1"), ("db", "pg")]);
    let before = reg.record_deploy(&good, &HostPorts::new(), "a").unwrap();

    let mut bad = common::service("app", false, &[("web", "img:2")]);
    bad.components.push(bad.components[0].clone());
    reg.record_deploy(&bad, &HostPorts::new(), "a").unwrap_err();

    assert_eq!(reg.service("app").unwrap().unwrap(), before);
    assert_eq!(reg.events(None, 10).unwrap().len(), 1);
}

#[test]
fn full_spec_round_trips_exactly() {
    let text = r#"
name = "hello"
node = "local"
active = true
path = "hello"
[build.images]
hello = "Containerfile"

[[components]]
name = "web"
image = "127.0.0.1:5000/hello:v1.0.0"
cmd = ["serve"]
env = ["GREETING=hi"]
volumes = ["/srv/hello:/srv/hello"]
ports = ["127.0.0.1:48080:8080"]
[[components.routes]]
name = "rest"
port = 8443
mode = "l4"
"#;
    let spec = servicedef::parse_str("hello.toml", text).unwrap();
    let mut reg = Registry::open_in_memory().unwrap();
    reg.record_deploy(&spec, &HostPorts::new(), "a").unwrap();
    let loaded = reg.service("hello").unwrap().unwrap();
    assert_eq!(loaded.spec, spec);
    assert_eq!(loaded.spec.spec_hash(), spec.spec_hash());
}

#[test]
fn corrupt_stored_spec_names_the_service() {
    let (_dir, path, mut reg) = common::temp_registry();
    reg.record_deploy(&common::svc(), &HostPorts::new(), "a")
        .unwrap();
    Connection::open(&path)
        .unwrap()
        .execute("UPDATE services SET spec_json = '{'", [])
        .unwrap();
    let err = reg.service("svc").unwrap_err();
    assert!(matches!(err, RegistryError::CorruptSpec { ref service, .. } if service == "svc"));
}
