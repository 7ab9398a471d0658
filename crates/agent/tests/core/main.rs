//! The agent's core in process, in milliseconds: the real `Deployer` and registry over a
//! fake workload runtime (`fake.rs`). Deploy, replace (in place and side by side), a failed
//! deploy rolled back, rollback, and crash recovery from every journal state. The end-to-end
//! suite (`crates/cli/tests`) drives the same paths through real podman and QEMU.

#![allow(clippy::unwrap_used)]

mod fake;

use agent::deployer::Deployer;
use agent::ports::PortAllocator;
use fake::{EXITS_AT_ONCE, FAILS_TO_RUN, FakeRuntime, owners};
use registry::{DesiredState, Operation, Registry};
use runtime::Runtime;
use servicedef::Service;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

const ACTOR: &str = "test";

/// A block of free loopback ports for the allocator.
fn free_range() -> std::ops::RangeInclusive<u16> {
    let base = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let start = base.saturating_sub(200).max(20_000);
    start..=start + 100
}

struct Core {
    deployer: Deployer,
    fake: Arc<FakeRuntime>,
    _dir: tempfile::TempDir,
    db: std::path::PathBuf,
}

fn core() -> Core {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("registry.db");
    core_on(dir, db, Arc::new(FakeRuntime::default()))
}

/// A deployer over the database `db` and runtime `fake` (a restarted agent sees both).
fn core_on(dir: tempfile::TempDir, db: std::path::PathBuf, fake: Arc<FakeRuntime>) -> Core {
    let registry = Registry::open(&db).unwrap();
    let reader = Registry::open_reader(&db).unwrap();
    let deployer = Deployer::new(
        "local".into(),
        registry,
        Arc::clone(&fake) as Arc<dyn Runtime>,
        PortAllocator::new(free_range(), IpAddr::V4(Ipv4Addr::LOCALHOST)),
        Duration::from_secs(1),
    )
    .with_reader(reader)
    .with_secrets(
        agent::secret_box::SecretBox::load_or_create(&dir.path().join("secrets.key")).unwrap(),
    );
    Core {
        deployer,
        fake,
        _dir: dir,
        db,
    }
}

fn restarted(core: Core) -> Core {
    let Core { fake, _dir, db, .. } = core;
    core_on(_dir, db, fake)
}

fn spec(name: &str, components: &[(&str, &str)], routed: bool) -> Service {
    let mut toml = format!("name = \"{name}\"\nnode = \"local\"\n");
    for (component, image) in components {
        toml.push_str(&format!(
            "[[components]]\nname = \"{component}\"\nimage = \"{image}\"\n"
        ));
        if routed {
            toml.push_str("[[components.routes]]\nport = 8080\n");
        }
    }
    servicedef::parse_str("t.toml", &toml).unwrap()
}

