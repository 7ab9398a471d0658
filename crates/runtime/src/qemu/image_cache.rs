//! Built Nanos images, reused. `ops build` of the same program with the same config makes
//! the same image, so a redeploy, a rollback or a re-created VM copies the cached image
//! instead of building again. An entry holds the config's environment, secrets included, like
//! the VM's own image: files 0600 in a 0700 directory, and only the newest `KEEP` are kept.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Entries kept; older ones (by last use) are removed when a new one is stored.
const KEEP: usize = 16;

pub(super) struct ImageCache {
    dir: PathBuf,
}

/// The cache key: the program's bytes and the ops config, hashed together.
pub(super) fn key(elf: &Path, config_json: &[u8]) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    hasher.update(Sha256::digest(std::fs::read(elf)?));
    hasher.update(Sha256::digest(config_json));
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

impl ImageCache {
    pub(super) fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn entry(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.img"))
    }

    /// Copies the image cached under `key` to `dest` (0600); false when there is none.
    pub(super) fn copy_to(&self, key: &str, dest: &Path) -> std::io::Result<bool> {
        let entry = self.entry(key);
        if !entry.is_file() {
            return Ok(false);
        }
        copy_private(&entry, dest)?;
        // Marks the entry as used, for pruning.
        std::fs::File::options()
            .write(true)
            .open(&entry)?
            .set_modified(std::time::SystemTime::now())?;
        Ok(true)
    }

    /// Stores a copy of the freshly built `image` under `key`, then prunes.
    pub(super) fn store(&self, key: &str, image: &Path) -> std::io::Result<()> {
        super::private_dir(&self.dir)?;
        let staged = self.dir.join(format!(".{key}.partial"));
        copy_private(image, &staged)?;
        std::fs::rename(&staged, self.entry(key))?;
        self.prune()
    }

    fn prune(&self) -> std::io::Result<()> {
        keep_newest(&self.dir, KEEP, |path| {
            path.extension().is_some_and(|x| x == "img")
        })
    }
}

/// Removes all but the `keep` most recently modified entries of `dir` that `select` picks
/// (files or whole directories): the bound on every cache of built artefacts.
pub(super) fn keep_newest(
    dir: &Path,
    keep: usize,
    select: impl Fn(&Path) -> bool,
) -> std::io::Result<()> {
    let mut entries: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter(|e| select(&e.path()))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    entries.sort_by_key(|(modified, _)| std::cmp::Reverse(*modified));
    for (_, path) in entries.into_iter().skip(keep) {
        if path.is_dir() {
            std::fs::remove_dir_all(path)?;
        } else {
            std::fs::remove_file(path)?;
        }
    }
    Ok(())
}

/// Copies `from` to `to`, which is created (or truncated) with mode 0600.
fn copy_private(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut source = std::fs::File::open(from)?;
    let mut target = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(to)?;
    std::io::copy(&mut source, &mut target)?;
    target.sync_all()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_stored_image_is_copied_back_privately_and_old_entries_go() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ImageCache::new(dir.path().join("built"));
        let elf = dir.path().join("prog");
        std::fs::write(&elf, b"\x7fELF program").unwrap();
        let k1 = key(&elf, b"{\"Env\":{\"A\":\"1\"}}").unwrap();
        let k2 = key(&elf, b"{\"Env\":{\"A\":\"2\"}}").unwrap();
        assert_ne!(k1, k2, "the config is part of the key");
        let dest = dir.path().join("vm.img");
        assert!(!cache.copy_to(&k1, &dest).unwrap());
        let built = dir.path().join("built.img");
        std::fs::write(&built, b"disk image").unwrap();
        cache.store(&k1, &built).unwrap();
        assert!(cache.copy_to(&k1, &dest).unwrap());
        assert_eq!(std::fs::read(&dest).unwrap(), b"disk image");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dest), 0o600);
        assert_eq!(mode(&cache.entry(&k1)), 0o600);
        assert_eq!(mode(&dir.path().join("built")), 0o700);
        for i in 0..KEEP + 3 {
            std::fs::write(&built, format!("image {i}")).unwrap();
            cache.store(&format!("k{i:02}"), &built).unwrap();
        }
        let left = std::fs::read_dir(dir.path().join("built")).unwrap().count();
        assert_eq!(left, KEEP);
    }

    #[test]
    fn only_the_most_recently_used_directories_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let base = std::time::SystemTime::now();
        for i in 0..5u64 {
            let entry = dir.path().join(format!("id{i}"));
            std::fs::create_dir(&entry).unwrap();
            std::fs::write(entry.join("program"), b"x").unwrap();
            let at = base - std::time::Duration::from_secs(100 - i * 10);
            std::fs::File::open(&entry)
                .unwrap()
                .set_modified(at)
                .unwrap();
        }
        // id0 is the oldest but was just used.
        std::fs::File::open(dir.path().join("id0"))
            .unwrap()
            .set_modified(base)
            .unwrap();
        keep_newest(dir.path(), 2, |p| p.is_dir()).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["id0", "id4"]);
    }
}
