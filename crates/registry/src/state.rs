//! Desired state of a service or component, as stored in the `desired_state` columns.

use std::fmt;
use std::str::FromStr;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use serde::{Deserialize, Serialize};

/// What the operator wants a workload to be doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DesiredState {
    Running,
    Stopped,
}

impl DesiredState {
    /// The stored and displayed spelling; matches the schema's CHECK constraint.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Stopped => "stopped",
        }
    }

    /// `active = false` in a service file means "record it, but keep it stopped".
    pub fn from_active(active: bool) -> Self {
        if active { Self::Running } else { Self::Stopped }
    }
}

impl fmt::Display for DesiredState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is neither "running" nor "stopped".
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("invalid desired state {0:?}: expected \"running\" or \"stopped\"")]
pub struct ParseDesiredStateError(pub String);

impl FromStr for DesiredState {
    type Err = ParseDesiredStateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "running" => Ok(Self::Running),
            "stopped" => Ok(Self::Stopped),
            other => Err(ParseDesiredStateError(other.to_owned())),
        }
    }
}

impl ToSql for DesiredState {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for DesiredState {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        value
            .as_str()?
            .parse()
            .map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn round_trips_through_str_and_serde() {
        for s in [DesiredState::Running, DesiredState::Stopped] {
            assert_eq!(s.as_str().parse::<DesiredState>().unwrap(), s);
            assert_eq!(s.to_string(), s.as_str());
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
            assert_eq!(serde_json::from_str::<DesiredState>(&json).unwrap(), s);
        }
    }

    #[test]
    fn rejects_unknown_spelling() {
        let err = "Running".parse::<DesiredState>().unwrap_err();
        assert_eq!(err, ParseDesiredStateError("Running".into()));
    }

    #[test]
    fn active_maps_to_state() {
        assert_eq!(DesiredState::from_active(true), DesiredState::Running);
        assert_eq!(DesiredState::from_active(false), DesiredState::Stopped);
    }
}
