//! Is an accelerator usable? Boots a 512-byte guest under QEMU and watches its serial port.
//!
//! `/dev/kvm` existing (or even `KVM_CREATE_VM` succeeding) says nothing: under nested
//! virtualisation QEMU can open KVM and still fail to run a guest ("failed to set MSR 0x10a",
//! or a silent hang). So the probe boots a real, tiny guest with the CPU model the QEMU
//! runtime uses for that accelerator (`-cpu host` under KVM, as Nanos runs; `-cpu max` under
//! TCG) and calls the accelerator usable only when the guest's output arrives in time.

use std::fmt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::process::Command;

/// What the guest writes to COM1 before halting.
const MARKER: &[u8] = b"OK\n";

/// How often the serial output file is checked while the guest runs.
const POLL: Duration = Duration::from_millis(50);

/// A QEMU accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Accel {
    /// Hardware virtualisation through /dev/kvm.
    Kvm,
    /// QEMU's software emulation: slow, but runs anywhere.
    Tcg,
}

impl Accel {
    /// The value of QEMU's `-accel`.
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }

    /// The `-cpu` model the QEMU runtime uses with this accelerator. The probe uses the same
    /// one: under nested KVM, `-cpu host` is what fails (MSR 0x10a), while QEMU's default
    /// model may boot and would make the probe lie.
    pub fn cpu_model(self) -> &'static str {
        match self {
            Accel::Kvm => "host",
            Accel::Tcg => "max",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Accel::Kvm => "KVM",
            Accel::Tcg => "TCG",
        }
    }
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    pub accel: Accel,
    /// The guest booted and wrote its marker within the timeout.
    pub usable: bool,
    /// One line for an operator: "guest booted under KVM", QEMU's error, or what was missing.
    pub detail: String,
    pub elapsed: Duration,
}

/// A boot sector that writes "OK\n" to COM1 (port 0x3f8) and halts for good.
///
/// Hand-assembled 16-bit real mode, loaded by the BIOS at 0000:7c00:
/// ```text
///         cli
///         mov dx, 0x3f8       ; COM1 data register; QEMU's UART sends without any setup
///         mov al, 'O'
///         out dx, al
///         mov al, 'K'
///         out dx, al
///         mov al, 0x0a
///         out dx, al
///         mov dx, 0xf4        ; QEMU's isa-debug-exit device: QEMU exits at once, so a
///         out dx, al          ; probe whose agent died (SIGKILL) leaves no QEMU behind
/// halt:   cli
///         hlt
///         jmp halt            ; an NMI can wake hlt: halt again
/// ```
/// padded with zeros to 510 bytes and ended by the 0x55 0xAA boot signature.
pub fn boot_sector() -> [u8; 512] {
    let mut code = vec![
        0xFA, // cli
        0xBA, 0xF8, 0x03, // mov dx, 0x3f8
    ];
    for &byte in MARKER {
        code.extend([0xB0, byte]); // mov al, imm8
        code.push(0xEE); // out dx, al
    }
    code.extend([
        0xBA, 0xF4, 0x00, // mov dx, 0xf4
        0xEE, // out dx, al
        0xFA, // halt: cli
        0xF4, // hlt
        0xEB, 0xFC, // jmp short halt (-4: back over itself, hlt and cli)
    ]);
    let mut sector = [0u8; 512];
    sector[..code.len()].copy_from_slice(&code);
    sector[510] = 0x55;
    sector[511] = 0xAA;
    sector
}

/// QEMU's arguments for booting `image` under `accel`, its serial port into `serial`.
fn qemu_args(accel: Accel, image: &Path, serial: &Path) -> Vec<String> {
    vec![
        // i440fx: SeaBIOS boots an IDE disk there; q35's AHCI path did not boot this sector.
        "-machine".into(),
        "pc".into(),
        "-accel".into(),
        accel.as_str().into(),
        "-cpu".into(),
        accel.cpu_model().into(),
        "-nodefaults".into(),
        "-display".into(),
        "none".into(),
        "-m".into(),
        "16".into(),
        "-no-reboot".into(),
        "-device".into(),
        "isa-debug-exit,iobase=0xf4,iosize=0x04".into(),
        "-serial".into(),
        format!("file:{}", serial.display()),
        "-drive".into(),
        // -drive splits on commas; a comma inside the path is written doubled.
        format!(
            "format=raw,file={},if=ide",
            image.display().to_string().replace(',', ",,")
        ),
    ]
}

