//! Human tables and stable JSON for status-like output.
//!
//! The JSON field names below are a public interface: add fields, never rename them.

use comfy_table::{Table, presets::NOTHING};
use mcp_proto::v1 as pb;
use serde::Serialize;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Serialize)]
pub struct PortJson {
    pub host_ip: String,
    pub host_port: u32,
    pub container_port: u32,
    pub protocol: String,
}

#[derive(Debug, Serialize)]
pub struct RouteJson {
    /// Null for a component's single unnamed route.
    pub name: Option<String>,
    pub port: u32,
    pub mode: String,
    pub hostname: Option<String>,
    /// Null while released (the service is stopped).
    pub host_port: Option<u32>,
    /// The variable the component reads its host port from.
    pub env: String,
}

#[derive(Debug, Serialize)]
pub struct ComponentJson {
    pub name: String,
    pub instance: String,
    pub image: String,
    pub runtime: String,
    pub desired_state: String,
    pub state: String,
    /// Unix seconds of the last start, when running.
    pub started_at: Option<i64>,
    pub uptime_secs: Option<i64>,
    pub exit_code: Option<i32>,
    pub ports: Vec<PortJson>,
    pub routes: Vec<RouteJson>,
    pub id: String,
    pub restart_policy: String,
    /// Restarts by the agent's monitor since the last deploy or start.
    pub restart_count: u32,
    pub last_exit_code: Option<i32>,
    pub last_exit_at: Option<i64>,
    /// Null when observed matches desired; else "missing", "exited", ...
    pub drift: Option<String>,
    pub drift_detail: Option<String>,
    /// Unix milliseconds before which the monitor will not restart it.
    pub backoff_until_ms: Option<i64>,
    /// VMs: "kvm" or "tcg"; null for containers.
    pub accelerator: Option<String>,
    /// Null without a health check; "starting", "healthy" or "unhealthy".
    pub health: Option<String>,
    /// The last failed check, e.g. "GET /up: ... answered 503".
    pub health_detail: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct StrayJson {
    pub node: String,
    pub instance: String,
    pub service: String,
    pub component: String,
    pub state: String,
    pub image: String,
    pub id: String,
}

pub fn stray_json(node: &str, s: &pb::StrayInstance) -> StrayJson {
    StrayJson {
        node: node.to_string(),
        instance: s.instance.clone(),
        service: s.service.clone(),
        component: s.component.clone(),
        state: s.state.clone(),
        image: s.image.clone(),
        id: s.id.clone(),
    }
}

#[derive(Debug, Serialize)]
pub struct ServiceJson {
    pub name: String,
    pub node: String,
    pub desired_state: String,
    pub spec_hash: String,
    pub updated_at: i64,
    pub components: Vec<ComponentJson>,
}

#[derive(Debug, Serialize)]
pub struct NodeErrorJson {
    pub node: String,
    pub error: String,
}

pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

pub fn component_json(c: &pb::ComponentStatus, now: i64) -> ComponentJson {
    let running = c.state == "running" && c.started_at > 0;
    ComponentJson {
        name: c.name.clone(),
        instance: c.instance.clone(),
        image: c.image.clone(),
        runtime: c.runtime.clone(),
        desired_state: c.desired_state.clone(),
        state: c.state.clone(),
        started_at: running.then_some(c.started_at),
        uptime_secs: running.then(|| (now - c.started_at).max(0)),
        exit_code: (c.state == "exited").then_some(c.exit_code),
        ports: c
            .ports
            .iter()
            .map(|p| PortJson {
                host_ip: p.host_ip.clone(),
                host_port: p.host_port,
                container_port: p.container_port,
                protocol: p.protocol.clone(),
            })
            .collect(),
        routes: c
            .routes
            .iter()
            .map(|r| RouteJson {
                name: (!r.name.is_empty()).then(|| r.name.clone()),
                port: r.port,
                mode: r.mode.clone(),
                hostname: (!r.hostname.is_empty()).then(|| r.hostname.clone()),
                host_port: (r.host_port > 0).then_some(r.host_port),
                env: r.env.clone(),
            })
            .collect(),
        id: c.id.clone(),
        restart_policy: c.restart_policy.clone(),
        restart_count: c.restart_count,
        last_exit_code: c.last_exit_code,
        last_exit_at: (c.last_exit_at > 0).then_some(c.last_exit_at),
        drift: (!c.drift.is_empty()).then(|| c.drift.clone()),
        drift_detail: (!c.drift_detail.is_empty()).then(|| c.drift_detail.clone()),
        backoff_until_ms: (c.backoff_until_ms > 0).then_some(c.backoff_until_ms),
        accelerator: (!c.accelerator.is_empty()).then(|| c.accelerator.clone()),
        health: (!c.health.is_empty()).then(|| c.health.clone()),
        health_detail: (!c.health_detail.is_empty()).then(|| c.health_detail.clone()),
    }
}

pub fn service_json(s: &pb::ServiceStatus, now: i64) -> ServiceJson {
    ServiceJson {
        name: s.name.clone(),
        node: s.node.clone(),
        desired_state: s.desired_state.clone(),
        spec_hash: s.spec_hash.clone(),
        updated_at: s.updated_at,
        components: s
            .components
            .iter()
            .map(|c| component_json(c, now))
            .collect(),
    }
}

/// `5s`, `3m12s`, `2h05m`, `3d04h`.
pub fn human_duration(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// `512 B`, `3.2 GiB`: binary units, one decimal.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    // Display only: a u64 to f64 rounding is far below the one decimal shown.
    #[allow(clippy::cast_precision_loss)]
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn ports_text(ports: &[PortJson]) -> String {
    ports
        .iter()
        .map(|p| {
            format!(
                "{}:{}->{}/{}",
                p.host_ip, p.host_port, p.container_port, p.protocol
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Published ports other than the routes' own (those show under ROUTES).
fn legacy_ports_text(c: &ComponentJson) -> String {
    let routed: Vec<u32> = c.routes.iter().filter_map(|r| r.host_port).collect();
    let legacy: Vec<PortJson> = c
        .ports
        .iter()
        .filter(|p| !routed.contains(&p.host_port))
        .map(|p| PortJson {
            host_ip: p.host_ip.clone(),
            host_port: p.host_port,
            container_port: p.container_port,
            protocol: p.protocol.clone(),
        })
        .collect();
    ports_text(&legacy)
}

/// `rest 8443/l7 app.example.com -> :20001`; the host port is `-` while released.
fn routes_text(routes: &[RouteJson]) -> String {
    routes
        .iter()
        .map(|r| {
            let host = r
                .host_port
                .map_or_else(|| "-".to_string(), |p| format!(":{p}"));
            let name = r.name.as_deref().unwrap_or("(port)");
            match &r.hostname {
                Some(hostname) => format!("{name} {}/{} {hostname} -> {host}", r.port, r.mode),
                None => format!("{name} {}/{} -> {host}", r.port, r.mode),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn state_text(c: &ComponentJson) -> String {
    let mut base = plain_state_text(c);
    if let Some(health) = c.health.as_deref().filter(|_| c.state == "running") {
        base = format!("{base} ({health})");
    }
    match &c.drift {
        // "exited" and "missing" already say it; other drift is worth spelling out.
        Some(kind) if !base.starts_with(kind.as_str()) && kind != "exited" => {
            format!("{base} [drift: {kind}]")
        }
        _ => base,
    }
}

fn plain_state_text(c: &ComponentJson) -> String {
    match (c.state.as_str(), c.exit_code) {
        ("backoff", _) => match c.last_exit_code {
            Some(code) => format!("backoff (exit {code})"),
            None => "backoff".to_string(),
        },
        ("exited", Some(code)) => format!("exited ({code})"),
        (state, _)
            if state != c.desired_state && !(state == "exited" && c.desired_state == "stopped") =>
        {
            format!("{state} (want {})", c.desired_state)
        }
        (state, _) => state.to_string(),
    }
}

pub fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_style(NOTHING).set_header(header.iter().copied());
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    table
}

/// One row per component, grouped by service.
pub fn status_table(services: &[ServiceJson]) -> String {
    let mut t = table(&[
        "SERVICE",
        "NODE",
        "COMPONENT",
        "RUNTIME",
        "STATE",
        "UPTIME",
        "RESTARTS",
        "IMAGE",
        "ROUTES",
        "PORTS",
    ]);
    for s in services {
        for (i, c) in s.components.iter().enumerate() {
            let (service, node) = if i == 0 {
                (s.name.as_str(), s.node.as_str())
            } else {
                ("", "")
            };
            t.add_row(vec![
                service.to_string(),
                node.to_string(),
                c.name.clone(),
                match &c.accelerator {
                    Some(accel) => format!("{} ({accel})", c.runtime),
                    None => c.runtime.clone(),
                },
                state_text(c),
                c.uptime_secs
                    .map(human_duration)
                    .unwrap_or_else(|| "-".into()),
                c.restart_count.to_string(),
                c.image.clone(),
                routes_text(&c.routes),
                legacy_ports_text(c),
            ]);
        }
    }
    t.trim_fmt()
}

/// The table of one service, as operations print it after acting.
pub fn print_service_table(status: &pb::ServiceStatus) {
    println!("{}", status_table(&[service_json(status, now_unix())]));
}

/// One row per instance, `podman ps` style.
pub fn ps_table(services: &[ServiceJson]) -> String {
    let mut t = table(&[
        "NODE",
        "INSTANCE",
        "SERVICE",
        "COMPONENT",
        "STATE",
        "UPTIME",
        "ID",
        "PORTS",
    ]);
    for s in services {
        for c in &s.components {
            t.add_row(vec![
                s.node.clone(),
                c.instance.clone(),
                s.name.clone(),
                c.name.clone(),
                state_text(c),
                c.uptime_secs
                    .map(human_duration)
                    .unwrap_or_else(|| "-".into()),
                c.id.chars().take(12).collect(),
                ports_text(&c.ports),
            ]);
        }
    }
    t.trim_fmt()
}

pub fn print_json<T: Serialize>(value: &T) -> Result<(), crate::CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| crate::CliError::failed(format!("cannot encode JSON: {e}")))?;
    print_text(&text)
}

/// Writes `text` and a newline to stdout. A reader that went away (`| head`) ends the
/// output quietly instead of a panic, as with other command-line tools.
pub fn print_text(text: &str) -> Result<(), crate::CliError> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(crate::CliError::failed(
            format!("cannot write to stdout: {e}"),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(192), "3m12s");
        assert_eq!(human_duration(2 * 3600 + 5 * 60), "2h05m");
        assert_eq!(human_duration(3 * 86_400 + 4 * 3600), "3d04h");
        assert_eq!(human_duration(-3), "0s");
    }

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1024), "1.0 KiB");
        assert_eq!(human_bytes(3_435_973_837), "3.2 GiB");
        assert_eq!(human_bytes(5 * 1024 * 1024 * 1024 * 1024), "5.0 TiB");
        assert_eq!(human_bytes(u64::MAX), "16.0 EiB");
    }

    #[test]
    fn uptime_only_for_running_components() {
        let mut c = pb::ComponentStatus {
            state: "running".into(),
            started_at: 1000,
            ..Default::default()
        };
        assert_eq!(component_json(&c, 1060).uptime_secs, Some(60));
        c.state = "exited".into();
        c.exit_code = 3;
        let json = component_json(&c, 1060);
        assert_eq!(json.uptime_secs, None);
        assert_eq!(json.exit_code, Some(3));
    }
}
