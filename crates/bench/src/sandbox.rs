//! The run directory: a private podman store (short paths: podman's runroot holds sockets),
//! the test image built from examples/hello, and the cleanup of everything at the end.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The checkout this binary was built from.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `given`, or target/release when both binaries are there, else target/debug.
pub fn bin_dir(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let has_both = |dir: &Path| dir.join("mcp").is_file() && dir.join("mcp-agent").is_file();
    if let Some(dir) = given {
        if !has_both(dir) {
            bail!("{} does not hold both mcp and mcp-agent", dir.display());
        }
        return std::path::absolute(dir).context("resolving --bin-dir");
    }
    let target = repo_root().join("target");
    for profile in ["release", "debug"] {
        let dir = target.join(profile);
        if has_both(&dir) {
            if profile == "debug" {
                eprintln!(
                    "mcp-bench: WARNING: measuring debug binaries; build release ones first \
                     (cargo build --release --bins)"
                );
            }
            return std::path::absolute(&dir).context("resolving the binary directory");
        }
    }
    bail!(
        "no mcp and mcp-agent under {}/{{release,debug}}: run `cargo build --release --bins`",
        target.display()
    )
}

pub struct Sandbox {
    pub repo: PathBuf,
    pub bins: PathBuf,
    /// Everything this run creates lives here.
    pub dir: PathBuf,
    pub image: String,
    keep: bool,
}

impl Sandbox {
    /// Creates the run directory and builds the test image into its store.
    pub fn create(bins: PathBuf, keep: bool) -> anyhow::Result<Self> {
        let repo = std::path::absolute(repo_root()).context("resolving the checkout")?;
        let dir = PathBuf::from(format!("/var/tmp/mcpb-{}", std::process::id()));
        if dir.exists() {
            bail!(
                "{} exists already (a leftover of another run?)",
                dir.display()
            );
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let sb = Self {
            repo,
            bins,
            dir,
            image: "localhost/mcp-bench-hello:latest".to_string(),
            keep,
        };
        sb.build_image()?;
        Ok(sb)
    }

    pub fn containers_conf(&self) -> PathBuf {
        self.repo.join("config/podman-sandbox.conf")
    }

    /// `--root`/`--runroot` of the private store.
    pub fn podman_global_args(&self) -> Vec<String> {
        vec![
            format!("--root={}", self.dir.join("r").display()),
            format!("--runroot={}", self.dir.join("rr").display()),
        ]
    }

    /// A podman command on the private store.
    pub fn podman_command<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Command {
        let mut cmd = Command::new("podman");
        cmd.args(self.podman_global_args())
            .args(args)
            .env("CONTAINERS_CONF", self.containers_conf())
            .stdin(Stdio::null());
        cmd
    }

    /// Runs podman; its stdout, or an error with its stderr.
    pub fn podman(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self
            .podman_command(args)
            .output()
            .context("running podman (is it installed? scripts/packages.sh installs it)")?;
        checked(&format!("podman {}", args.join(" ")), out)
    }

    /// A new directory inside the run directory.
    pub fn subdir(&self, name: &str) -> anyhow::Result<PathBuf> {
        let path = self.dir.join(name);
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(path)
    }

    fn build_image(&self) -> anyhow::Result<()> {
        let ctx = self.subdir("image")?;
        let source = self.repo.join("examples/hello/hello.c");
        let out = Command::new("gcc")
            .args(["-static", "-O2", "-o"])
            .arg(ctx.join("hello"))
            .arg(&source)
            .output()
            .context("running gcc (scripts/packages.sh installs it)")?;
        checked("gcc -static examples/hello/hello.c", out)?;
        std::fs::copy(
            self.repo.join("examples/hello/Containerfile"),
            ctx.join("Containerfile"),
        )
        .context("copying examples/hello/Containerfile")?;
        let ctx = ctx.to_string_lossy();
        self.podman(&["build", "--quiet", "-t", &self.image, &ctx])?;
        Ok(())
    }

    /// The stand-in ops' kernel and modules, prepared once per checkout (the script locks).
    pub fn standin(&self) -> anyhow::Result<PathBuf> {
        let dir = self.repo.join("target/ops-standin");
        let out = Command::new(self.repo.join("scripts/prepare-standin.sh"))
            .arg(&dir)
            .stdin(Stdio::null())
            .output()
            .context("running scripts/prepare-standin.sh")?;
        checked("scripts/prepare-standin.sh", out)?;
        Ok(dir)
    }

    /// Removes every container of the private store at once (faster than one by one).
    pub fn remove_all_containers(&self) -> anyhow::Result<()> {
        self.podman(&["rm", "--all", "--force", "--time", "0"])
            .map(drop)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let dir = self.dir.to_string_lossy().into_owned();
        // VMs (the agents' and the baselines') are daemonized QEMUs run from inside `dir`.
        // So are the node proxies (their own session), the agents' podman API services
        // (which outlive a killed agent by design) and the proxy suite's servers.
        let leftovers = [
            "qemu-system",
            "mcp-proxy",
            "system service",
            "nginx",
            "haproxy",
        ]
        .iter()
        .flat_map(|program| testkit::processes(&[program, &dir]));
        for pid in leftovers {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        if let Err(e) = self.remove_all_containers() {
            eprintln!("mcp-bench: cleanup: {e:#}");
        }
        // Not `podman system reset`: it also empties podman's tmpdir (/run/libpod, with its
        // event log), which every store on the machine shares.
        if let Err(e) = self.podman(&["rmi", "--all", "--force"]) {
            eprintln!("mcp-bench: cleanup: {e:#}");
        }
        unmount_under(&self.dir);
        if self.keep {
            eprintln!("mcp-bench: kept {dir}");
        } else if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("mcp-bench: cleanup: cannot remove {dir}: {e}");
        }
    }
}

/// Detaches whatever is still mounted under `dir` (the overlay driver mounts its own home in
/// the store), deepest first, so that the directory can be removed.
fn unmount_under(dir: &Path) {
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|point| PathBuf::from(unescape_mount_path(point)))
        .filter(|point| point.starts_with(dir))
        .collect();
    points.sort_by_key(|point| std::cmp::Reverse(point.components().count()));
    for point in points {
        if let Err(e) = nix::mount::umount2(&point, nix::mount::MntFlags::MNT_DETACH) {
            eprintln!(
                "mcp-bench: cleanup: cannot unmount {}: {e}",
                point.display()
            );
        }
    }
}

/// A mountinfo path with its octal escapes (`\040` for a space) undone.
fn unescape_mount_path(escaped: &str) -> String {
    let mut out = String::with_capacity(escaped.len());
    let mut rest = escaped;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let code = rest.get(at + 1..at + 4);
        match code.and_then(|c| u8::from_str_radix(c, 8).ok()) {
            Some(byte) => {
                out.push(char::from(byte));
                rest = &rest[at + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// stdout of a successful command, or an error naming it with its stderr.
pub fn checked(what: &str, out: Output) -> anyhow::Result<String> {
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape_mount_path("/var/tmp/a\\040b"), "/var/tmp/a b");
        assert_eq!(unescape_mount_path("/plain"), "/plain");
        assert_eq!(unescape_mount_path("/odd\\x"), "/odd\\x");
    }
}