/// Boots the probe guest with `qemu` under `accel`; kills QEMU after `timeout` at most.
///
/// Never fails: anything that keeps the guest from running (QEMU missing, a QEMU error,
/// silence) is a result with `usable == false` and the reason in `detail`.
pub async fn probe_accelerator(qemu: &Path, accel: Accel, timeout: Duration) -> ProbeResult {
    probe_accelerator_in(qemu, accel, timeout, None).await
}

/// As `probe_accelerator`, with its scratch files under `parent` (an agent's state dir)
/// rather than the system's temporary directory: a probe cut short by SIGKILL leaves its
/// directory there, and the next probe in `parent` removes it.
pub async fn probe_accelerator_in(
    qemu: &Path,
    accel: Accel,
    timeout: Duration,
    parent: Option<&Path>,
) -> ProbeResult {
    let started = Instant::now();
    let (usable, detail) = match run_probe(qemu, accel, timeout, parent).await {
        Ok(()) => (true, format!("guest booted under {}", accel.label())),
        Err(why) => (false, why),
    };
    ProbeResult {
        accel,
        usable,
        detail,
        elapsed: started.elapsed(),
    }
}

/// `Ok` when the guest's marker arrived; otherwise the one-line reason.
async fn run_probe(
    qemu: &Path,
    accel: Accel,
    timeout: Duration,
    parent: Option<&Path>,
) -> Result<(), String> {
    const PREFIX: &str = "mcp-accel-probe-";
    let mut builder = tempfile::Builder::new();
    builder.prefix(PREFIX);
    let dir = match parent {
        Some(parent) => {
            // Left by a probe that was killed: one agent probes in its state dir at a time.
            if let Ok(entries) = std::fs::read_dir(parent) {
                for entry in entries.filter_map(Result::ok) {
                    if entry.file_name().to_string_lossy().starts_with(PREFIX) {
                        let _ = std::fs::remove_dir_all(entry.path());
                    }
                }
            }
            builder.tempdir_in(parent)
        }
        None => builder.tempdir(),
    }
    .map_err(|e| format!("cannot create the probe's temporary directory: {e}"))?;
    let image = dir.path().join("boot.img");
    let serial = dir.path().join("serial.out");
    tokio::fs::write(&image, boot_sector())
        .await
        .map_err(|e| format!("cannot write {}: {e}", image.display()))?;
    let mut child = Command::new(qemu)
        .args(qemu_args(accel, &image, &serial))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| spawn_failure(qemu, &e))?;
    // Read stderr as it comes, so a chatty QEMU never blocks on a full pipe.
    let stderr = child.stderr.take().map(|mut pipe| {
        tokio::spawn(async move {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text).await;
            String::from_utf8_lossy(&text).into_owned()
        })
    });
    let deadline = Instant::now() + timeout;
    let outcome = loop {
        if serial_has_marker(&serial).await {
            break Outcome::Booted;
        }
        match child.try_wait() {
            Ok(Some(status)) => {
                // The guest may have written its marker just before QEMU stopped.
                if serial_has_marker(&serial).await {
                    break Outcome::Booted;
                }
                break Outcome::Exited(status);
            }
            Ok(None) => {}
            Err(e) => break Outcome::WaitFailed(e),
        }
        if Instant::now() >= deadline {
            break Outcome::Silent;
        }
        tokio::time::sleep(POLL).await;
    };
    // The guest makes QEMU exit on success; kill it anyway, never leave one behind.
    let _ = child.kill().await;
    let stderr = match stderr {
        Some(task) => task.await.unwrap_or_default(),
        None => String::new(),
    };
    match outcome {
        Outcome::Booted => Ok(()),
        Outcome::Exited(status) => Err(qemu_error(&stderr)
            .unwrap_or_else(|| format!("qemu exited ({status}) before the guest wrote anything"))),
        Outcome::Silent => {
            let mut why = format!("no output within {}", seconds(timeout));
            if let Some(err) = qemu_error(&stderr) {
                why.push_str(&format!(" ({err})"));
            }
            Err(why)
        }
        Outcome::WaitFailed(e) => Err(format!("cannot watch qemu: {e}")),
    }
}

enum Outcome {
    Booted,
    Exited(std::process::ExitStatus),
    Silent,
    WaitFailed(std::io::Error),
}

async fn serial_has_marker(serial: &Path) -> bool {
    tokio::fs::read(serial)
        .await
        .is_ok_and(|out| out.windows(MARKER.len()).any(|w| w == MARKER))
}

