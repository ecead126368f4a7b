//! `corridor-filters`: the filter API of the Corridor gateway and its built-in filters.
//!
//! A filter is a config struct (serde, unknown keys refused) plus what it builds: an
//! `Arc<dyn Filter>`. The gateway builds a [`Chain`] per named chain in its config through
//! [`FilterConfig::build`], then drives it from its proxy phases: request phases run the chain
//! in order, response phases in reverse. This crate knows nothing of pingora: messages are seen
//! through the [`RequestHead`] and [`ResponseHead`] traits, which the gateway implements over
//! its own types.
//!
//! Adding a filter is one file with its config and filter, plus one line in `registry.rs`.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

mod chain;
mod context;
mod filter;
mod message;
mod problem;
mod redis_client;
mod registry;

pub mod api_key;
pub mod body_limit;
pub mod client_cert_headers;
pub mod cors;
pub mod headers;
pub mod json_fields;
pub mod jwt;
pub mod mtls_consumer;
pub mod rate_limit;
pub mod request_id;
pub mod soap;
pub mod tokenize;

pub use chain::{Chain, Stopped};
pub use context::{AuditEntry, ClientCertificate, Consumer, RequestContext};
pub use filter::{BuildContext, BuildError, Filter, Flow, Reply};
pub use message::{HttpMessage, RequestHead, ResponseHead};
pub use problem::Problem;
pub use registry::FilterConfig;
