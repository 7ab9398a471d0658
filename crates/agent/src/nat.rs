//! Host ports that the kernel's NAT table redirects (a DNAT or REDIRECT rule on the port).
//!
//! A connection to such a port goes where the rule points, whatever listens on it, and a
//! bind check cannot see the rule: the port allocator reads the table so that it never hands
//! such a port to a route. Rules like that are left behind by podman killed in the middle of
//! a container's network setup (netavark's DNAT rule outlives the container it was made
//! for), and made by other container engines or by hand.
//!
//! Read with `iptables-save -t nat` (`ip6tables-save` for an IPv6 bind address), the tables
//! netavark's iptables driver and Docker write. Rules in native nftables tables (netavark's
//! nftables driver) are not read.

use std::ops::RangeInclusive;
use std::process::Stdio;
use std::time::Duration;

/// Reading the table takes a few milliseconds; a hung tool must not hold up a deploy.
const READ_TIMEOUT: Duration = Duration::from_secs(2);

/// The destination ports some NAT rule redirects.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ForwardedPorts(Vec<RangeInclusive<u16>>);

impl ForwardedPorts {
    pub fn contains(&self, port: u16) -> bool {
        self.0.iter().any(|range| range.contains(&port))
    }

    /// How many ports of `range` some rule redirects.
    pub fn count_in(&self, range: &RangeInclusive<u16>) -> usize {
        range.clone().filter(|&port| self.contains(port)).count()
    }

    /// The ports named by the DNAT and REDIRECT rules of `iptables-save -t nat` output.
    /// Negated port matches (`! --dport 22`) name no port.
    pub fn parse(rules: &str) -> Self {
        let mut ports = Vec::new();
        for line in rules.lines().filter(|l| l.starts_with("-A ")) {
            let words = split_words(line);
            let target = words
                .windows(2)
                .find(|pair| pair[0] == "-j" || pair[0] == "--jump")
                .map(|pair| pair[1].as_str());
            if !matches!(target, Some("DNAT" | "REDIRECT")) {
                continue;
            }
            for (i, word) in words.iter().enumerate() {
                let negated = i > 0 && words[i - 1] == "!";
                let Some(value) = words.get(i + 1).filter(|_| !negated) else {
                    continue;
                };
                match word.as_str() {
                    "--dport" | "--destination-port" => ports.extend(port_range(value)),
                    "--dports" | "--destination-ports" => {
                        ports.extend(value.split(',').filter_map(port_range));
                    }
                    _ => {}
                }
            }
        }
        Self(ports)
    }
}

/// "80" or "1000:2000" (either end may be left out).
fn port_range(text: &str) -> Option<RangeInclusive<u16>> {
    match text.split_once(':') {
        None => text.parse().ok().map(|port| port..=port),
        Some((low, high)) => {
            let low = if low.is_empty() { 0 } else { low.parse().ok()? };
            let high = if high.is_empty() {
                u16::MAX
            } else {
                high.parse().ok()?
            };
            Some(low..=high)
        }
    }
}

/// A rule's words; a double-quoted word (a comment) is one word, so text in it is never
/// taken for an option.
fn split_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => quoted = !quoted,
            '\\' if quoted => word.extend(chars.next()),
            c if c.is_whitespace() && !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// Reads the NAT table; the error says why it could not be read (no iptables, not root).
pub async fn read(ipv6: bool) -> Result<ForwardedPorts, String> {
    let program = if ipv6 {
        "ip6tables-save"
    } else {
        "iptables-save"
    };
    let mut command = tokio::process::Command::new(program);
    command
        .args(["-t", "nat"])
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(READ_TIMEOUT, command.output())
        .await
        .map_err(|_| format!("{program} -t nat gave no answer within {READ_TIMEOUT:?}"))?
        .map_err(|e| format!("running {program}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{program} -t nat failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(ForwardedPorts::parse(&String::from_utf8_lossy(
        &output.stdout,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirected_ports_are_found_and_other_rules_ignored() {
        let table = r#"# Generated by iptables-save
*nat
:PREROUTING ACCEPT [0:0]
-A OUTPUT -m addrtype --dst-type LOCAL -j NETAVARK-HOSTPORT-DNAT
-A NETAVARK-DN-1D8721804F16F -s 127.0.0.1/32 -d 127.0.0.1/32 -p tcp -m tcp --dport 31005 -j NETAVARK-HOSTPORT-SETMARK
-A NETAVARK-DN-1D8721804F16F -d 127.0.0.1/32 -p tcp -m tcp --dport 20812 -j DNAT --to-destination 10.88.4.24:20812
-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80
-A PROXY -p tcp -m multiport --dports 443,3000:3002 -j REDIRECT --to-ports 3128
-A EDGE -p tcp -m tcp ! --dport 22 -j DNAT --to-destination 10.0.0.1
-A NOTE -p tcp -m comment --comment "moved: --dport 9999 -j DNAT" -m tcp --dport 7000 -j RETURN
COMMIT
"#;
        let forwarded = ForwardedPorts::parse(table);
        for port in [20812, 8080, 443, 3000, 3001, 3002] {
            assert!(forwarded.contains(port), "{port}");
        }
        for port in [31005, 22, 9999, 7000, 3003, 80] {
            assert!(!forwarded.contains(port), "{port}");
        }
        assert_eq!(forwarded.count_in(&(3000..=3010)), 3);
    }

    #[test]
    fn open_ended_ranges() {
        assert_eq!(port_range(":100"), Some(0..=100));
        assert_eq!(port_range("60000:"), Some(60000..=u16::MAX));
        assert_eq!(port_range("x"), None);
    }
}
