//! Validated names for services and components, which become file paths, container names and
//! registry keys, so they are checked once at construction and trusted everywhere after.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest name accepted: a DNS label, so a name is also usable as a hostname.
pub const MAX_NAME_LEN: usize = 63;

/// A name that failed the naming rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} \"{value}\": {reason}")]
pub struct NameError {
    /// What was being named, e.g. "service name".
    pub kind: &'static str,
    /// The rejected value.
    pub value: String,
    /// Why it was rejected.
    pub reason: String,
}

/// Checks the shared naming rule: 1..=63 chars of `[a-z0-9-]`, starting and ending with `[a-z0-9]`.
pub(crate) fn check_name(kind: &'static str, value: &str) -> Result<(), NameError> {
    let fail = |reason: &str| {
        Err(NameError {
            kind,
            value: value.to_owned(),
            reason: reason.to_owned(),
        })
    };
    if value.is_empty() || value.len() > MAX_NAME_LEN {
        return fail("must be 1 to 63 characters long");
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return fail("must match [a-z0-9-] (lowercase letters, digits, '-')");
    }
    if value.starts_with('-') || value.ends_with('-') {
        return fail("must start and end with a lowercase letter or digit");
    }
    Ok(())
}

macro_rules! validated_name {
    ($(#[$doc:meta])* $ty:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $ty(String);

        impl $ty {
            /// Validates and wraps a name.
            pub fn new(value: impl Into<String>) -> Result<Self, NameError> {
                let value = value.into();
                check_name($kind, &value)?;
                Ok(Self(value))
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $ty {
            type Error = NameError;
            fn try_from(value: String) -> Result<Self, NameError> {
                Self::new(value)
            }
        }

        impl From<$ty> for String {
            fn from(name: $ty) -> String {
                name.0
            }
        }
    };
}

validated_name!(
    /// A service's name; also a directory name and the prefix of its container names.
    ServiceName,
    "service name"
);
validated_name!(
    /// A component's name, unique within its service.
    ComponentName,
    "component name"
);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_names() {
        for ok in ["a", "hello", "web-1", "0", &"a".repeat(63)] {
            assert_eq!(ServiceName::new(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn rejects_invalid_names_with_reason() {
        for bad in ["", "Foo", "-a", "a-", "a_b", "a.b", "a b", &"a".repeat(64)] {
            let err = ComponentName::new(bad).unwrap_err();
            assert_eq!(err.kind, "component name");
            assert!(
                err.to_string().starts_with("invalid component name \""),
                "{err}"
            );
        }
    }

    #[test]
    fn serde_round_trips_as_plain_string_and_validates() {
        let name = ServiceName::new("hello").unwrap();
        let json = serde_json::to_string(&name).unwrap();
        assert_eq!(json, "\"hello\"");
        assert_eq!(serde_json::from_str::<ServiceName>(&json).unwrap(), name);
        let err = serde_json::from_str::<ServiceName>("\"Hello\"").unwrap_err();
        assert!(err.to_string().contains("invalid service name"), "{err}");
    }
}
