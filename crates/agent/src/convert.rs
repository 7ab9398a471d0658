//! Status views and node reports to the wire, by hand, so core types never see prost.

use mcp_proto::v1 as pb;

use crate::deployer::{ComponentView, PlanView, ServiceView, StrayView, VersionView};
use crate::node::NodeReport;

pub fn outcome_to_wire(outcome: crate::deployer::DeployOutcome) -> pb::DeployResponse {
    pb::DeployResponse {
        changed: outcome.changed,
        replaced: outcome.replaced,
        status: Some(view_to_wire(outcome.status)),
    }
}

pub fn plan_to_wire(p: PlanView) -> pb::PlanResponse {
    pb::PlanResponse {
        changed: p.changed,
        components: p
            .components
            .into_iter()
            .map(|c| pb::ComponentPlan {
                name: c.name,
                action: c.action.to_string(),
                fields: c.fields,
                side_by_side: c.side_by_side,
            })
            .collect(),
    }
}

pub fn version_to_wire(v: VersionView) -> pb::HistoryEntry {
    pb::HistoryEntry {
        version: v.version,
        at: v.at,
        actor: v.actor,
        images: v.images,
        spec_hash: v.spec_hash,
        current: v.current,
        detail: v.detail.unwrap_or_default(),
    }
}

pub fn view_to_wire(v: ServiceView) -> pb::ServiceStatus {
    pb::ServiceStatus {
        name: v.name,
        node: v.node,
        desired_state: v.desired_state.to_string(),
        spec_hash: v.spec_hash,
        updated_at: v.updated_at,
        components: v
            .components
            .into_iter()
            .map(component_view_to_wire)
            .collect(),
    }
}

fn component_view_to_wire(c: ComponentView) -> pb::ComponentStatus {
    pb::ComponentStatus {
        name: c.name,
        instance: c.instance,
        image: c.image,
        runtime: c.runtime.to_string(),
        desired_state: c.desired_state.to_string(),
        state: c.state.as_str().to_string(),
        started_at: c.started_at.unwrap_or(0),
        exit_code: c.exit_code.unwrap_or(0),
        ports: c
            .ports
            .into_iter()
            .map(|p| pb::PortBinding {
                host_ip: p.host_ip,
                host_port: u32::from(p.host_port),
                container_port: u32::from(p.container_port),
                protocol: p.protocol,
            })
            .collect(),
        id: c.id,
        routes: c
            .routes
            .into_iter()
            .map(|r| pb::RouteStatus {
                name: r.name.unwrap_or_default(),
                port: u32::from(r.port),
                mode: r.mode,
                hostname: r.hostname.unwrap_or_default(),
                host_port: r.host_port.map_or(0, u32::from),
                env: r.env,
            })
            .collect(),
        restart_policy: c.restart_policy.to_string(),
        restart_count: c.restart_count,
        last_exit_code: c.last_exit_code,
        last_exit_at: c.last_exit_at.unwrap_or(0),
        health: c
            .health
            .map_or_else(String::new, |h| h.as_str().to_string()),
        health_detail: c.health_detail.unwrap_or_default(),
        drift: c.drift.unwrap_or_default(),
        drift_detail: c.drift_detail.unwrap_or_default(),
        backoff_until_ms: c.backoff_until.unwrap_or(0),
        accelerator: c.accelerator.unwrap_or_default(),
    }
}

pub fn stray_to_wire(s: StrayView) -> pb::StrayInstance {
    pb::StrayInstance {
        instance: s.instance,
        service: s.service,
        component: s.component,
        state: s.state.as_str().to_string(),
        image: s.image,
        id: s.id,
    }
}

pub fn secret_to_wire(s: crate::deployer::SecretView) -> pb::SecretInfo {
    pb::SecretInfo {
        service: s.service,
        name: s.name,
        version: s.version,
        set_at: s.set_at,
        used_by: s.used_by,
    }
}

pub fn event_to_wire(e: registry::EventRecord) -> pb::Event {
    pb::Event {
        id: e.id,
        service: e.service,
        action: e.action,
        actor: e.actor,
        at: e.at,
        detail: e.detail.unwrap_or_default(),
    }
}

pub fn step_to_wire(step: crate::progress::Step) -> pb::DeployStep {
    pb::DeployStep {
        phase: step.phase.to_string(),
        component: step.component,
        message: step.message,
        finished: step.finished,
        elapsed_ms: step.elapsed_ms,
    }
}

pub fn node_to_wire(r: NodeReport) -> pb::NodeStatusResponse {
    pb::NodeStatusResponse {
        node: r.node,
        agent_version: r.agent_version,
        agent_uptime_secs: r.agent_uptime_secs,
        hostname: r.hostname,
        host_uptime_secs: r.host.uptime_secs,
        cpu_count: r.host.cpu_count,
        load_avg: r.host.load_avg.to_vec(),
        memory_total_bytes: r.host.memory_total_bytes,
        memory_available_bytes: r.host.memory_available_bytes,
        state_dir: r.state_dir.display().to_string(),
        disk_total_bytes: r.host.disk_total_bytes,
        disk_free_bytes: r.host.disk_free_bytes,
        runtimes: r
            .runtimes
            .into_iter()
            .map(|t| pb::RuntimeVersion {
                name: t.name,
                version: t.version,
                available: t.available,
                detail: t.detail,
            })
            .collect(),
        kvm_usable: r.accel.kvm_usable,
        kvm_detail: r.accel.detail,
        accelerator: r.accel.accelerator,
        components_by_state: r.components_by_state.into_iter().collect(),
        warnings: r.warnings,
        certificate_not_after: r.certificate_not_after.unwrap_or(0),
        protocol_version: mcp_proto::PROTOCOL_VERSION,
    }
}
