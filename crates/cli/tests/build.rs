//! Build → push → deploy: a real docker-registry on loopback, the CLI building with podman on a
//! store of its own (the operator's machine), the agent pulling from the registry over plain
//! HTTP because it is told the registry is insecure.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::PathBuf;
use support::oci::*;
use support::*;

/// A service `name` whose components (name, image) each get a route, with `builds` as its
/// `[build.images]`.
fn service(
    agent: &Agent,
    name: &str,
    builds: &[(&str, &str)],
    components: &[(&str, &str)],
) -> PathBuf {
    let mut body = format!("name = \"{name}\"\nnode = \"local\"\n");
    if !builds.is_empty() {
        body.push_str("[build.images]\n");
        for (repo, file) in builds {
            body.push_str(&format!("\"{repo}\" = \"{file}\"\n"));
        }
    }
    for (component, image) in components {
        body.push_str(&format!(
            "[[components]]\nname = \"{component}\"\nimage = \"{image}\"\n\
             [[components.routes]]\nport = {}\n",
            unique_public_port()
        ));
    }
    agent.definition(name, &body)
}

/// A registry, an agent pulling from it, and service `name` with one component whose image
/// `<registry>/<name>:<tag>` is built from `containerfile` in workspace `ws`.
struct OneImage {
    // Fields drop in order: the agent's containers go before the registry's images.
    agent: Agent,
    registry: Registry,
    name: String,
    image: String,
    def: PathBuf,
    config: PathBuf,
    _ws: tempfile::TempDir,
}

fn one_image(prefix: &str, tag: &str, containerfile: &str) -> OneImage {
    let registry = Registry::start();
    let agent = Agent::start_with(&["--insecure-registry", &registry.host()]);
    let name = unique(prefix);
    let image = format!("{}/{name}:{tag}", registry.host());
    let ws = workspace(&name, &[("Containerfile", containerfile)]);
    let def = service(
        &agent,
        &name,
        &[(&name, "Containerfile")],
        &[("web", &image)],
    );
    let config = agent.build_config(ws.path(), &registry);
    OneImage {
        agent,
        registry,
        name,
        image,
        def,
        config,
        _ws: ws,
    }
}

#[test]
fn absent_tag_is_built_pushed_deployed_and_never_rebuilt() {
    let t = one_image("built", "v1.0.0", HELLO_CONTAINERFILE);
    let (name, image, def) = (&t.name, &t.image, t.def.to_str().unwrap());
    assert!(t.registry.tags(name).is_empty());

    let run = t.agent.mcp_with(&t.config, &["deploy", def]).ok();
    assert!(
        run.stderr.contains(&format!("building {image} from "))
            && run.stderr.contains(&format!("pushed {image}")),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout.contains(&format!("deployed {name}")),
        "{}",
        run.stdout
    );
    assert_eq!(t.registry.tags(name), ["v1.0.0"]);
    assert!(t.registry.has_manifest(name, "v1.0.0"));
    // The build ran on another store: the node's copy came from the t.registry.
    assert!(podman(&["image", "exists", image]).status.success());
    let port = route_ports(&t.agent.component(name, "web"))[""];
    let body = http_get(port, "/").unwrap_or_else(|| panic!("nothing answers on {port}"));
    assert!(body.starts_with("hello from"), "{body}");

    let again = t.agent.mcp_with(&t.config, &["deploy", def]).ok();
    assert!(
        again
            .stderr
            .contains(&format!("{image} exists in registry, not rebuilt")),
        "{}",
        again.stderr
    );
    assert!(!again.stderr.contains("building"), "{}", again.stderr);
    assert!(again.stdout.contains("unchanged"), "{}", again.stdout);
}

#[test]
fn build_names_one_image_of_two_and_skips_existing_tags_unless_forced() {
    let registry = Registry::start();
    let agent = Agent::start();
    let name = unique("two");
    let (web, worker) = (format!("{name}-web"), format!("{name}-worker"));
    let web_image = format!("{}/{web}:v1", registry.host());
    let worker_image = format!("{}/{worker}:v1", registry.host());
    let ws = workspace(
        &name,
        &[
            ("Containerfile", HELLO_CONTAINERFILE),
            ("Worker.Containerfile", HELLO_CONTAINERFILE),
        ],
    );
    let def = service(
        &agent,
        &name,
        &[(&web, "Containerfile"), (&worker, "Worker.Containerfile")],
        &[("web", &web_image), ("worker", &worker_image)],
    );
    let config = agent.build_config(ws.path(), &registry);
    let target = format!("{}/{web}", def.display());

    let run = agent.mcp_with(&config, &["build", &target]).ok();
    assert!(
        run.stderr.contains(&format!("pushed {web_image}")),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains(&worker), "{}", run.stderr);
    assert_eq!(registry.tags(&web), ["v1"]);
    assert!(
        registry.tags(&worker).is_empty(),
        "only the named image is built"
    );

    let run = agent.mcp_with(&config, &["build", &target]).ok();
    assert!(
        run.stderr
            .contains(&format!("{web_image} exists in registry, not rebuilt"))
            && !run.stderr.contains("building"),
        "{}",
        run.stderr
    );
    let run = agent.mcp_with(&config, &["build", &target, "--force"]).ok();
    assert!(
        run.stderr.contains(&format!("pushed {web_image}")),
        "{}",
        run.stderr
    );

    let run = agent.mcp_with(&config, &["build", &format!("{}/nope", def.display())]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("{web}, {worker}")),
        "{}",
        run.stderr
    );
    assert!(containers_of(&name).is_empty(), "build deploys nothing");
}

#[test]
fn build_failure_shows_the_builders_error_and_deploys_nothing() {
    let t = one_image("broken", "v1", "FROM scratch\nCOPY no-such-file /x\n");
    let (name, def) = (&t.name, t.def.to_str().unwrap());

    let run = t.agent.mcp_with(&t.config, &["deploy", def]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("podman build of")
            && run.stderr.contains("no-such-file")
            && run.stderr.contains("no such file or directory"),
        "{}",
        run.stderr
    );
    assert!(t.registry.tags(name).is_empty());
    assert!(containers_of(name).is_empty());
    let status = t.agent.status_json();
    assert!(
        !status["services"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == name.as_str()),
        "{status}"
    );
}

#[test]
fn missing_tag_without_build_config_fails_before_any_node_is_contacted() {
    let registry = Registry::start();
    let agent = Agent::start();
    let name = unique("nobuild");
    let image = format!("{}/{name}:v1", registry.host());
    let def = service(&agent, &name, &[], &[("web", &image)]);
    let ws = tempfile::tempdir().unwrap();
    // The node's address is a port nobody listens on: contacting it would fail differently.
    let config = agent.build_config(ws.path(), &registry);
    let dead = std::fs::read_to_string(&config)
        .unwrap()
        .replace(&agent.address, &format!("127.0.0.1:{}", free_port()));
    std::fs::write(&config, dead).unwrap();

    let run = agent.mcp_with(&config, &["deploy", def.to_str().unwrap()]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("image {image} is not in the registry"))
            && run.stderr.contains("no [build.images] entry"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("unreachable"), "{}", run.stderr);

    let run = agent.mcp_with(&config, &["deploy", def.to_str().unwrap(), "--no-build"]);
    assert_eq!(
        run.code, 3,
        "--no-build goes straight to the (dead) node: {}",
        run.stderr
    );
}
