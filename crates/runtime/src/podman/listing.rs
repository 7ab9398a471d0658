//! Parsing `podman ps --format json` into `InstanceInfo`.

use serde::Deserialize;
use servicedef::RuntimeKind;
use std::collections::BTreeMap;

use crate::{InstanceInfo, InstanceState, PortBinding, RuntimeError};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PsEntry {
    id: String,
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    image: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    started_at: i64,
    #[serde(default)]
    exit_code: i32,
    #[serde(default)]
    exited: bool,
    #[serde(default)]
    exited_at: i64,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    ports: Option<Vec<PsPort>>,
}

#[derive(Deserialize)]
struct PsPort {
    #[serde(default)]
    host_ip: String,
    host_port: u16,
    container_port: u16,
    #[serde(default)]
    range: u16,
    #[serde(default)]
    protocol: String,
}

pub(super) fn parse_ps(json: &str) -> Result<Vec<InstanceInfo>, RuntimeError> {
    // podman 4 prints nothing at all (not "[]") when no container matches.
    if json.trim().is_empty() {
        return Ok(Vec::new());
    }
    let entries: Vec<PsEntry> = serde_json::from_str(json).map_err(|e| RuntimeError::Parse {
        what: "podman ps output".into(),
        detail: e.to_string(),
    })?;
    Ok(entries.into_iter().map(into_info).collect())
}

fn into_info(entry: PsEntry) -> InstanceInfo {
    let state = InstanceState::parse(&entry.state);
    let mut ports = Vec::new();
    for port in entry.ports.unwrap_or_default() {
        // A published range arrives as one entry; expand it so every host port is visible.
        for offset in 0..port.range.max(1) {
            ports.push(PortBinding {
                host_ip: port.host_ip.clone(),
                host_port: port.host_port.saturating_add(offset),
                container_port: port.container_port.saturating_add(offset),
                protocol: port.protocol.clone(),
            });
        }
    }
    InstanceInfo {
        name: entry.names.into_iter().next().unwrap_or_default(),
        id: entry.id,
        image: entry.image,
        // podman reports 0 (or a pre-epoch value) for "never started".
        started_at: (entry.started_at > 0).then_some(entry.started_at),
        exit_code: (entry.exited || state == InstanceState::Exited).then_some(entry.exit_code),
        // podman reports year 1 (a large negative number) for "never exited".
        exited_at: (entry.exited_at > 0).then_some(entry.exited_at),
        state,
        ports,
        runtime: RuntimeKind::Container,
        labels: entry.labels.unwrap_or_default(),
        accelerator: None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_podman_4_ps_output() {
        let json = r#"[{"AutoRemove":false,"Command":null,"CreatedAt":"now","Exited":false,
          "ExitedAt":-62135596800,"ExitCode":0,"Id":"afb8","Image":"localhost/hello:dev",
          "Labels":{"mcp.service":"x","mcp.component":"web"},"Names":["x-web"],"Pid":9396,
          "Ports":[{"host_ip":"127.0.0.1","container_port":8080,"host_port":18080,"range":1,
          "protocol":"tcp"}],"StartedAt":1795741426,"State":"running","Created":1795741426}]"#;
        let list = parse_ps(json).unwrap();
        assert_eq!(list.len(), 1);
        let info = &list[0];
        assert_eq!(info.name, "x-web");
        assert_eq!(info.state, InstanceState::Running);
        assert_eq!(info.started_at, Some(1_795_741_426));
        assert_eq!(info.exit_code, None);
        assert_eq!(info.service(), Some("x"));
        assert_eq!(info.component(), Some("web"));
        assert_eq!(info.ports[0].host_port, 18080);
    }

    #[test]
    fn empty_output_is_an_empty_listing() {
        assert!(parse_ps("").unwrap().is_empty());
        assert!(parse_ps("[]\n").unwrap().is_empty());
    }

    #[test]
    fn exited_container_keeps_its_exit_code() {
        let json = r#"[{"Id":"a","Names":["n"],"State":"exited","Exited":true,"ExitCode":3,
          "ExitedAt":1795741500,"StartedAt":0,"Labels":null,"Ports":null}]"#;
        let info = &parse_ps(json).unwrap()[0];
        assert_eq!(info.exit_code, Some(3));
        assert_eq!(info.exited_at, Some(1_795_741_500));
        assert_eq!(info.started_at, None);
    }
}
