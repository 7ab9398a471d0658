//! What an operator certificate lets its holder do on an agent.

use std::fmt;
use std::str::FromStr;

/// Operator roles, ordered: each includes everything the ones before it may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OperatorRole {
    /// Read-only: status, ps, logs, events, node status, plan, history.
    Viewer,
    /// A viewer who also deploys, stops, starts, restarts, rolls back and sets secrets.
    Deployer,
    /// Everything, undeploy and node administration included.
    Admin,
}

/// Prefix of the subject organizational unit that carries the role: an OU another CA puts
/// in its certificates for its own purposes never reads as an mcp role.
const OU_PREFIX: &str = "mcp:";

impl OperatorRole {
    pub const ALL: [OperatorRole; 3] = [Self::Viewer, Self::Deployer, Self::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Deployer => "deployer",
            Self::Admin => "admin",
        }
    }

    /// The subject OU value that carries this role.
    pub fn organizational_unit(self) -> String {
        format!("{OU_PREFIX}{}", self.as_str())
    }

    /// The role a subject OU value names, if it is one of ours.
    pub fn from_organizational_unit(ou: &str) -> Option<Self> {
        ou.strip_prefix(OU_PREFIX)?.parse().ok()
    }
}

impl fmt::Display for OperatorRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown role {0:?}: expected admin, deployer or viewer")]
pub struct UnknownRole(pub String);

impl FromStr for OperatorRole {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_round_trip_through_their_ou() {
        assert!(OperatorRole::Viewer < OperatorRole::Deployer);
        assert!(OperatorRole::Deployer < OperatorRole::Admin);
        for role in OperatorRole::ALL {
            assert_eq!(
                OperatorRole::from_organizational_unit(&role.organizational_unit()),
                Some(role)
            );
        }
        assert_eq!(OperatorRole::from_organizational_unit("admin"), None);
        assert_eq!(OperatorRole::from_organizational_unit("mcp:root"), None);
    }
}
