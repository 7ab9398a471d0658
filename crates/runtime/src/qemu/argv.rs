//! The `qemu-system-x86_64` argument vector for a Nanos image: Nanos's own device model (q35,
//! virtio-scsi disk, virtio-net with user-mode networking, virtio-rng), daemonized with a
//! pidfile, a QMP socket and the serial console appended to a file. This is the contract
//! with real Nanos images; the unit tests pin it.

use std::net::IpAddr;
use std::path::Path;

use crate::{Accel, RuntimeError};

/// One forwarded port: host address and port to guest port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub protocol: String,
    pub host_ip: IpAddr,
    pub host_port: u16,
    pub guest_port: u16,
}

/// Parses a `[ip:]host:guest[/proto]` mapping; without an IP, `default_ip` (never all
/// interfaces unless the operator says so).
pub fn parse_forward(mapping: &str, default_ip: IpAddr) -> Result<Forward, RuntimeError> {
    let bad = |detail: &str| RuntimeError::InvalidSpec {
        name: mapping.to_string(),
        detail: format!("port mapping: {detail}"),
    };
    let (rest, protocol) = match mapping.rsplit_once('/') {
        Some((rest, proto @ ("tcp" | "udp"))) => (rest, proto.to_string()),
        Some(_) => return Err(bad("protocol must be tcp or udp")),
        None => (mapping, "tcp".to_string()),
    };
    let (host_part, guest) = rest
        .rsplit_once(':')
        .ok_or_else(|| bad("expected host:guest"))?;
    let (ip, host) = match host_part.rsplit_once(':') {
        Some((ip, host)) => {
            let ip = ip.trim_start_matches('[').trim_end_matches(']');
            (ip.parse().map_err(|_| bad("invalid IP address"))?, host)
        }
        None => (default_ip, host_part),
    };
    Ok(Forward {
        protocol,
        host_ip: ip,
        host_port: host.parse().map_err(|_| bad("invalid host port"))?,
        guest_port: guest.parse().map_err(|_| bad("invalid guest port"))?,
    })
}

/// Everything the argument vector depends on.
pub struct VmLaunch<'a> {
    pub name: &'a str,
    pub image: &'a Path,
    pub memory_mb: u32,
    pub vcpus: u32,
    pub accel: Accel,
    pub forwards: &'a [Forward],
    pub console_log: &'a Path,
    pub qmp_socket: &'a Path,
    /// A second QMP monitor, which the agent follows for the VM's end.
    pub events_socket: &'a Path,
    pub pidfile: &'a Path,
}

