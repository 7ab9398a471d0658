//! Reading back what a certificate says: who, which role, which serial, until when.

use std::net::IpAddr;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::OperatorRole;

/// What mcp needs to know of an issued certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub common_name: String,
    /// The operator role (subject OU `mcp:<role>`); None for node certificates and for
    /// operator certificates issued before roles existed.
    pub role: Option<OperatorRole>,
    /// Lowercase hex, no separators, no leading zeros (see `normalize_serial`).
    pub serial: String,
    pub not_before_unix: i64,
    pub not_after_unix: i64,
    /// DNS names and IP addresses of a node certificate.
    pub sans: Vec<String>,
    /// Made for clients (extended key usage clientAuth): an operator certificate.
    pub client: bool,
    /// A CA certificate (basic constraints cA).
    pub ca: bool,
    /// DER of the issuer's distinguished name, to check who signed it.
    pub issuer_raw: Vec<u8>,
    pub subject_raw: Vec<u8>,
}

impl CertInfo {
    /// Whole days from `now_unix` until expiry; negative once expired.
    pub fn days_left(&self, now_unix: i64) -> i64 {
        (self.not_after_unix - now_unix).div_euclid(86_400)
    }
}

/// A serial number as mcp prints and compares it: `0A:1b:…`, `0x0a1b` and `a1b` are equal.
pub fn normalize_serial(text: &str) -> Option<String> {
    let text = text.trim();
    let text = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    let digits: String = text.chars().filter(|c| *c != ':').collect();
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let trimmed = digits.trim_start_matches('0').to_ascii_lowercase();
    Some(if trimmed.is_empty() {
        "0".into()
    } else {
        trimmed
    })
}

/// Reads a DER certificate; None when it is not one.
pub fn inspect_der(der: &[u8]) -> Option<CertInfo> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let subject = cert.subject();
    let common_name = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default()
        .to_string();
    let role = subject
        .iter_organizational_unit()
        .filter_map(|ou| ou.as_str().ok())
        .find_map(OperatorRole::from_organizational_unit);
    let hex: String = cert
        .raw_serial()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let sans = match cert.subject_alternative_name() {
        Ok(Some(ext)) => ext
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                GeneralName::DNSName(dns) => Some(dns.to_string()),
                GeneralName::IPAddress(bytes) => ip_text(bytes),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let client = matches!(cert.extended_key_usage(), Ok(Some(eku)) if eku.value.client_auth);
    let ca = matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
    Some(CertInfo {
        common_name,
        role,
        serial: normalize_serial(&hex)?,
        not_before_unix: cert.validity().not_before.timestamp(),
        not_after_unix: cert.validity().not_after.timestamp(),
        sans,
        client,
        ca,
        issuer_raw: cert.issuer().as_raw().to_vec(),
        subject_raw: subject.as_raw().to_vec(),
    })
}

/// Reads the first certificate of a PEM text; None when there is none.
pub fn inspect_pem(pem: &str) -> Option<CertInfo> {
    inspect_der(&certificate_der(pem)?)
}

/// The DER of the first PEM block of `pem`.
pub fn certificate_der(pem: &str) -> Option<Vec<u8>> {
    let (_, parsed) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
    Some(parsed.contents)
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    let ip = match bytes.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?),
        16 => IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?),
        _ => return None,
    };
    Some(ip.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_compare_whatever_their_spelling() {
        assert_eq!(normalize_serial("0A:1b:02").as_deref(), Some("a1b02"));
        assert_eq!(normalize_serial("0x00a1b02").as_deref(), Some("a1b02"));
        assert_eq!(normalize_serial("A1B02").as_deref(), Some("a1b02"));
        assert_eq!(normalize_serial("00").as_deref(), Some("0"));
        assert_eq!(normalize_serial("xyz"), None);
        assert_eq!(normalize_serial(""), None);
    }
}
