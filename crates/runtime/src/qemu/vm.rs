//! One VM's files under `<state>/vm/<name>/`: what it was launched with (`meta.json`), its
//! pidfile, QMP socket and console log; and whether its QEMU still runs.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::{PortBinding, RuntimeError};

/// What `run` recorded, so any later agent can list, inspect, start and stop the VM.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Meta {
    pub name: String,
    pub id: String,
    /// The OCI image the program came from.
    pub image: String,
    pub labels: BTreeMap<String, String>,
    pub ports: Vec<MetaPort>,
    /// The full QEMU argument vector, reused by `start`.
    pub argv: Vec<String>,
    pub accel: String,
    pub started_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MetaPort {
    pub host_ip: String,
    pub host_port: u16,
    pub guest_port: u16,
    pub protocol: String,
}

impl From<&MetaPort> for PortBinding {
    fn from(p: &MetaPort) -> Self {
        PortBinding {
            host_ip: p.host_ip.clone(),
            host_port: p.host_port,
            container_port: p.guest_port,
            protocol: p.protocol.clone(),
        }
    }
}

/// Paths of one VM.
#[derive(Debug, Clone)]
pub struct VmDir {
    pub dir: PathBuf,
}

impl VmDir {
    pub fn new(vm_root: &Path, name: &str) -> Self {
        Self {
            dir: vm_root.join(name),
        }
    }

    pub fn meta(&self) -> PathBuf {
        self.dir.join("meta.json")
    }

    pub fn console(&self) -> PathBuf {
        self.dir.join("console.log")
    }

    pub fn pidfile(&self) -> PathBuf {
        self.dir.join("qemu.pid")
    }

    /// Relative to the VM dir: QEMU binds it with the dir as working directory, because
    /// absolute paths under a deep state dir exceed the 108-byte socket path limit.
    pub const QMP_SOCKET: &'static str = "qmp.sock";
    /// The second monitor, followed for events (`qmp::await_end`).
    pub const EVENTS_SOCKET: &'static str = "events.sock";

    pub fn config_json(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    pub fn read_meta(&self) -> Result<Meta, RuntimeError> {
        let text = std::fs::read_to_string(self.meta()).map_err(|source| RuntimeError::Io {
            what: self.meta().display().to_string(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| RuntimeError::Parse {
            what: self.meta().display().to_string(),
            detail: e.to_string(),
        })
    }

    pub fn write_meta(&self, meta: &Meta) -> Result<(), RuntimeError> {
        let err = |source: std::io::Error| RuntimeError::Io {
            what: self.meta().display().to_string(),
            source,
        };
        let text = serde_json::to_string_pretty(meta).map_err(|e| RuntimeError::Parse {
            what: self.meta().display().to_string(),
            detail: e.to_string(),
        })?;
        let tmp = self.dir.join(".meta.json.tmp");
        std::fs::write(&tmp, text).map_err(err)?;
        std::fs::rename(&tmp, self.meta()).map_err(err)
    }

    /// The QEMU process of this VM, if it runs. The pid must still be a QEMU that has this
    /// VM's directory on its command line, so a recycled pid is never taken for the VM.
    pub fn running_pid(&self) -> Option<i32> {
        let pid: i32 = std::fs::read_to_string(self.pidfile())
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let needle = self.dir.to_string_lossy();
        let ours = cmdline
            .split(|b| *b == 0)
            .any(|arg| String::from_utf8_lossy(arg).contains(needle.as_ref()));
        // A zombie is not running; it only waits to be reaped.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let zombie = stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z'));
        (ours && !zombie).then_some(pid)
    }

    /// A path to the QMP socket short enough to connect to: through the open directory's
    /// descriptor, valid while the returned value lives.
    pub fn qmp_path(&self) -> Result<QmpPath, RuntimeError> {
        self.socket_path(Self::QMP_SOCKET)
    }

    /// `qmp_path` for the events monitor.
    pub fn events_path(&self) -> Result<QmpPath, RuntimeError> {
        self.socket_path(Self::EVENTS_SOCKET)
    }

    fn socket_path(&self, socket: &str) -> Result<QmpPath, RuntimeError> {
        use std::os::fd::AsRawFd;
        let dir = std::fs::File::open(&self.dir).map_err(|source| RuntimeError::Io {
            what: self.dir.display().to_string(),
            source,
        })?;
        let path = PathBuf::from(format!("/proc/self/fd/{}/{}", dir.as_raw_fd(), socket));
        Ok(QmpPath { _dir: dir, path })
    }

    /// The last `n` lines of the serial console, for error messages.
    pub fn console_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(self.console()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

/// See [`VmDir::qmp_path`].
pub struct QmpPath {
    _dir: std::fs::File,
    pub path: PathBuf,
}
