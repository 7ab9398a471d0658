//! The control protocol between agent and proxy: one JSON object per line each way over the
//! Unix socket `<state dir>/control.sock`; the message types, the server and the client.

mod client;
pub(crate) mod server;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::table::Table;

pub use client::{Client, ClientError, Status};

/// A request line, tagged by `op`. Unknown fields are refused (serde ignores them only beside
/// the field-less `ping` and `table`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Liveness, version and route count.
    Ping,
    /// Replace the whole routing table.
    Apply { table: Table },
    /// The table being served.
    Table,
    /// In-flight work per backend.
    Active { backends: Vec<SocketAddr> },
}

/// A response line. `ok` says whether the request was carried out; `error` says why not; the
/// other fields are present for the requests that produce them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routes: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<Table>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<BTreeMap<SocketAddr, u64>>,
}

impl Response {
    pub(crate) fn ok() -> Self {
        Self {
            ok: true,
            ..Self::default()
        }
    }

    pub(crate) fn error(message: impl Into<String>) -> Self {
        Self {
            ok: false,
            error: Some(message.into()),
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_have_the_documented_shape() {
        let ping: Request = serde_json::from_str(r#"{"op":"ping"}"#).expect("ping");
        assert_eq!(ping, Request::Ping);
        let active: Request =
            serde_json::from_str(r#"{"op":"active","backends":["127.0.0.1:23817"]}"#)
                .expect("active");
        assert_eq!(
            active,
            Request::Active {
                backends: vec!["127.0.0.1:23817".parse().expect("addr")]
            }
        );
        let apply: Request =
            serde_json::from_str(r#"{"op":"apply","table":{"routes":[]}}"#).expect("apply");
        assert_eq!(
            apply,
            Request::Apply {
                table: Table::default()
            }
        );
        for bad in [
            r#"{"op":"nope"}"#,
            r#"{"op":"apply"}"#,
            r#"{"op":"active","backend":[]}"#,
            r#"{"table":{"routes":[]}}"#,
            r#"[]"#,
        ] {
            assert!(serde_json::from_str::<Request>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn responses_have_the_documented_shape() {
        let mut active = BTreeMap::new();
        active.insert("127.0.0.1:23817".parse().expect("addr"), 2);
        let response = Response {
            active: Some(active),
            ..Response::ok()
        };
        assert_eq!(
            serde_json::to_string(&response).expect("json"),
            r#"{"ok":true,"active":{"127.0.0.1:23817":2}}"#
        );
        assert_eq!(
            serde_json::to_string(&Response::error("port 1: x")).expect("json"),
            r#"{"ok":false,"error":"port 1: x"}"#
        );
        let back: Response =
            serde_json::from_str(r#"{"ok":true,"active":{"127.0.0.1:23817":2}}"#).expect("parse");
        assert_eq!(back, response);
    }
}
