//! `mcp node status [--json]`: every node's agent and host facts, in parallel; `mcp node
//! list`: the same, one line per node, unreachable ones included.

use mcp_proto::v1 as pb;
use serde::Serialize;
use std::collections::BTreeMap;

use crate::context::{Context, EXPIRY_WARNING_DAYS, fan_out, fan_out_code};
use crate::output::{self, NodeErrorJson};
use crate::{CliError, ExitCode};
use mcp_client::NodeEntry;

/// One node's status. Field names are a public interface: add, never rename.
#[derive(Debug, Serialize)]
struct NodeJson {
    node: String,
    address: String,
    agent_version: String,
    agent_uptime_secs: u64,
    hostname: String,
    host_uptime_secs: u64,
    cpu_count: u32,
    /// 1, 5 and 15 minute load averages.
    load_avg: Vec<f64>,
    memory_total_bytes: u64,
    memory_available_bytes: u64,
    /// The disk figures are of the filesystem holding this directory.
    state_dir: String,
    disk_total_bytes: u64,
    disk_free_bytes: u64,
    runtimes: Vec<RuntimeJson>,
    kvm_usable: bool,
    kvm_detail: String,
    /// "kvm", "tcg", "none" (no QEMU) or "probing".
    accelerator: String,
    components_by_state: BTreeMap<String, u32>,
    warnings: Vec<String>,
    /// Unix seconds the agent's TLS certificate ends; null when the agent did not say.
    certificate_not_after: Option<i64>,
    protocol_version: u32,
}

#[derive(Debug, Serialize)]
struct RuntimeJson {
    name: String,
    version: String,
    available: bool,
    detail: String,
}

#[derive(Serialize)]
struct NodesJson {
    nodes: Vec<NodeJson>,
    errors: Vec<NodeErrorJson>,
}

fn node_json(r: pb::NodeStatusResponse, address: String) -> NodeJson {
    NodeJson {
        node: r.node,
        address,
        agent_version: r.agent_version,
        agent_uptime_secs: r.agent_uptime_secs,
        hostname: r.hostname,
        host_uptime_secs: r.host_uptime_secs,
        cpu_count: r.cpu_count,
        load_avg: r.load_avg,
        memory_total_bytes: r.memory_total_bytes,
        memory_available_bytes: r.memory_available_bytes,
        state_dir: r.state_dir,
        disk_total_bytes: r.disk_total_bytes,
        disk_free_bytes: r.disk_free_bytes,
        runtimes: r
            .runtimes
            .into_iter()
            .map(|t| RuntimeJson {
                name: t.name,
                version: t.version,
                available: t.available,
                detail: t.detail,
            })
            .collect(),
        kvm_usable: r.kvm_usable,
        kvm_detail: r.kvm_detail,
        accelerator: r.accelerator,
        components_by_state: r.components_by_state.into_iter().collect(),
        warnings: r.warnings,
        certificate_not_after: (r.certificate_not_after > 0).then_some(r.certificate_not_after),
        protocol_version: r.protocol_version,
    }
}

/// Node status from every node asked: answers and failures, in config order.
async fn gather(
    ctx: &Context,
    only: Option<&str>,
) -> Result<Vec<(NodeEntry, Result<NodeJson, CliError>)>, CliError> {
    let asked = ctx.nodes(only)?;
    let answers = fan_out(ctx, asked, |mut client| async move {
        client
            .node_status(pb::NodeStatusRequest {})
            .await
            .map(tonic::Response::into_inner)
    })
    .await;
    Ok(answers
        .into_iter()
        .map(|(entry, result)| {
            let result = result.map(|r| node_json(r, entry.address.clone()));
            (entry, result)
        })
        .collect())
}