fn recorded(core: &Core, name: &str) -> Option<registry::ServiceRecord> {
    Registry::open(&core.db).unwrap().service(name).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_creates_labelled_instances_and_an_identical_redeploy_changes_nothing() {
    let core = core();
    let v1 = spec("shop", &[("web", "web:1"), ("db", "db:1")], false);
    let outcome = core.deployer.deploy(v1.clone(), ACTOR).await.unwrap();
    assert!(outcome.changed);
    assert_eq!(core.fake.names(), ["shop-db", "shop-web"]);
    assert_eq!(
        owners(&core.fake),
        BTreeSet::from([("shop".into(), "db".into()), ("shop".into(), "web".into())])
    );
    assert_eq!(recorded(&core, "shop").unwrap().spec, v1);

    let again = core.deployer.deploy(v1, ACTOR).await.unwrap();
    assert!(!again.changed);
    assert_eq!(core.fake.runs().len(), 2, "nothing was run again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_component_is_replaced_in_place_and_only_it() {
    let core = core();
    core.deployer
        .deploy(
            spec("shop", &[("web", "web:1"), ("db", "db:1")], false),
            ACTOR,
        )
        .await
        .unwrap();
    let db_before = core.fake.instance("shop-db").unwrap().id;
    let outcome = core
        .deployer
        .deploy(
            spec("shop", &[("web", "web:2"), ("db", "db:1")], false),
            ACTOR,
        )
        .await
        .unwrap();
    assert_eq!(outcome.replaced, ["web"]);
    assert_eq!(core.fake.instance("shop-web").unwrap().image, "web:2");
    assert_eq!(core.fake.instance("shop-db").unwrap().id, db_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_routed_component_is_replaced_side_by_side_on_new_ports() {
    let core = core();
    core.deployer
        .deploy(spec("api", &[("api", "api:1")], true), ACTOR)
        .await
        .unwrap();
    let old = core.fake.instance("api").unwrap();
    core.deployer
        .deploy(spec("api", &[("api", "api:2")], true), ACTOR)
        .await
        .unwrap();
    // The new instance took the other slot and other host ports; the old one is gone.
    assert_eq!(core.fake.names(), ["api.b"]);
    let new = core.fake.instance("api.b").unwrap();
    assert_eq!(new.image, "api:2");
    assert_ne!(new.ports[0].host_port, old.ports[0].host_port);
    let record = recorded(&core, "api").unwrap();
    assert_eq!(record.spec.components[0].image, "api:2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_deploy_leaves_the_previous_version_running_and_recorded() {
    let core = core();
    let v1 = spec("shop", &[("web", "web:1")], false);
    core.deployer.deploy(v1.clone(), ACTOR).await.unwrap();
    let id = core.fake.instance("shop-web").unwrap().id;
    for bad in [FAILS_TO_RUN, EXITS_AT_ONCE] {
        let err = core
            .deployer
            .deploy(spec("shop", &[("web", bad)], false), ACTOR)
            .await
            .unwrap_err();
        assert!(!err.to_string().is_empty());
        let web = core.fake.instance("shop-web").unwrap();
        assert_eq!(web.image, "web:1", "after {bad}");
        assert_eq!(web.state, runtime::InstanceState::Running);
        assert_ne!(web.id, id, "brought back by the rollback");
        assert_eq!(recorded(&core, "shop").unwrap().spec, v1);
        assert!(
            Registry::open(&core.db)
                .unwrap()
                .pending_operations()
                .unwrap()
                .is_empty()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_redeploys_an_earlier_version_as_a_new_one() {
    let core = core();
    for image in ["web:1", "web:2", "web:3"] {
        core.deployer
            .deploy(spec("shop", &[("web", image)], false), ACTOR)
            .await
            .unwrap();
    }
    core.deployer.rollback("shop", 1, ACTOR).await.unwrap();
    assert_eq!(core.fake.instance("shop-web").unwrap().image, "web:1");
    let history = core.deployer.history("shop").unwrap();
    assert_eq!(history.len(), 4);
    assert!(history[0].current);
    assert_eq!(history[0].detail.as_deref(), Some("rollback to 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_newest_versions_keep_their_spec_and_older_ones_cannot_be_rolled_back_to() {
    let Core {
        deployer,
        fake,
        _dir,
        db,
    } = core();
    let core = Core {
        deployer: deployer.with_history_limit(2),
        fake,
        _dir,
        db,
    };
    for image in ["web:1", "web:2", "web:3", "web:4"] {
        core.deployer
            .deploy(spec("shop", &[("web", image)], false), ACTOR)
            .await
            .unwrap();
    }
    let versions: Vec<u32> = core
        .deployer
        .history("shop")
        .unwrap()
        .iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(
        versions,
        [4, 3],
        "numbers stay; pruned versions are not listed"
    );
    let err = core.deployer.rollback("shop", 1, ACTOR).await.unwrap_err();
    assert!(
        err.to_string().contains("older than the 2 versions"),
        "{err}"
    );
    core.deployer.rollback("shop", 3, ACTOR).await.unwrap();
    assert_eq!(core.fake.instance("shop-web").unwrap().image, "web:3");
}

/// Recovery, one journal state at a time: what a crash at that point leaves is finished or
/// undone when the agent starts again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_finishes_or_undoes_every_journaled_operation() {
    for op in Operation::ALL {
        let core = core();
        let v1 = spec("shop", &[("web", "web:1")], false);
        core.deployer.deploy(v1.clone(), ACTOR).await.unwrap();
        let mut journal = Registry::open(&core.db).unwrap();
        match op {
            Operation::Deploy => {
                // A deploy of v2 created its instance, then the agent died.
                let v2 = spec("shop", &[("web", "web:2")], false);
                journal
                    .begin_operation("shop", op, ACTOR, Some(&v2))
                    .unwrap();
                core.fake.remove_now("shop-web");
                core.fake.plant_for(&v2, "web", "shop-web");
            }
            Operation::Retire => {
                // v2 recorded; the old instance was still being retired.
                let v2 = spec("shop", &[("web", "web:2")], false);
                journal
                    .record_deploy(&v2, &registry::HostPorts::new(), ACTOR)
                    .unwrap();
                journal.begin_operation("shop", op, ACTOR, None).unwrap();
                core.fake.plant_for(&v2, "web", "shop-web.b");
            }
            Operation::Stop | Operation::Undeploy => {
                journal.begin_operation("shop", op, ACTOR, None).unwrap();
            }
            Operation::Start | Operation::Restart => {
                // Stopped before; the start died before it re-created the instance.
                core.deployer.stop("shop", ACTOR).await.unwrap();
                core.fake.remove_now("shop-web");
                journal.begin_operation("shop", op, ACTOR, None).unwrap();
            }
        }
        drop(journal);
        let core = restarted(core);
        let report = core.deployer.recover().await.unwrap();
        assert_eq!(report.len(), 1, "{op}: {report:?}");
        let record = recorded(&core, "shop");
        let instances: Vec<(String, String, runtime::InstanceState)> = core
            .fake
            .names()
            .iter()
            .map(|n| {
                let i = core.fake.instance(n).unwrap();
                (i.name, i.image, i.state)
            })
            .collect();
        use runtime::InstanceState::{Exited, Running};
        match op {
            Operation::Deploy => {
                assert_eq!(
                    instances,
                    [("shop-web".into(), "web:1".into(), Running)],
                    "{op}"
                );
                assert_eq!(record.unwrap().spec, v1);
            }
            Operation::Retire => {
                assert_eq!(
                    instances,
                    [("shop-web.b".into(), "web:2".into(), Running)],
                    "{op}"
                );
            }
            Operation::Stop => {
                assert_eq!(
                    instances,
                    [("shop-web".into(), "web:1".into(), Exited)],
                    "{op}"
                );
                assert_eq!(record.unwrap().desired, DesiredState::Stopped);
            }
            Operation::Start | Operation::Restart => {
                assert_eq!(
                    instances,
                    [("shop-web".into(), "web:1".into(), Running)],
                    "{op}"
                );
                assert_eq!(record.unwrap().desired, DesiredState::Running);
            }
            Operation::Undeploy => {
                assert!(instances.is_empty(), "{op}: {instances:?}");
                assert!(record.is_none());
            }
        }
        assert!(
            Registry::open(&core.db)
                .unwrap()
                .pending_operations()
                .unwrap()
                .is_empty(),
            "{op}: journal cleared"
        );
    }
}

/// Reads go through their own connection: with another process holding SQLite's write lock
/// and a write of the agent waiting on it, the agent still answers reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_answer_while_a_write_waits_on_the_lock() {
    let core = Arc::new(core());
    core.deployer
        .set_secret("shop", "DB", b"v1", ACTOR)
        .unwrap();
    let locker = rusqlite::Connection::open(&core.db).unwrap();
    locker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let writer = {
        let core = Arc::clone(&core);
        tokio::spawn(async move { core.deployer.set_secret("shop", "DB", b"v2", ACTOR) })
    };
    // Let the write reach SQLite's busy wait.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let listed = core.deployer.list_secrets("shop").unwrap();
    assert_eq!(listed[0].version, 1);
    let events = core.deployer.events(Some("shop"), 10).unwrap();
    assert!(!events.is_empty());
    assert!(
        !writer.is_finished(),
        "the reads answered while the write still waited on the lock"
    );
    locker.execute_batch("COMMIT").unwrap();
    assert_eq!(writer.await.unwrap().unwrap().version, 2);
}
