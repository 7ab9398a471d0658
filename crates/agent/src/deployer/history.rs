//! Versions and what-ifs: the numbered history of a service's deployed specs, rollback to
//! one of them (through the ordinary deploy path), and the plan of a deploy, computed
//! against what runs without changing anything.

use servicedef::{Component, Service};

use super::{DeployOutcome, Deployer, plan};
use crate::AgentError;

/// One deployed spec of a service.
#[derive(Debug, Clone)]
pub struct VersionView {
    /// 1 for the first deploy, counting every deploy that changed the node.
    pub version: u32,
    pub at: i64,
    pub actor: String,
    /// `component=image`, in definition order.
    pub images: Vec<String>,
    pub spec_hash: String,
    /// The spec the registry holds now.
    pub current: bool,
    pub detail: Option<String>,
}

/// What a deploy would do to one component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentPlanView {
    pub name: String,
    /// "create" | "replace" | "remove" | "start" | "stop" | "unchanged"
    pub action: &'static str,
    /// Fields that differ from the deployed spec (for "replace").
    pub fields: Vec<String>,
    /// A replace that starts the new instance beside the old one (no downtime).
    pub side_by_side: bool,
}

#[derive(Debug, Clone)]
pub struct PlanView {
    pub changed: bool,
    pub components: Vec<ComponentPlanView>,
}

impl Deployer {
    /// Every version of `service`, newest first.
    pub fn history(&self, service: &str) -> Result<Vec<VersionView>, AgentError> {
        let deploys = self.read(|r| r.deploys(service))?;
        if deploys.is_empty() {
            return Err(AgentError::ServiceNotFound(service.to_string()));
        }
        let current = self.read(|r| r.service(service))?.map(|r| r.spec_hash);
        let last = deploys.len();
        let mut versions: Vec<VersionView> = deploys
            .into_iter()
            .enumerate()
            .filter_map(|(i, event)| {
                let spec = event.spec?;
                let hash = spec.spec_hash();
                Some(VersionView {
                    version: u32::try_from(i + 1).unwrap_or(u32::MAX),
                    at: event.at,
                    actor: event.actor,
                    images: spec
                        .components
                        .iter()
                        .map(|c| format!("{}={}", c.name, c.image))
                        .collect(),
                    // The newest deploy is what the registry holds, unless it was undeployed.
                    current: i + 1 == last && current.as_deref() == Some(hash.as_str()),
                    spec_hash: hash,
                    detail: event.detail,
                })
            })
            .collect();
        versions.reverse();
        Ok(versions)
    }

    /// Redeploys version `version` of `service` (0: the one before the current), through the
    /// same side-by-side path as a deploy; it becomes a new version.
    pub async fn rollback(
        &self,
        service: &str,
        version: u32,
        actor: &str,
    ) -> Result<DeployOutcome, AgentError> {
        let deploys = self.read(|r| r.deploys(service))?;
        if deploys.is_empty() {
            return Err(AgentError::ServiceNotFound(service.to_string()));
        }
        let wanted = if version == 0 {
            u32::try_from(deploys.len().saturating_sub(1)).unwrap_or(0)
        } else {
            version
        };
        let not_found = || AgentError::VersionNotFound {
            service: service.to_string(),
            version: wanted,
            known: deploys.len(),
        };
        let index = usize::try_from(wanted)
            .ok()
            .and_then(|v| v.checked_sub(1))
            .ok_or_else(not_found)?;
        let spec = deploys
            .get(index)
            .ok_or_else(not_found)?
            .spec
            .clone()
            .ok_or_else(|| AgentError::VersionPruned {
                service: service.to_string(),
                version: wanted,
                keep: self.keep_versions,
            })?;
        self.deploy_as(spec, actor, Some(&format!("rollback to {wanted}")))
            .await
    }

    /// What deploying `spec` would do, component by component. Reads the registry and one
    /// listing; changes nothing.
    pub async fn plan_deploy(&self, spec: &Service) -> Result<PlanView, AgentError> {
        self.admit(spec)?;
        let resolved = self.resolve_secrets(spec.clone())?;
        let spec = &resolved;
        let name = spec.name.as_str();
        self.check_public_claims(spec)?;
        let previous = self.read(|r| r.service(name))?;
        let instances = self.service_instances(name).await?;
        let plan = plan::plan(spec, &instances);
        let old = |component: &str| previous.as_ref().and_then(|p| p.spec.component(component));
        let mut components = Vec::new();
        for component in &spec.components {
            let cname = component.name.as_str();
            let has = |list: &[plan::InstanceRef]| list.iter().any(|i| i.component == cname);
            let created = plan.create.iter().any(|c| c.name == component.name);
            let replaced = has(&plan.retire) || has(&plan.replace_old);
            let (action, fields) = if created && (replaced || old(cname).is_some()) {
                ("replace", changed_fields(old(cname), component))
            } else if created {
                ("create", Vec::new())
            } else if has(&plan.start) {
                ("start", Vec::new())
            } else if has(&plan.stop) || has(&plan.replace_old) {
                // An inactive spec removes a changed instance without creating its successor.
                ("stop", Vec::new())
            } else {
                ("unchanged", Vec::new())
            };
            components.push(ComponentPlanView {
                name: cname.to_string(),
                action,
                fields,
                side_by_side: action == "replace" && plan.side_by_side(cname),
            });
        }
        let mut removed: Vec<String> = plan
            .remove
            .iter()
            .map(|i| i.component.clone())
            .filter(|c| spec.component(c).is_none())
            .collect();
        if let Some(previous) = &previous {
            removed.extend(
                previous
                    .spec
                    .components
                    .iter()
                    .filter(|c| spec.component(c.name.as_str()).is_none())
                    .map(|c| c.name.to_string()),
            );
        }
        removed.sort();
        removed.dedup();
        for name in removed {
            components.push(ComponentPlanView {
                name,
                action: "remove",
                fields: Vec::new(),
                side_by_side: false,
            });
        }
        let same_spec = previous
            .as_ref()
            .is_some_and(|p| p.spec_hash == spec.spec_hash() && p.spec.active == spec.active);
        let changed = !same_spec || components.iter().any(|c| c.action != "unchanged");
        Ok(PlanView {
            changed,
            components,
        })
    }
}

/// The top-level fields of a component that differ between two specs (all of the new
/// one's set fields when there is no old one).
fn changed_fields(old: Option<&Component>, new: &Component) -> Vec<String> {
    let as_map = |c: &Component| match serde_json::to_value(c) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    let new_map = as_map(new);
    let Some(old) = old else {
        return Vec::new();
    };
    let old_map = as_map(old);
    let mut keys: Vec<&String> = new_map.keys().chain(old_map.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| new_map.get(*k) != old_map.get(*k))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn changed_fields_name_what_differs() {
        let spec = servicedef::parse_str(
            "t.toml",
            "name = \"s\"\nnode = \"n\"\n[[components]]\nname = \"web\"\nimage = \"i:1\"\n",
        )
        .unwrap();
        let old = spec.components[0].clone();
        let mut new = old.clone();
        new.image = servicedef::Image::parse("i:2").unwrap();
        new.env.push("A=b".into());
        assert_eq!(changed_fields(Some(&old), &new), ["env", "image"]);
        assert!(changed_fields(Some(&old), &old).is_empty());
    }
}
