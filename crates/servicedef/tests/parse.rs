//! Parsing the DESIGN.md example, and every rejection located by line, column and field.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{EXAMPLE, edit};
use servicedef::{
    Component, ComponentName, RestartPolicy, Route, RouteMode, RuntimeKind, Service, ServiceName,
    load_file, parse_str,
};

#[test]
fn design_example_parses_into_expected_struct() {
    let expected = Service {
        name: ServiceName::new("hello").unwrap(),
        node: "local".into(),
        active: true,
        path: Some("hello".into()),
        runtime: None,
        build_images: BTreeMap::from([("hello".into(), "Containerfile".into())]),
        components: vec![Component {
            name: ComponentName::new("web").unwrap(),
            image: servicedef::Image::parse("127.0.0.1:5000/hello:v1.0.0").unwrap(),
            runtime: RuntimeKind::Container,
            memory_mb: Some(256),
            vcpus: 1,
            cmd: vec!["serve".into()],
            env: vec!["GREETING=hi".into()],
            secrets: Vec::new(),
            volumes: vec!["/srv/hello:/srv/hello".into()],
            ports: vec!["127.0.0.1:48080:8080".into()],
            network: None,
            user: None,
            restart: RestartPolicy::OnFailure,
            routes: vec![Route {
                name: Some("rest".into()),
                port: 8443,
                mode: RouteMode::L4,
                hostname: None,
            }],
            binary: None,
            health: None,
        }],
    };
    assert_eq!(parse_str("hello.toml", EXAMPLE).unwrap(), expected);
    assert_eq!(expected.components[0].routes[0].env_var(), "PORT_REST");
}

#[test]
fn minimal_definition_gets_defaults_and_service_runtime() {
    let text = "name = \"svc\"\nnode = \"n1\"\nruntime = \"unikernel\"\n[[components]]\nname = \"svc\"\nimage = \"i\"\nmemory_mb = 64\nrestart = \"always\"\n[[components.routes]]\nport = 80\nmode = \"l7\"\nhostname = \"api.example.com\"\n";
    let s = parse_str("svc.toml", text).unwrap();
    let c = &s.components[0];
    assert!(s.active && s.path.is_none() && s.build_images.is_empty());
    assert_eq!(
        (s.runtime, c.runtime, c.vcpus, c.restart),
        (
            Some(RuntimeKind::Unikernel),
            RuntimeKind::Unikernel,
            1,
            RestartPolicy::Always
        )
    );
    assert_eq!(s.container_name(&c.name), "svc");
    assert_eq!(c.routes[0].env_var(), "PORT");
    assert_eq!(c.routes[0].mode, RouteMode::L7);
}

/// One rejection: edit the example (`from` -> `to`), expect `line:col`, `field` and a message part.
type Case = (
    &'static str,
    &'static str,
    usize,
    usize,
    &'static str,
    &'static str,
);

/// Asserts each edited example is rejected where and how its case says.
fn rejects(cases: &[Case]) {
    for &(from, to, line, col, field, message) in cases {
        rejects_text(&edit(from, to), line, col, field, message);
    }
}

fn rejects_text(text: &str, line: usize, col: usize, field: &str, message: &str) {
    let err = parse_str("hello.toml", text).unwrap_err();
    let shown = err.to_string();
    assert_eq!((err.line, err.column), (Some(line), Some(col)), "{shown}");
    assert_eq!(err.field.as_deref(), Some(field), "{shown}");
    let prefix = format!("hello.toml:{line}:{col}: {field}: ");
    assert!(shown.starts_with(&prefix), "{shown}");
    assert!(shown.contains(message), "{shown:?} lacks {message:?}");
    assert!(!shown.contains('\n'), "one line only: {shown:?}");
}

const PATH: &str = "path   = \"hello\"";
const NAME: &str = "name      = \"web\"";
const IMAGE: &str = "image     = \"127.0.0.1:5000/hello:v1.0.0\"";
const RUNTIME: &str = "runtime   = \"container\"";
const MEMORY: &str = "memory_mb = 256";
const VCPUS: &str = "vcpus     = 1";
const ENV: &str = "env       = [\"GREETING=hi\"]";
const VOLUMES: &str = "volumes   = [\"/srv/hello:/srv/hello\"]";
const PORTS: &str = "ports     = [\"127.0.0.1:48080:8080\"]";
const ROUTE_NAME: &str = "name = \"rest\"";
const ROUTE_PORT: &str = "port = 8443";
const TAIL: &str = "mode = \"l4\"";

