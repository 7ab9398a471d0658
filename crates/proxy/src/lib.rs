//! The node proxy: public ports forwarded (l4 TCP/SNI or l7 HTTP) to components' host ports,
//! programmed by the agent over a local control socket, its table persisted across restarts.

mod activity;
pub mod args;
pub mod control;
mod hosts;
mod l4;
mod l7;
mod listeners;
mod run;
mod sni;
mod state;
pub mod store;
pub mod table;
mod tls;
mod workers;

pub use listeners::PortError;
pub use run::{Error, Options, SOCKET_FILE, run, serve, socket_path};
pub use state::ApplyError;
pub use tls::TlsError;

/// The proxy's version, as `ping` reports it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// An error and its sources, `a: b: c`, for logs and replies.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
