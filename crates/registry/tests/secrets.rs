#![allow(clippy::unwrap_used)]
mod common;

#[test]
fn versions_grow_and_are_never_reused_after_a_removal() {
    let (_dir, path, mut reg) = common::temp_registry();
    assert_eq!(
        reg.set_secret("web", "DB", b"sealed-1", "op")
            .unwrap()
            .version,
        1
    );
    assert_eq!(
        reg.set_secret("web", "DB", b"sealed-2", "op")
            .unwrap()
            .version,
        2
    );
    reg.set_secret("web", "API", b"sealed-a", "op").unwrap();
    reg.set_secret("other", "DB", b"sealed-o", "op").unwrap();
    let names: Vec<(String, u64)> = reg
        .secrets("web")
        .unwrap()
        .into_iter()
        .map(|s| (s.name, s.version))
        .collect();
    assert_eq!(names, [("API".to_string(), 1), ("DB".to_string(), 2)]);
    let current = reg.sealed_secret("web", "DB").unwrap().unwrap();
    assert_eq!(
        (current.version, current.sealed.as_slice()),
        (2, &b"sealed-2"[..])
    );

    assert!(reg.remove_secret("web", "DB", "op").unwrap());
    assert!(
        !reg.remove_secret("web", "DB", "op").unwrap(),
        "already gone"
    );
    assert!(reg.sealed_secret("web", "DB").unwrap().is_none());
    assert_eq!(reg.secrets("web").unwrap().len(), 1);
    drop(reg);
    let mut reg = registry::Registry::open(&path).unwrap();
    assert_eq!(
        reg.set_secret("web", "DB", b"sealed-3", "op")
            .unwrap()
            .version,
        3
    );
    assert_eq!(
        reg.sealed_secret("other", "DB").unwrap().unwrap().version,
        1
    );
}

#[test]
fn the_history_names_secrets_and_versions_only() {
    let (_dir, _path, mut reg) = common::temp_registry();
    reg.set_secret("web", "DB", b"sealed-bytes", "alice")
        .unwrap();
    reg.remove_secret("web", "DB", "alice").unwrap();
    let events = reg.events(Some("web"), 10).unwrap();
    let seen: Vec<(String, Option<String>)> =
        events.into_iter().map(|e| (e.action, e.detail)).collect();
    assert_eq!(
        seen,
        [
            ("secret-removed".to_string(), Some("secret DB".to_string())),
            (
                "secret-set".to_string(),
                Some("secret DB version 1".to_string())
            ),
        ]
    );
}