#[test]
#[rustfmt::skip]
fn service_level_rules() {
    rejects(&[
        ("name   = \"hello\"", "name   = \"Hello\"", 1, 10, "name", "invalid service name \"Hello\""),
        ("\"local\"", "\"\"", 2, 10, "node", "invalid node"),
        ("\"local\"", "\"Local_1\"", 2, 10, "node", "[a-z0-9.-]"),
        (PATH, "path   = \"/abs\"", 4, 10, "path", "must be relative"),
        (PATH, "path   = \"a/../..\"", 4, 10, "path", "\"..\""),
        ("\"Containerfile\"", "\"../Containerfile\"", 6, 9, "build.images.hello", "must be relative"),
        ("\"Containerfile\"", "\"\"", 6, 9, "build.images.hello", "non-empty"),
        ("hello =", "\"Bad Repo\" =", 6, 14, "build.images.Bad Repo", "invalid image name"),
        (PATH, "runtime = \"vm\"", 4, 11, "runtime",
            "unknown runtime \"vm\": expected one of \"container\", \"unikernel\""),
    ]);
    let no_components = &EXAMPLE[..EXAMPLE.find("[[components]]").unwrap()];
    rejects_text(no_components, 1, 1, "components", "at least one");
}

#[test]
#[rustfmt::skip]
fn component_rules() {
    const SECOND: &str = "mode = \"l4\"\n[[components]]\nname = \"web\"\nimage = \"x\"";
    rejects(&[
        (NAME, "name      = \"Web\"", 9, 13, "components[0].name", "invalid component name \"Web\""),
        (TAIL, SECOND, 23, 8, "components[1].name", "duplicate component name \"web\""),
        (IMAGE, "image     = \"\"", 10, 13, "components[0].image", "invalid image"),
        (IMAGE, "image     = \"a b\"", 10, 13, "components[0].image", "contains whitespace"),
        (IMAGE, "image     = \"-x\"", 10, 13, "components[0].image", "starts with '-'"),
        (IMAGE, "image     = \"Hello:v1\"", 10, 13, "components[0].image", "[a-z0-9._-]"),
        (IMAGE, "", 8, 1, "components[0]", "missing field `image`"),
        (RUNTIME, "runtime   = \"docker\"", 11, 13, "components[0].runtime", "\"container\", \"unikernel\""),
        (MEMORY, "memory_mb = 0", 12, 13, "components[0].memory_mb", "greater than 0"),
        (MEMORY, "memory_mb = -1", 12, 13, "components[0].memory_mb", "greater than 0"),
        (VCPUS, "vcpus     = 0", 13, 13, "components[0].vcpus", "1..=64"),
        (VCPUS, "vcpus     = 65", 13, 13, "components[0].vcpus", "1..=64"),
        (NAME, "name = \"web\"\nrestart = \"sometimes\"", 10, 11, "components[0].restart",
            "\"no\", \"on-failure\", \"always\""),
        (NAME, "name = \"web\"\nbinary = \"hello\"", 10, 10, "components[0].binary", "absolute path"),
    ]);
    // Unikernel without memory, by its own runtime and by the service-level default; the
    // missing key points at its component.
    let own = edit(RUNTIME, "runtime   = \"unikernel\"").replacen(MEMORY, "", 1);
    rejects_text(&own, 8, 1, "components[0].memory_mb", "required for a unikernel");
    let inherited = edit(RUNTIME, "").replacen(MEMORY, "", 1).replacen("active", "runtime = \"unikernel\"\n#", 1);
    rejects_text(&inherited, 9, 1, "components[0].memory_mb", "required for a unikernel");
}

#[test]
#[rustfmt::skip]
fn env_volume_and_port_rules() {
    rejects(&[
        (ENV, "env       = [\"GREETING\"]", 15, 14, "components[0].env[0]", "must be KEY=VALUE"),
        (ENV, "env       = [\"1X=a\"]", 15, 14, "components[0].env[0]", "[A-Za-z_][A-Za-z0-9_]*"),
        (ENV, "env       = [\"A=1\", \"A=2\"]", 15, 21, "components[0].env[1]", "duplicate env key \"A\""),
        (VOLUMES, "volumes   = [\"srv:/srv\"]", 16, 14, "components[0].volumes[0]", "/host/path:/container/path"),
        (PORTS, "ports     = [\"127.0.0.1:0:8080\"]", 17, 14, "components[0].ports[0]", "invalid port \"0\""),
        (PORTS, "ports     = [\"80:80\", \"300.1.1.1:1:2\"]", 17, 23, "components[0].ports[1]", "invalid IP"),
        (PORTS, "ports     = [\"80:80/sctp\"]", 17, 14, "components[0].ports[0]", "unknown protocol"),
        (ENV, "env       = [\"A=1\"]\nsecrets = [\"A\"]", 16, 12, "components[0].secrets[0]", "also an env key"),
        (ENV, "env       = [\"A=1\"]\nsecrets = [\"B\", \"B=OTHER\"]", 16, 17, "components[0].secrets[1]", "another secret's"),
        (ENV, "env       = [\"A=1\"]\nsecrets = [\"1B\"]", 16, 12, "components[0].secrets[0]", "[A-Za-z_][A-Za-z0-9_]*"),
        (ENV, "env       = [\"A=1\"]\nsecrets = [\"B=../x\"]", 16, 12, "components[0].secrets[0]", "secret name \"../x\""),
        (ENV, "env       = [\"A=1\"]\nsecrets = [\"B=-x\"]", 16, 12, "components[0].secrets[0]", "secret name \"-x\""),
    ]);
}

