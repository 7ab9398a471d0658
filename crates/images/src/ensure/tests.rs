//! The check → build → push decisions, against a fake builder that records what it is asked
//! (the real podman and registry are driven by the CLI's end-to-end tests).

#![allow(clippy::unwrap_used)]

use super::*;
use oci::{BuildError, OutputSink};
use std::collections::BTreeSet;
use std::sync::Mutex;

/// A registry (`present`) and a builder that logs every call.
#[derive(Default)]
struct Fake {
    present: Mutex<BTreeSet<String>>,
    calls: Mutex<Vec<String>>,
}

impl Fake {
    fn with(images: &[&str]) -> Self {
        let fake = Self::default();
        fake.present
            .lock()
            .unwrap()
            .extend(images.iter().map(ToString::to_string));
        fake
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    fn log(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }
}

#[async_trait::async_trait]
impl ImageBuilder for Fake {
    async fn build(&self, spec: &BuildSpec, output: OutputSink<'_>) -> Result<(), BuildError> {
        output("STEP 1/1: FROM scratch");
        self.log(format!("build {}", spec.tags.join(" ")));
        Ok(())
    }
    async fn push(&self, image: &str, _: OutputSink<'_>) -> Result<(), BuildError> {
        self.log(format!("push {image}"));
        self.present.lock().unwrap().insert(image.to_string());
        Ok(())
    }
    async fn image_exists(&self, image: &str) -> Result<bool, BuildError> {
        self.log(format!("exists {image}"));
        Ok(self.present.lock().unwrap().contains(image))
    }
}

/// A service `shop` with one component per image, and a workspace holding `shop/<file>` for
/// every `[build.images]` entry.
fn setup(builds: &[(&str, &str)], images: &[&str]) -> (Service, tempfile::TempDir) {
    let ws = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(ws.path().join("shop")).unwrap();
    let mut text = "name = \"shop\"\nnode = \"local\"\n[build.images]\n".to_string();
    for (key, file) in builds {
        text.push_str(&format!("{key} = \"{file}\"\n"));
        std::fs::write(ws.path().join("shop").join(file), "FROM scratch\n").unwrap();
    }
    for (i, image) in images.iter().enumerate() {
        text.push_str(&format!(
            "[[components]]\nname = \"c{i}\"\nimage = \"{image}\"\n"
        ));
    }
    (servicedef::parse_str("shop.toml", &text).unwrap(), ws)
}

/// Events as text, output lines left out.
type Log = Mutex<Vec<String>>;

fn recorder() -> (Log, impl Fn(&Log, Event<'_>)) {
    (Mutex::new(Vec::new()), |log: &Log, e: Event<'_>| {
        if !matches!(e, Event::Output(_)) {
            log.lock().unwrap().push(format!("{e:?}"));
        }
    })
}

const HELLO: &str = "127.0.0.1:5000/hello:v1";
const API: &str = "127.0.0.1:5000/api:v2";

#[tokio::test]
async fn deploy_builds_only_missing_tags_once_then_never_again() {
    let (svc, ws) = setup(
        &[("hello", "Containerfile"), ("api", "Api.Containerfile")],
        &[HELLO, API, HELLO],
    );
    let fake = Fake::with(&[API]);
    let (log, record) = recorder();
    let report = |e: Event<'_>| record(&log, e);
    before_deploy(&fake, &svc, Some(ws.path()), &report)
        .await
        .unwrap();
    assert_eq!(
        fake.calls(),
        [
            format!("exists {HELLO}"),
            format!("exists {API}"),
            format!("build {HELLO}"),
            format!("push {HELLO}"),
        ]
    );
    assert!(
        log.lock()
            .unwrap()
            .iter()
            .any(|e| e.contains("Exists") && e.contains(API))
    );

    fake.calls.lock().unwrap().clear();
    before_deploy(&fake, &svc, Some(ws.path()), &report)
        .await
        .unwrap();
    assert_eq!(
        fake.calls(),
        [format!("exists {HELLO}"), format!("exists {API}")]
    );
}

#[tokio::test]
async fn an_unbuildable_missing_image_fails_before_anything_is_built() {
    let (svc, ws) = setup(
        &[("hello", "Containerfile")],
        &[HELLO, "127.0.0.1:5000/db:v3"],
    );
    let fake = Fake::default();
    let err = before_deploy(&fake, &svc, Some(ws.path()), &|_| {})
        .await
        .unwrap_err();
    assert!(err.is_bad_input());
    let text = err.to_string();
    assert!(
        text.contains("127.0.0.1:5000/db:v3") && text.contains("no [build.images]"),
        "{text}"
    );
    assert!(
        !fake.calls().iter().any(|c| c.starts_with("build")),
        "{:?}",
        fake.calls()
    );

    // Without a workspace the buildable one cannot be built either: also before any build.
    let (svc, _ws) = setup(&[("hello", "Containerfile")], &[HELLO]);
    let err = before_deploy(&fake, &svc, None, &|_| {}).await.unwrap_err();
    assert!(matches!(err, ImagesError::NoWorkspace { .. }), "{err}");
}

#[tokio::test]
async fn local_only_images_are_never_checked() {
    let (svc, ws) = setup(&[], &["localhost/hello:v1"]);
    let fake = Fake::default();
    let (log, record) = recorder();
    before_deploy(&fake, &svc, Some(ws.path()), &|e| record(&log, e))
        .await
        .unwrap();
    assert!(fake.calls().is_empty(), "{:?}", fake.calls());
    assert_eq!(
        *log.lock().unwrap(),
        ["LocalOnly { image: \"localhost/hello:v1\" }"]
    );
}

#[tokio::test]
async fn build_one_entry_skips_existing_tags_unless_forced() {
    let (svc, ws) = setup(
        &[("hello", "Containerfile"), ("api", "Api.Containerfile")],
        &[HELLO, API],
    );
    let fake = Fake::default();
    build(&fake, &svc, Some(ws.path()), Some("hello"), false, &|_| {})
        .await
        .unwrap();
    assert_eq!(
        fake.calls(),
        [
            format!("exists {HELLO}"),
            format!("build {HELLO}"),
            format!("push {HELLO}")
        ]
    );
    assert!(!fake.present.lock().unwrap().contains(API));

    fake.calls.lock().unwrap().clear();
    build(&fake, &svc, Some(ws.path()), Some("hello"), false, &|_| {})
        .await
        .unwrap();
    assert_eq!(fake.calls(), [format!("exists {HELLO}")]);

    fake.calls.lock().unwrap().clear();
    build(&fake, &svc, Some(ws.path()), Some("hello"), true, &|_| {})
        .await
        .unwrap();
    assert_eq!(
        fake.calls(),
        [format!("build {HELLO}"), format!("push {HELLO}")]
    );
}

#[tokio::test]
async fn build_refuses_unknown_unmatched_and_absent_entries() {
    let (svc, ws) = setup(
        &[("hello", "Containerfile"), ("orphan", "Orphan")],
        &[HELLO],
    );
    let fake = Fake::default();
    let err = build(&fake, &svc, Some(ws.path()), Some("nope"), false, &|_| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("hello, orphan"), "{err}");
    let err = build(&fake, &svc, Some(ws.path()), None, false, &|_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(err, ImagesError::Unmatched { ref key, .. } if key == "orphan"),
        "{err}"
    );
    assert!(
        fake.calls().is_empty(),
        "checked before building: {:?}",
        fake.calls()
    );

    let (svc, ws) = setup(&[], &[HELLO]);
    let err = build(&fake, &svc, Some(ws.path()), None, false, &|_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, ImagesError::NothingToBuild { .. }), "{err}");
}

#[tokio::test]
async fn local_only_images_are_built_but_not_pushed() {
    let (svc, ws) = setup(&[("hello", "Containerfile")], &["localhost/hello:v1"]);
    let fake = Fake::default();
    let (log, record) = recorder();
    build(&fake, &svc, Some(ws.path()), None, false, &|e| {
        record(&log, e)
    })
    .await
    .unwrap();
    assert_eq!(fake.calls(), ["build localhost/hello:v1"]);
    assert!(log.lock().unwrap().last().unwrap().starts_with("NotPushed"));
}
