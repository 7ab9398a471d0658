//! The deploy history: ordering, filtering, limits and payloads.
#![allow(clippy::unwrap_used)]

mod common;

use registry::HostPorts;
use registry::Registry;

#[test]
fn deploy_event_carries_the_spec() {
    let mut reg = Registry::open_in_memory().unwrap();
    let spec = common::svc();
    reg.record_deploy(&spec, &HostPorts::new(), "alice")
        .unwrap();
    let events = reg.events(None, 10).unwrap();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(
        (e.service.as_str(), e.action.as_str(), e.actor.as_str()),
        ("svc", "deploy", "alice")
    );
    assert_eq!(e.spec.as_ref(), Some(&spec));
    assert_eq!(e.detail, None);
    assert!(e.at > 0);
}

#[test]
fn record_event_keeps_detail_and_changes_no_state() {
    let mut reg = Registry::open_in_memory().unwrap();
    let failed = registry::EventAction::Failed(registry::Operation::Deploy);
    reg.record_event("svc", failed, "bob", Some("image pull failed"))
        .unwrap();
    assert!(reg.service("svc").unwrap().is_none());
    let e = &reg.events(Some("svc"), 10).unwrap()[0];
    assert_eq!(e.action, "deploy-failed");
    assert_eq!(e.detail.as_deref(), Some("image pull failed"));
    assert_eq!(e.spec, None);
}

#[test]
fn newest_first_with_filter_and_limit() {
    let mut reg = Registry::open_in_memory().unwrap();
    use registry::EventAction::{Drift, Healthy, Start, Stop, Stray};
    for (service, action) in [
        ("a", Start),
        ("b", Stop),
        ("a", Drift),
        ("b", Stray),
        ("a", Healthy),
    ] {
        reg.record_event(service, action, "t", None).unwrap();
    }
    let actions = |service, limit| -> Vec<String> {
        reg.events(service, limit)
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect()
    };
    assert_eq!(
        actions(None, 10),
        ["healthy", "stray", "drift", "stop", "start"]
    );
    assert_eq!(actions(Some("a"), 10), ["healthy", "drift", "start"]);
    assert_eq!(actions(Some("b"), 1), ["stray"]);
    assert_eq!(actions(None, 2), ["healthy", "stray"]);
    assert!(actions(Some("zzz"), 10).is_empty());
    assert!(actions(None, 0).is_empty());

    let ids: Vec<i64> = reg.events(None, 10).unwrap().iter().map(|e| e.id).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]));
}

#[test]
fn pruned_deploys_keep_their_place_without_their_spec() {
    let mut reg = Registry::open_in_memory().unwrap();
    for image in ["a:1", "a:2", "a:3", "a:4"] {
        let spec = common::service("svc", true, &[("web", image)]);
        reg.record_deploy(&spec, &registry::HostPorts::new(), "t")
            .unwrap();
    }
    assert_eq!(reg.prune_deploy_specs("svc", 2).unwrap(), 2);
    assert_eq!(reg.prune_deploy_specs("svc", 2).unwrap(), 0, "idempotent");
    let kept: Vec<Option<String>> = reg
        .deploys("svc")
        .unwrap()
        .into_iter()
        .map(|e| e.spec.map(|s| s.components[0].image.to_string()))
        .collect();
    assert_eq!(kept, [None, None, Some("a:3".into()), Some("a:4".into())]);
}
