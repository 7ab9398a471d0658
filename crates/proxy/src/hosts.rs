//! Case-insensitive hostname lookup with a default entry: SNI and Host routing, and TLS certs.

use std::collections::HashMap;

/// Values by lowercase hostname, plus the value for routes without hostname.
#[derive(Debug)]
pub(crate) struct HostMap<T> {
    exact: HashMap<Box<str>, T>,
    default: Option<T>,
}

impl<T> Default for HostMap<T> {
    fn default() -> Self {
        Self {
            exact: HashMap::new(),
            default: None,
        }
    }
}

impl<T> HostMap<T> {
    /// Sets the value for `hostname` (`None`: the default). The table check rules out duplicates.
    pub(crate) fn insert(&mut self, hostname: Option<&str>, value: T) {
        match hostname {
            Some(name) => {
                self.exact
                    .insert(name.to_ascii_lowercase().into_boxed_str(), value);
            }
            None => self.default = Some(value),
        }
    }

    /// Whether any entry has a hostname (for l4: whether the SNI must be read).
    pub(crate) fn has_hostnames(&self) -> bool {
        !self.exact.is_empty()
    }

    /// The entry without hostname.
    pub(crate) fn default_entry(&self) -> Option<&T> {
        self.default.as_ref()
    }

    /// The exact match for `host` (case-insensitive, a trailing dot ignored), else the default.
    pub(crate) fn lookup(&self, host: Option<&str>) -> Option<&T> {
        host.and_then(|host| self.exact_match(host))
            .or(self.default.as_ref())
    }

    fn exact_match(&self, host: &str) -> Option<&T> {
        if self.exact.is_empty() {
            return None;
        }
        let host = host.strip_suffix('.').unwrap_or(host);
        if host.bytes().any(|b| b.is_ascii_uppercase()) {
            self.exact.get(host.to_ascii_lowercase().as_str())
        } else {
            self.exact.get(host)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_match_is_case_insensitive_and_falls_back_to_default() {
        let mut map = HostMap::default();
        map.insert(Some("A.Example"), 1);
        map.insert(None, 0);
        assert_eq!(map.lookup(Some("a.example")), Some(&1));
        assert_eq!(map.lookup(Some("A.EXAMPLE")), Some(&1));
        assert_eq!(map.lookup(Some("a.example.")), Some(&1));
        assert_eq!(map.lookup(Some("b.example")), Some(&0));
        assert_eq!(map.lookup(None), Some(&0));
        assert!(map.has_hostnames());
    }

    #[test]
    fn without_default_unknown_hosts_miss() {
        let mut map = HostMap::default();
        map.insert(Some("a.example"), 1);
        assert_eq!(map.lookup(Some("b.example")), None);
        assert_eq!(map.lookup(None), None);
        assert_eq!(map.default_entry(), None);
    }
}
