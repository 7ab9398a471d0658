//! Writing key and certificate files with their modes set at creation.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::PkiError;

fn write_with_mode(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    let err = |source| PkiError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(err)?;
    file.write_all(contents).map_err(err)?;
    file.sync_all().map_err(err)
}

/// Creates `dir` (and its parents) accessible by its owner only (keys, sockets, state).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// A new file readable by its owner only (private keys).
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), PkiError> {
    write_with_mode(path, contents, 0o600)
}

/// A new world-readable file (certificates, which are public).
pub fn write_public(path: &Path, contents: &[u8]) -> Result<(), PkiError> {
    write_with_mode(path, contents, 0o644)
}

/// Puts `contents` at `path` in one step (a sibling temporary file renamed over it), created
/// with `mode`: a reader sees the old file or the new one, never a mix.
fn replace_with_mode(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".new");
    let temporary = path.with_file_name(name);
    // A leftover from an interrupted run is ours to replace.
    let _ = std::fs::remove_file(&temporary);
    write_with_mode(&temporary, contents, mode)?;
    std::fs::rename(&temporary, path).map_err(|source| PkiError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Replaces a private key file (0600 from creation).
pub fn replace_private(path: &Path, contents: &[u8]) -> Result<(), PkiError> {
    replace_with_mode(path, contents, 0o600)
}

/// Replaces a certificate file (0644).
pub fn replace_public(path: &Path, contents: &[u8]) -> Result<(), PkiError> {
    replace_with_mode(path, contents, 0o644)
}
