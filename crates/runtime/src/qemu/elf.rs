//! The component's program, taken out of its OCI image and checked to be an x86-64 ELF, cached
//! by image id so a redeploy of the same image does not copy it again.

use std::path::{Path, PathBuf};

use crate::{PodmanRuntime, RuntimeError};

const EM_X86_64: u16 = 62;

/// Why a file is not a program this runtime can boot.
pub fn check_x86_64_elf(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() < 20 || &bytes[..4] != b"\x7fELF" {
        return Err("not an ELF file".to_string());
    }
    if bytes[4] != 2 {
        return Err("a 32-bit ELF; an x86-64 (64-bit) one is needed".to_string());
    }
    if bytes[5] != 1 {
        return Err("a big-endian ELF; an x86-64 one is needed".to_string());
    }
    let machine = u16::from_le_bytes([bytes[18], bytes[19]]);
    if machine != EM_X86_64 {
        return Err(format!(
            "an ELF for machine {machine}, not x86-64 ({EM_X86_64})"
        ));
    }
    Ok(())
}

/// Extracted programs are kept for this many images (the most recently used).
const KEEP_IMAGES: usize = 16;

/// Copies the program out of `image` (once per image id) and returns the cached path.
/// `binary` overrides the program: by default the image's entrypoint, else MCP's convention
/// `/usr/local/bin/<service>`.
pub async fn extract(
    podman: &PodmanRuntime,
    cache: &Path,
    image: &str,
    binary: Option<&str>,
    service: &str,
) -> Result<PathBuf, RuntimeError> {
    let facts = podman.image_facts(image).await?;
    let program = binary
        .map(str::to_string)
        .or(facts.program)
        .unwrap_or_else(|| format!("/usr/local/bin/{service}"));
    let id: String = facts
        .id
        .trim_start_matches("sha256:")
        .chars()
        .take(16)
        .collect();
    let file_name: String = program
        .trim_start_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let dir = cache.join(&id);
    let cached = dir.join(&file_name);
    let not_elf = |detail: String| RuntimeError::InvalidSpec {
        name: image.to_string(),
        detail: format!("{program} in image {image} is {detail}"),
    };
    if !cached.is_file() {
        std::fs::create_dir_all(&dir).map_err(|e| not_elf(format!("not cacheable: {e}")))?;
        let partial = dir.join(format!(".{file_name}.partial"));
        podman
            .copy_from_image(image, &program, &partial)
            .await
            .map_err(|e| not_elf(format!("not there ({e})")))?;
        if partial.is_dir() {
            let _ = std::fs::remove_dir_all(&partial);
            return Err(not_elf("a directory".to_string()));
        }
        std::fs::rename(&partial, &cached).map_err(|e| not_elf(format!("not cacheable: {e}")))?;
        // A program per image id: only the most recently used images' programs stay.
        if let Err(e) = super::image_cache::keep_newest(cache, KEEP_IMAGES, |p| p.is_dir()) {
            tracing::warn!(cache = %cache.display(), error = %e, "cannot prune extracted programs");
        }
    } else if let Ok(entry) = std::fs::File::open(&dir) {
        // Marks it used, for the pruning above.
        let _ = entry.set_modified(std::time::SystemTime::now());
    }
    let bytes = std::fs::read(&cached).map_err(|e| not_elf(format!("unreadable: {e}")))?;
    if let Err(detail) = check_x86_64_elf(&bytes) {
        let _ = std::fs::remove_file(&cached);
        return Err(not_elf(detail));
    }
    Ok(cached)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(class: u8, machine: u16) -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = class;
        h[5] = 1;
        h[18..20].copy_from_slice(&machine.to_le_bytes());
        h
    }

    #[test]
    fn only_x86_64_elves_pass() {
        assert!(check_x86_64_elf(&header(2, 62)).is_ok());
        assert!(
            check_x86_64_elf(&header(2, 183))
                .unwrap_err()
                .contains("machine 183")
        );
        assert!(
            check_x86_64_elf(&header(1, 3))
                .unwrap_err()
                .contains("32-bit")
        );
        assert!(
            check_x86_64_elf(b"#!/bin/sh\necho hi\n")
                .unwrap_err()
                .contains("not an ELF")
        );
        assert!(check_x86_64_elf(b"").is_err());
    }

    #[test]
    fn the_test_machine_own_binaries_are_x86_64() {
        let me = std::fs::read("/proc/self/exe").unwrap_or_default();
        if cfg!(target_arch = "x86_64") {
            assert!(check_x86_64_elf(&me).is_ok());
        }
    }
}
