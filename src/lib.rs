//! Corridor: a programmable API gateway for banks, on pingora.
//!
//! Config files ([`config`]) are compiled into a [`runtime::Runtime`], held in an `ArcSwap`;
//! each request takes one snapshot and the pingora phases ([`proxy`]) drive its route's filter
//! chain. [`server`] assembles the process; `corridor check` and `corridor run` share one
//! compile step.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod access_log;
pub mod admin;
pub mod cli;
pub mod config;
pub mod iso8583;
pub mod metrics;
pub mod proxy;
pub mod reload;
pub mod runtime;
pub mod server;
pub mod tls;
pub mod upstream;
pub mod watch;