#[test]
fn secrets_name_a_variable_and_optionally_another_secret() {
    let text = "name = \"s\"\nnode = \"n\"\n[[components]]\nname = \"web\"\nimage = \"i\"\n\
                secrets = [\"DB_PASSWORD\", \"API_TOKEN=api.token-2\"]\n";
    let service = servicedef::parse_str("t.toml", text).unwrap();
    let pairs: Vec<(&str, &str, u64)> = service.components[0]
        .secrets
        .iter()
        .map(|s| (s.var.as_str(), s.secret.as_str(), s.version))
        .collect();
    assert_eq!(
        pairs,
        [
            ("DB_PASSWORD", "DB_PASSWORD", 0),
            ("API_TOKEN", "api.token-2", 0)
        ]
    );
    // A version the agent fills in changes the spec hash; no secrets leaves it as before.
    let mut resolved = service.components[0].clone();
    resolved.secrets[0].version = 3;
    assert_ne!(resolved.spec_hash(), service.components[0].spec_hash());
    let mut plain = service.components[0].clone();
    plain.secrets.clear();
    let json = serde_json::to_string(&plain).unwrap();
    assert!(!json.contains("secrets"), "{json}");
}

#[test]
#[rustfmt::skip]
fn route_rules() {
    const UNNAMED: &str = "mode = \"l4\"\n[[components.routes]]\nport = 9000";
    const DUPLICATE: &str = "mode = \"l4\"\n[[components.routes]]\nname = \"rest\"\nport = 9000";
    rejects(&[
        (TAIL, UNNAMED, 22, 1, "components[0].routes[1].name", "must name each route"),
        (TAIL, DUPLICATE, 23, 8, "components[0].routes[1].name", "duplicate route name \"rest\""),
        (ROUTE_NAME, "name = \"Rest\"", 19, 8, "components[0].routes[0].name", "invalid route name \"Rest\""),
        (ROUTE_PORT, "port = 0", 20, 8, "components[0].routes[0].port", "port 0 is out of range 1..=65535"),
        (ROUTE_PORT, "port = 70000", 20, 8, "components[0].routes[0].port", "port 70000 is out of range"),
        (TAIL, "mode = \"l5\"", 21, 8, "components[0].routes[0].mode",
            "unknown mode \"l5\": expected one of \"l4\", \"l7\""),
        (TAIL, "mode = \"l7\"\nhostname = \"a b\"", 22, 12, "components[0].routes[0].hostname", "invalid hostname"),
        (ENV, "env       = [\"PORT_REST=1\"]", 19, 8, "components[0].routes[0].name", "$PORT_REST clashes"),
        (ENV, "env       = [\"PORT=1\"]", 19, 8, "components[0].routes[0].name", "$PORT clashes"),
    ]);
}

#[test]
#[rustfmt::skip]
fn health_rules() {
    const H: &str = "mode = \"l4\"\n[components.health]";
    let cases: [(String, usize, usize, &str, &str); 8] = [
        (format!("{H}\ninterval = \"2s\""), 22, 1, "components[0].health", "needs http = \"/path\" or tcp = true"),
        (format!("{H}\nhttp = \"/up\"\ntcp = true"), 24, 7, "components[0].health.tcp", "not both"),
        (format!("{H}\nhttp = \"up\""), 23, 8, "components[0].health.http", "must start with '/'"),
        (format!("{H}\ntcp = true\ninterval = \"2\""), 24, 12, "components[0].health.interval", "with a unit"),
        (format!("{H}\ntcp = true\nretries = 0"), 24, 11, "components[0].health.retries", "out of range 1..=100"),
        (format!("{H}\ntcp = true\nroute = \"admin\""), 24, 9, "components[0].health.route", "no route named \"admin\""),
        (format!("{H}\ntcp = true\nstart_period = \"5ms\""), 24, 16, "components[0].health.start_period", "at least 100ms"),
        (format!("{H}\ntcp = true\nhttps = true"), 24, 1, "components[0].health.https", "unknown field `https`"),
    ];
    for (text, line, col, field, message) in cases {
        rejects_text(&edit(TAIL, &text), line, col, field, message);
    }
    let ok = parse_str("hello.toml", &edit(TAIL, &format!("{H}\nhttp = \"/up\"\nstart_period = \"1m\""))).unwrap();
    let health = ok.components[0].health.clone().unwrap();
    assert_eq!(health.start_period_ms, 60_000);
    assert_eq!(health.interval_ms, 2_000, "default interval");
    assert_eq!(ok.components[0].health_route().unwrap().port, 8443);
}