pub fn qemu_argv(vm: &VmLaunch<'_>) -> Vec<String> {
    let path = |p: &Path| p.to_string_lossy().into_owned();
    let mut argv: Vec<String> = vec![
        "-name".into(),
        vm.name.into(),
        "-machine".into(),
        "q35".into(),
    ];
    match vm.accel {
        Accel::Kvm => argv.push("-enable-kvm".into()),
        Accel::Tcg => argv.extend(["-accel".into(), "tcg".into()]),
    }
    argv.extend(["-cpu".into(), vm.accel.cpu_model().into()]);
    argv.extend([
        "-m".into(),
        format!("{}M", vm.memory_mb),
        "-smp".into(),
        vm.vcpus.max(1).to_string(),
        "-drive".into(),
        format!("if=none,id=hd0,format=raw,file={}", path(vm.image)),
        "-device".into(),
        "virtio-scsi-pci,id=scsi0".into(),
        "-device".into(),
        "scsi-hd,bus=scsi0.0,drive=hd0".into(),
        "-device".into(),
        "virtio-net-pci,netdev=n0".into(),
    ]);
    let mut netdev = "user,id=n0".to_string();
    for f in vm.forwards {
        let ip = match f.host_ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        };
        netdev.push_str(&format!(
            ",hostfwd={}:{ip}:{}-:{}",
            f.protocol, f.host_port, f.guest_port
        ));
    }
    argv.extend([
        "-netdev".into(),
        netdev,
        "-device".into(),
        "virtio-rng-pci".into(),
        // A guest that exits (Nanos halts when its program ends) ends QEMU, not a reboot loop.
        "-no-reboot".into(),
        // QEMU refuses -nographic with -daemonize.
        "-display".into(),
        "none".into(),
        "-chardev".into(),
        format!("file,id=console,path={},append=on", path(vm.console_log)),
        "-serial".into(),
        "chardev:console".into(),
        "-qmp".into(),
        format!("unix:{},server=on,wait=off", path(vm.qmp_socket)),
        "-qmp".into(),
        format!("unix:{},server=on,wait=off", path(vm.events_socket)),
        "-daemonize".into(),
        "-pidfile".into(),
        path(vm.pidfile),
    ]);
    argv
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::net::Ipv4Addr;

    const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[test]
    fn nanos_device_model_under_tcg() {
        let forwards = [
            parse_forward("127.0.0.1:20001:20001/tcp", LOOPBACK).unwrap(),
            parse_forward("48080:8080", LOOPBACK).unwrap(),
        ];
        let argv = qemu_argv(&VmLaunch {
            name: "hello-vm",
            image: Path::new("/s/images/hello-vm.img"),
            memory_mb: 256,
            vcpus: 2,
            accel: Accel::Tcg,
            forwards: &forwards,
            console_log: Path::new("/s/vm/hello-vm/console.log"),
            qmp_socket: Path::new("/s/vm/hello-vm/qmp.sock"),
            events_socket: Path::new("/s/vm/hello-vm/events.sock"),
            pidfile: Path::new("/s/vm/hello-vm/qemu.pid"),
        });
        assert_eq!(
            argv,
            [
                "-name",
                "hello-vm",
                "-machine",
                "q35",
                "-accel",
                "tcg",
                "-cpu",
                "max",
                "-m",
                "256M",
                "-smp",
                "2",
                "-drive",
                "if=none,id=hd0,format=raw,file=/s/images/hello-vm.img",
                "-device",
                "virtio-scsi-pci,id=scsi0",
                "-device",
                "scsi-hd,bus=scsi0.0,drive=hd0",
                "-device",
                "virtio-net-pci,netdev=n0",
                "-netdev",
                "user,id=n0,hostfwd=tcp:127.0.0.1:20001-:20001,hostfwd=tcp:127.0.0.1:48080-:8080",
                "-device",
                "virtio-rng-pci",
                "-no-reboot",
                "-display",
                "none",
                "-chardev",
                "file,id=console,path=/s/vm/hello-vm/console.log,append=on",
                "-serial",
                "chardev:console",
                "-qmp",
                "unix:/s/vm/hello-vm/qmp.sock,server=on,wait=off",
                "-qmp",
                "unix:/s/vm/hello-vm/events.sock,server=on,wait=off",
                "-daemonize",
                "-pidfile",
                "/s/vm/hello-vm/qemu.pid",
            ]
        );
    }

    #[test]
    fn kvm_uses_the_host_cpu() {
        let argv = qemu_argv(&VmLaunch {
            name: "x",
            image: Path::new("/i"),
            memory_mb: 64,
            vcpus: 0,
            accel: Accel::Kvm,
            forwards: &[],
            console_log: Path::new("/c"),
            qmp_socket: Path::new("/q"),
            events_socket: Path::new("/e"),
            pidfile: Path::new("/p"),
        });
        let joined = argv.join(" ");
        assert!(joined.contains("-enable-kvm -cpu host"), "{joined}");
        assert!(joined.contains("-smp 1"), "at least one vCPU: {joined}");
        assert!(joined.contains("-netdev user,id=n0 "), "{joined}");
    }

    #[test]
    fn forwards_default_to_the_given_address_never_all_interfaces() {
        let f = parse_forward("8080:80", LOOPBACK).unwrap();
        assert_eq!(f.host_ip, LOOPBACK);
        let f = parse_forward("0.0.0.0:8080:80/udp", LOOPBACK).unwrap();
        assert_eq!(
            (f.host_ip.to_string().as_str(), f.protocol.as_str()),
            ("0.0.0.0", "udp")
        );
        assert!(parse_forward("8080", LOOPBACK).is_err());
        assert!(parse_forward("1:2/sctp", LOOPBACK).is_err());
    }
}
