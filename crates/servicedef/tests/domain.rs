//! The domain API: `validate` on specs from the wire, `spec_hash`, `container_name`, `env_var`.
#![allow(clippy::unwrap_used)]

mod common;

use servicedef::{ComponentName, Service, parse_str};

fn example() -> Service {
    parse_str("hello.toml", common::EXAMPLE).unwrap()
}

fn field_error(s: &Service) -> String {
    s.validate().unwrap_err().to_string()
}

#[test]
fn valid_spec_passes() {
    assert_eq!(example().validate(), Ok(()));
}

#[test]
fn rules_report_field_paths() {
    let mut s = example();
    s.components[0].vcpus = 0;
    assert_eq!(
        field_error(&s),
        "components[0].vcpus: vcpus 0 is out of range 1..=64"
    );

    let mut s = example();
    s.components[0].routes[0].port = 0;
    assert_eq!(
        field_error(&s),
        "components[0].routes[0].port: port 0 is out of range 1..=65535"
    );

    let mut s = example();
    s.components.push(s.components[0].clone());
    assert!(field_error(&s).starts_with("components[1].name: duplicate component name"));

    let mut s = example();
    s.components[0].memory_mb = None;
    s.components[0].runtime = servicedef::RuntimeKind::Unikernel;
    assert!(field_error(&s).starts_with("components[0].memory_mb: "));

    let mut s = example();
    s.components.clear();
    assert!(field_error(&s).starts_with("components: "));

    let mut s = example();
    s.node = "bad node".into();
    assert!(field_error(&s).starts_with("node: "));
}

#[test]
fn wire_json_round_trips_and_names_are_checked_on_the_way_in() {
    let s = example();
    let json = serde_json::to_string(&s).unwrap();
    assert_eq!(serde_json::from_str::<Service>(&json).unwrap(), s);
    let bad = json.replace("\"name\":\"web\"", "\"name\":\"Web\"");
    let err = serde_json::from_str::<Service>(&bad).unwrap_err();
    assert!(
        err.to_string().contains("invalid component name \"Web\""),
        "{err}"
    );
    assert_eq!(
        s.container_name(&ComponentName::new("web").unwrap()),
        "hello-web"
    );
}

#[test]
fn container_name_drops_component_when_equal() {
    let mut s = example();
    assert_eq!(s.container_name(&s.components[0].name), "hello-web");
    s.components[0].name = ComponentName::new("hello").unwrap();
    assert_eq!(s.container_name(&s.components[0].name), "hello");
    assert!(s.component("hello").is_some() && s.component("web").is_none());
}

#[test]
fn env_var_follows_route_name() {
    let mut route = example().components[0].routes[0].clone();
    assert_eq!(route.env_var(), "PORT_REST");
    route.name = Some("rest-api".into());
    assert_eq!(route.env_var(), "PORT_REST_API");
    route.name = None;
    assert_eq!(route.env_var(), "PORT");
}

#[test]
fn spec_hash_is_stable_and_tracks_image() {
    let (a, b) = (example(), example());
    assert_eq!(a.spec_hash(), b.spec_hash());
    assert_eq!(a.components[0].spec_hash(), b.components[0].spec_hash());
    assert_eq!(a.components[0].spec_hash().len(), 16);
    let mut c = example();
    c.components[0].image = servicedef::Image::parse("127.0.0.1:5000/hello:v1.0.1").unwrap();
    assert_ne!(a.components[0].spec_hash(), c.components[0].spec_hash());
    assert_ne!(a.spec_hash(), c.spec_hash());
}