/// "qemu-system-x86_64 not installed" for a missing binary, the OS error otherwise.
fn spawn_failure(qemu: &Path, e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::NotFound {
        let why = if qemu.components().count() == 1 {
            "not found in PATH"
        } else {
            "no such file"
        };
        format!("{} not installed ({why})", qemu.display())
    } else {
        format!("cannot run {}: {e}", qemu.display())
    }
}

/// QEMU's most telling stderr line as "qemu: ...": an error line if there is one, else the
/// first line that is not a warning or the notice of our own kill.
fn qemu_error(stderr: &str) -> Option<String> {
    let lines: Vec<&str> = stderr
        .lines()
        .map(strip_program)
        .filter(|l| !l.is_empty() && !l.starts_with("terminating on signal"))
        .collect();
    let pick = lines
        .iter()
        .find(|l| l.starts_with("error:"))
        .or_else(|| lines.iter().find(|l| !l.starts_with("warning:")))
        .or_else(|| lines.first())?;
    let text = pick.strip_prefix("error:").unwrap_or(pick).trim();
    Some(format!("qemu: {text}"))
}

/// "qemu-system-x86_64: error: x" → "error: x"; QEMU prefixes its messages with its name.
fn strip_program(line: &str) -> &str {
    let line = line.trim();
    match line.split_once(": ") {
        Some((program, rest)) if program.starts_with("qemu") && !program.contains(' ') => {
            rest.trim()
        }
        _ => line,
    }
}

fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_sector_is_one_signed_sector_that_writes_the_marker_to_com1() {
        let sector = boot_sector();
        assert_eq!(sector.len(), 512);
        assert_eq!(&sector[510..], &[0x55, 0xAA]);
        // mov dx, 0x3f8 comes before any out.
        assert_eq!(&sector[..4], &[0xFA, 0xBA, 0xF8, 0x03]);
        // Each marker byte is loaded into al and sent with `out dx, al`.
        let sends: Vec<u8> = sector
            .windows(3)
            .filter(|w| w[0] == 0xB0 && w[2] == 0xEE)
            .map(|w| w[1])
            .collect();
        assert_eq!(sends, MARKER);
        // Then QEMU's debug-exit port (so QEMU ends by itself), then the halt loop:
        // cli; hlt; jmp -4 (back to the cli).
        let tail = 4 + 3 * MARKER.len();
        assert_eq!(&sector[tail..tail + 4], &[0xBA, 0xF4, 0x00, 0xEE]);
        assert_eq!(&sector[tail + 4..tail + 8], &[0xFA, 0xF4, 0xEB, 0xFC]);
        assert!(sector[tail + 8..510].iter().all(|&b| b == 0));
    }

    #[test]
    fn qemu_errors_are_one_line_without_the_program_name() {
        let stderr = "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69\n\
                      qemu-system-x86_64: ../../target/i386/kvm/kvm.c:3183: kvm_buf_set_msrs: \
                      Assertion `ret == cpu->kvm_msr_buf->nmsrs' failed.\n";
        assert_eq!(
            qemu_error(stderr).as_deref(),
            Some("qemu: failed to set MSR 0x10a to 0x69")
        );
        let warned = "qemu-system-x86_64: warning: host doesn't support requested feature\n\
                      qemu-system-x86_64: terminating on signal 9\n";
        assert_eq!(
            qemu_error(warned).as_deref(),
            Some("qemu: warning: host doesn't support requested feature")
        );
        assert_eq!(
            qemu_error("qemu-system-x86_64: terminating on signal 15\n"),
            None
        );
        assert_eq!(qemu_error(""), None);
    }

    #[test]
    fn arguments_select_accelerator_cpu_and_files() {
        let args = qemu_args(Accel::Kvm, Path::new("/t/boot.img"), Path::new("/t/out"));
        let joined = args.join(" ");
        assert!(joined.contains("-accel kvm -cpu host"), "{joined}");
        assert!(joined.contains("-serial file:/t/out"), "{joined}");
        assert!(
            joined.contains("-drive format=raw,file=/t/boot.img,if=ide"),
            "{joined}"
        );
        let tcg = qemu_args(Accel::Tcg, Path::new("i"), Path::new("o")).join(" ");
        assert!(tcg.contains("-accel tcg -cpu max"), "{tcg}");
    }

    #[tokio::test]
    async fn a_missing_qemu_is_reported_not_an_error() {
        let result = probe_accelerator(
            Path::new("mcp-no-such-qemu"),
            Accel::Kvm,
            Duration::from_secs(1),
        )
        .await;
        assert!(!result.usable);
        assert_eq!(
            result.detail,
            "mcp-no-such-qemu not installed (not found in PATH)"
        );
    }
}