/// Warnings about the agents this command talked to, once per node, after its output: a
/// release other than the CLI's, a certificate that ends within `EXPIRY_WARNING_DAYS`.
pub fn warn_about_agents() {
    for (node, version) in mcp_client::version_mismatches() {
        eprintln!(
            "warning: the agent of node {node} is mcp-agent {version}, this CLI is mcp {}",
            env!("CARGO_PKG_VERSION")
        );
    }
    let now = output::now_unix();
    for (node, not_after) in mcp_client::agent_certificates() {
        if (not_after - now).div_euclid(86_400) < EXPIRY_WARNING_DAYS {
            eprintln!(
                "warning: the TLS certificate of the agent of node {node} {}; renew it with \
                 `mcp tls cert renew` and restart the agent",
                crate::commands::tls::expiry_text(not_after, now)
            );
        }
    }
}

/// One row of `mcp node list --json`. Field names are a public interface.
#[derive(Debug, Serialize)]
struct NodeRowJson {
    node: String,
    address: String,
    reachable: bool,
    /// Why the node did not answer; null when it did.
    error: Option<String>,
    agent_version: Option<String>,
    agent_uptime_secs: Option<u64>,
    load_1m: Option<f64>,
    memory_available_bytes: Option<u64>,
    disk_free_bytes: Option<u64>,
    /// "kvm", "tcg", "none" or "probing".
    accelerator: Option<String>,
    kvm_usable: Option<bool>,
    components_running: Option<u32>,
    components_total: Option<u32>,
    /// Whole days until the agent's certificate ends (negative: expired).
    certificate_days_left: Option<i64>,
}

fn row_json(entry: NodeEntry, result: Result<NodeJson, CliError>, now: i64) -> NodeRowJson {
    match result {
        Ok(n) => NodeRowJson {
            node: entry.name,
            address: entry.address,
            reachable: true,
            error: None,
            agent_version: Some(n.agent_version),
            agent_uptime_secs: Some(n.agent_uptime_secs),
            load_1m: n.load_avg.first().copied(),
            memory_available_bytes: Some(n.memory_available_bytes),
            disk_free_bytes: Some(n.disk_free_bytes),
            accelerator: Some(n.accelerator),
            kvm_usable: Some(n.kvm_usable),
            components_running: Some(n.components_by_state.get("running").copied().unwrap_or(0)),
            components_total: Some(n.components_by_state.values().sum()),
            certificate_days_left: n
                .certificate_not_after
                .map(|t| (t - now).div_euclid(86_400)),
        },
        Err(e) => NodeRowJson {
            node: entry.name,
            address: entry.address,
            reachable: false,
            error: Some(e.message),
            agent_version: None,
            agent_uptime_secs: None,
            load_1m: None,
            memory_available_bytes: None,
            disk_free_bytes: None,
            accelerator: None,
            kvm_usable: None,
            components_running: None,
            components_total: None,
            certificate_days_left: None,
        },
    }
}

/// `mcp node list`: one line per configured node.
pub async fn list(ctx: &Context, json: bool, strict: bool) -> Result<ExitCode, CliError> {
    let answers = gather(ctx, None).await?;
    let count = answers.len();
    let failures: Vec<ExitCode> = answers
        .iter()
        .filter_map(|(_, r)| r.as_ref().err().map(|e| e.code))
        .collect();
    let now = output::now_unix();
    let rows: Vec<NodeRowJson> = answers
        .into_iter()
        .map(|(entry, result)| row_json(entry, result, now))
        .collect();
    if json {
        output::print_json(&serde_json::json!({ "nodes": rows }))?;
    } else {
        output::print_text(list_table(&rows).trim_end())?;
    }
    Ok(fan_out_code(&failures, count, strict))
}

