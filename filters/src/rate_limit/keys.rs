//! What a `rate_limit` filter counts requests by: the configured key and a request's value.

use std::net::IpAddr;

use http::HeaderName;

use crate::BuildError;

/// What the config's `key` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum KeySpec {
    ClientIp,
    Consumer,
    Header(HeaderName),
    Attribute(String),
}

impl KeySpec {
    pub(super) fn parse(spec: &str) -> Result<Self, BuildError> {
        if spec == "client_ip" {
            return Ok(KeySpec::ClientIp);
        }
        if spec == "consumer" {
            return Ok(KeySpec::Consumer);
        }
        if let Some(name) = spec.strip_prefix("header:") {
            return HeaderName::from_bytes(name.as_bytes())
                .map(KeySpec::Header)
                .map_err(|_| {
                    BuildError(format!(
                        "rate_limit: key {spec:?}: invalid header name {name:?}"
                    ))
                });
        }
        if let Some(name) = spec.strip_prefix("attribute:") {
            if name.is_empty() {
                return Err(BuildError(format!(
                    "rate_limit: key {spec:?}: the attribute name is empty"
                )));
            }
            return Ok(KeySpec::Attribute(name.to_owned()));
        }
        Err(BuildError(format!(
            "rate_limit: key must be \"client_ip\", \"consumer\", \"header:NAME\" or \
             \"attribute:NAME\", not {spec:?}"
        )))
    }
}

/// What a request is counted by. The variants are separate key spaces: a consumer called
/// "10.0.0.1" never shares an allowance with the client at 10.0.0.1.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Key {
    /// The configured key's value: a consumer id, a header's or an attribute's value.
    Value(Box<str>),
    /// The client IP: the configured key, or the stand-in for a missing value.
    Ip(IpAddr),
    /// Neither a value nor a client IP (the gateway always knows the IP): one shared key.
    Unknown,
}
