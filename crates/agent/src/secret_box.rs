//! Secret values at rest: sealed with AES-256-GCM under a node key kept in its own file
//! (0600, beside the registry), so the database, its backups and its history hold only
//! ciphertext. The key is bound to nothing else: copying the state directory with the key
//! file copies the secrets, which is why the key file is never part of `mcp-agent backup`.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use std::path::{Path, PathBuf};

const KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("secret key file {path}: {detail}")]
    KeyFile { path: PathBuf, detail: String },
    #[error("secret {name} of service {service} cannot be opened with this node's key ({detail})")]
    Open {
        service: String,
        name: String,
        detail: &'static str,
    },
    #[error("sealing a secret failed: {0}")]
    Seal(&'static str),
}

pub struct SecretBox {
    key: LessSafeKey,
    random: SystemRandom,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(<key>)")
    }
}

/// Binds a sealed value to its secret: a value moved to another name does not open.
fn aad(service: &str, name: &str) -> Vec<u8> {
    format!("mcp-secret\0{service}\0{name}").into_bytes()
}

impl SecretBox {
    /// Reads the node key, creating it (random, 0600) on first use.
    pub fn load_or_create(path: &Path) -> Result<Self, SealError> {
        let key_err = |detail: String| SealError::KeyFile {
            path: path.to_path_buf(),
            detail,
        };
        let random = SystemRandom::new();
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut fresh = vec![0u8; KEY_LEN];
                random
                    .fill(&mut fresh)
                    .map_err(|_| key_err("no randomness for a new key".into()))?;
                pki::write_private(path, &fresh).map_err(|e| key_err(e.to_string()))?;
                fresh
            }
            Err(e) => return Err(key_err(e.to_string())),
        };
        if bytes.len() != KEY_LEN {
            return Err(key_err(format!(
                "holds {} bytes, a key is {KEY_LEN}",
                bytes.len()
            )));
        }
        let key = UnboundKey::new(&AES_256_GCM, &bytes)
            .map_err(|_| key_err("not a usable AES-256 key".into()))?;
        Ok(Self {
            key: LessSafeKey::new(key),
            random,
        })
    }

    /// `nonce || ciphertext || tag`, with a fresh random nonce.
    pub fn seal(&self, service: &str, name: &str, value: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .map_err(|_| SealError::Seal("no randomness for a nonce"))?;
        let mut sealed = value.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(service, name)),
                &mut sealed,
            )
            .map_err(|_| SealError::Seal("AES-GCM refused the value"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    pub fn open(&self, service: &str, name: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let fail = |detail| SealError::Open {
            service: service.to_string(),
            name: name.to_string(),
            detail,
        };
        if sealed.len() < NONCE_LEN {
            return Err(fail("too short"));
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| fail("bad nonce"))?;
        let mut buffer = rest.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad(service, name)), &mut buffer)
            .map_err(|_| fail("wrong key or damaged value"))?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn sealed_values_open_only_as_themselves_and_with_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.key");
        let sealer = SecretBox::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let sealed = sealer.seal("web", "DB", b"hunter2").unwrap();
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_ne!(
            sealed,
            sealer.seal("web", "DB", b"hunter2").unwrap(),
            "fresh nonce"
        );

        let again = SecretBox::load_or_create(&path).unwrap();
        assert_eq!(again.open("web", "DB", &sealed).unwrap(), b"hunter2");
        assert!(
            again.open("web", "API", &sealed).is_err(),
            "bound to its name"
        );
        assert!(
            again.open("api", "DB", &sealed).is_err(),
            "bound to its service"
        );
        let other = SecretBox::load_or_create(&dir.path().join("other.key")).unwrap();
        let err = other.open("web", "DB", &sealed).unwrap_err().to_string();
        assert!(err.contains("secret DB of service web"), "{err}");
        assert!(!format!("{sealer:?}").contains("hunter2"));
    }

    #[test]
    fn a_damaged_key_file_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.key");
        std::fs::write(&path, b"short").unwrap();
        let err = SecretBox::load_or_create(&path).unwrap_err().to_string();
        assert!(
            err.contains("secrets.key") && err.contains("5 bytes"),
            "{err}"
        );
    }
}