fn list_table(rows: &[NodeRowJson]) -> String {
    let mut table = output::table(&[
        "NODE",
        "STATUS",
        "VERSION",
        "UPTIME",
        "LOAD",
        "MEM FREE",
        "DISK FREE",
        "ACCEL",
        "RUNNING",
        "CERT",
    ]);
    for r in rows {
        let dash = || "-".to_string();
        let status = match &r.error {
            None => "ready".to_string(),
            Some(_) => "unreachable".to_string(),
        };
        table.add_row(vec![
            r.node.clone(),
            status,
            r.agent_version.clone().unwrap_or_else(dash),
            r.agent_uptime_secs.map_or_else(dash, secs),
            r.load_1m.map_or_else(dash, |l| format!("{l:.2}")),
            r.memory_available_bytes
                .map_or_else(dash, output::human_bytes),
            r.disk_free_bytes.map_or_else(dash, output::human_bytes),
            r.accelerator.clone().unwrap_or_else(dash),
            match (r.components_running, r.components_total) {
                (Some(running), Some(total)) => format!("{running}/{total}"),
                _ => dash(),
            },
            r.certificate_days_left
                .map_or_else(dash, |d| format!("{d}d")),
        ]);
    }
    let mut text = format!("{table}\n");
    for r in rows {
        if let Some(error) = &r.error {
            text.push_str(&format!("{}: {error}\n", r.node));
        }
    }
    text
}

pub async fn status(
    ctx: &Context,
    only: Option<&str>,
    json: bool,
    strict: bool,
) -> Result<ExitCode, CliError> {
    let answers = gather(ctx, only).await?;
    let count = answers.len();
    let mut nodes = Vec::new();
    let mut errors = Vec::new();
    let mut failures = Vec::new();
    for (entry, result) in answers {
        match result {
            Ok(node) => nodes.push(node),
            Err(e) => {
                eprintln!("mcp: {e}");
                failures.push(e.code);
                errors.push(NodeErrorJson {
                    node: entry.name,
                    error: e.message,
                });
            }
        }
    }
    let code = fan_out_code(&failures, count, strict);
    if json {
        output::print_json(&NodesJson { nodes, errors })?;
    } else {
        let blocks: Vec<String> = nodes.iter().map(human).collect();
        print!("{}", blocks.join("\n"));
    }
    Ok(code)
}

fn secs(s: u64) -> String {
    output::human_duration(i64::try_from(s).unwrap_or(i64::MAX))
}

