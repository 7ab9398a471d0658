//! End-to-end tests of `mcp-proxy`: the real binary programmed through `proxy::control::Client`,
//! real sockets on 127.0.0.1, real TLS, small in-test backends.

mod apply;
mod control;
mod l4;
mod l7;
mod persistence;
mod sni;
mod support;