#[test]
#[rustfmt::skip]
fn public_ports_are_claimed_once_per_service() {
    const SAME: &str = "mode = \"l4\"\n[[components.routes]]\nname = \"other\"\nport = 8443";
    const MIXED: &str = "mode = \"l4\"\nhostname = \"a.test\"\n[[components.routes]]\nname = \"b\"\nport = 8443\nmode = \"l7\"\nhostname = \"b.test\"";
    rejects(&[
        (TAIL, SAME, 24, 8, "components[0].routes[1].port", "port 8443 without a hostname is already components[0].routes[0]"),
        (TAIL, MIXED, 26, 8, "components[0].routes[1].mode", "one port has one mode"),
    ]);
    let sni = edit(TAIL, "mode = \"l4\"\nhostname = \"a.test\"\n[[components.routes]]\nname = \"b\"\nport = 8443\nhostname = \"b.test\"");
    assert!(parse_str("hello.toml", &sni).is_ok(), "two host names may share a port");
}

#[test]
#[rustfmt::skip]
fn unknown_keys_are_rejected_everywhere() {
    rejects(&[
        ("active = true", "actve = true", 3, 1, "actve", "unknown field `actve`"),
        (NAME, "name = \"web\"\nimg = \"x\"", 10, 1, "components[0].img", "unknown field `img`"),
        (TAIL, "mode = \"l4\"\nproto = \"tcp\"", 22, 1, "components[0].routes[0].proto", "unknown field `proto`"),
        ("[build.images]", "[build.imagez]", 5, 8, "build.imagez", "unknown field `imagez`"),
    ]);
}

#[test]
#[rustfmt::skip]
fn wrong_types_are_located() {
    rejects(&[
        (ROUTE_PORT, "port = \"8443\"", 20, 8, "components[0].routes[0].port", "invalid type: string \"8443\""),
        ("active = true", "active = \"yes\"", 3, 10, "active", "expected a boolean"),
        (ENV, "env       = [\"A=1\", 2]", 15, 21, "components[0].env[1]", "expected a string"),
    ]);
}

#[test]
fn malformed_toml_reports_line_and_column() {
    let err = parse_str("hello.toml", &edit("vcpus     = 1", "vcpus     = = 1")).unwrap_err();
    assert_eq!(
        (err.line, err.column, err.field.as_deref()),
        (Some(13), Some(13), None),
        "{err}"
    );
    assert!(err.to_string().starts_with("hello.toml:13:13: "), "{err}");
    let err = parse_str("hello.toml", &format!("{EXAMPLE}name = \"again\"\n")).unwrap_err();
    assert_eq!(err.line, Some(22), "{err}");
    assert!(!err.to_string().contains('\n'), "{err}");
}

#[test]
fn load_file_reads_and_reports_missing_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    assert_eq!(
        load_file(&dir.join("hello.toml")).unwrap().name.as_str(),
        "hello"
    );
    let missing = dir.join("missing.toml");
    let err = load_file(&missing).unwrap_err();
    assert_eq!(
        (err.line, err.column, err.field.as_ref()),
        (None, None, None)
    );
    assert!(
        err.to_string()
            .starts_with(&format!("{}: cannot read", missing.display())),
        "{err}"
    );
    // Over 1 MiB (a valid definition padded with a comment) is refused before parsing.
    let tmp = tempfile::tempdir().unwrap();
    let big = tmp.path().join("big.toml");
    let mut text = std::fs::read_to_string(dir.join("hello.toml")).unwrap();
    text.push_str(&format!("# {}\n", "x".repeat(1 << 20)));
    std::fs::write(&big, text).unwrap();
    let err = load_file(&big).unwrap_err().to_string();
    assert!(err.contains("at most 1048576 are accepted"), "{err}");
}