/// An aligned key/value block for one node.
fn human(n: &NodeJson) -> String {
    let mut rows: Vec<(String, String)> = vec![
        ("node".into(), n.node.clone()),
        ("address".into(), n.address.clone()),
        ("hostname".into(), n.hostname.clone()),
        (
            "agent".into(),
            format!("{} (up {})", n.agent_version, secs(n.agent_uptime_secs)),
        ),
        ("host uptime".into(), secs(n.host_uptime_secs)),
        ("cpus".into(), n.cpu_count.to_string()),
        (
            "load".into(),
            n.load_avg
                .iter()
                .map(|l| format!("{l:.2}"))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        (
            "memory".into(),
            format!(
                "{} available of {}",
                output::human_bytes(n.memory_available_bytes),
                output::human_bytes(n.memory_total_bytes)
            ),
        ),
        (
            "disk".into(),
            format!(
                "{} free of {} ({})",
                output::human_bytes(n.disk_free_bytes),
                output::human_bytes(n.disk_total_bytes),
                n.state_dir
            ),
        ),
    ];
    for t in &n.runtimes {
        let value = if t.available {
            t.version.clone()
        } else {
            format!("unavailable ({})", t.detail)
        };
        rows.push((t.name.clone(), value));
    }
    let kvm = if n.kvm_usable { "usable" } else { "not usable" };
    let kvm = if n.kvm_detail == "probing" {
        "probing".to_string()
    } else {
        format!("{kvm} ({})", n.kvm_detail)
    };
    rows.push(("kvm".into(), kvm));
    rows.push(("accelerator".into(), n.accelerator.clone()));
    rows.push((
        "components".into(),
        n.components_by_state
            .iter()
            .map(|(state, count)| format!("{state} {count}"))
            .collect::<Vec<_>>()
            .join(", "),
    ));
    if let Some(not_after) = n.certificate_not_after {
        rows.push((
            "certificate".into(),
            crate::commands::tls::expiry_text(not_after, output::now_unix()),
        ));
    }
    for w in &n.warnings {
        rows.push(("warning".into(), w.clone()));
    }
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    rows.iter()
        .map(|(key, value)| format!("{:<width$} {value}\n", format!("{key}:")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> NodeJson {
        node_json(
            pb::NodeStatusResponse {
                node: "local".into(),
                agent_version: "0.1.0".into(),
                agent_uptime_secs: 75,
                hostname: "box".into(),
                host_uptime_secs: 7_200,
                cpu_count: 2,
                load_avg: vec![0.12, 0.3, 0.25],
                memory_total_bytes: 24 * 1024 * 1024 * 1024,
                memory_available_bytes: 3_435_973_837,
                state_dir: "/var/lib/mcp".into(),
                disk_total_bytes: 50 * 1024 * 1024 * 1024,
                disk_free_bytes: 12 * 1024 * 1024 * 1024,
                runtimes: vec![
                    pb::RuntimeVersion {
                        name: "podman".into(),
                        version: "4.3.1".into(),
                        available: true,
                        detail: String::new(),
                    },
                    pb::RuntimeVersion {
                        name: "ops".into(),
                        version: String::new(),
                        available: false,
                        detail: "ops not found in PATH".into(),
                    },
                ],
                kvm_usable: false,
                kvm_detail: "qemu: failed to set MSR 0x10a to 0x69".into(),
                accelerator: "tcg".into(),
                components_by_state: [("running".to_string(), 3), ("exited".to_string(), 1)]
                    .into_iter()
                    .collect(),
                warnings: Vec::new(),
                certificate_not_after: 0,
                protocol_version: 1,
            },
            "https://127.0.0.1:7443".into(),
        )
    }

    #[test]
    fn human_block_is_aligned_and_readable() {
        let text = human(&sample());
        let lines: Vec<&str> = text.lines().collect();
        // Every value starts in the same column.
        let column = lines[0].find("local").unwrap();
        for line in &lines {
            let value_at = line[line.find(':').unwrap() + 1..]
                .find(|c: char| c != ' ')
                .unwrap()
                + line.find(':').unwrap()
                + 1;
            assert_eq!(value_at, column, "{line:?} in\n{text}");
        }
        assert!(text.contains("load:        0.12 0.30 0.25\n"), "{text}");
        assert!(
            text.contains("memory:      3.2 GiB available of 24.0 GiB\n"),
            "{text}"
        );
        assert!(
            text.contains("disk:        12.0 GiB free of 50.0 GiB (/var/lib/mcp)\n"),
            "{text}"
        );
        assert!(text.contains("podman:      4.3.1\n"), "{text}");
        assert!(
            text.contains("ops:         unavailable (ops not found in PATH)\n"),
            "{text}"
        );
        assert!(
            text.contains("kvm:         not usable (qemu: failed to set MSR 0x10a to 0x69)\n"),
            "{text}"
        );
        assert!(
            text.contains("components:  exited 1, running 3\n"),
            "{text}"
        );
        assert!(text.contains("agent:       0.1.0 (up 1m15s)\n"), "{text}");
    }

    #[test]
    fn json_field_names_are_stable() {
        let value = serde_json::to_value(sample()).unwrap_or_default();
        for field in [
            "node",
            "address",
            "agent_version",
            "agent_uptime_secs",
            "hostname",
            "host_uptime_secs",
            "cpu_count",
            "load_avg",
            "memory_total_bytes",
            "memory_available_bytes",
            "state_dir",
            "disk_total_bytes",
            "disk_free_bytes",
            "runtimes",
            "kvm_usable",
            "kvm_detail",
            "accelerator",
            "components_by_state",
            "warnings",
            "certificate_not_after",
            "protocol_version",
        ] {
            assert!(value.get(field).is_some(), "{field} missing from {value}");
        }
        assert_eq!(value["components_by_state"]["running"], 3);
        assert_eq!(value["runtimes"][1]["available"], false);
    }
}
