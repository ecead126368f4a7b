//! The compiled runtime: everything a request needs, built whole from a config and swapped in
//! one step. Requests hold the snapshot they started with until they end.

mod compile;
mod rewrite;
mod router;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use corridor_filters::Chain;
use ipnet::IpNet;

pub use compile::compile;
pub use rewrite::Rewrite;
pub use router::{HeaderMatch, HostMatch, Matcher, PathMatch, Router};

use crate::upstream::Upstream;

/// A route, ready to serve.
#[derive(Debug)]
pub struct Route {
    pub id: Arc<str>,
    pub priority: i32,
    pub matcher: Matcher,
    pub upstream: Arc<Upstream>,
    pub chain: Arc<Chain>,
    pub rewrite: Rewrite,
}

/// Where the access log goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogTarget {
    Off,
    Stdout,
    File(PathBuf),
}

/// Process-wide settings from `[server]`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub threads: usize,
    pub grace_period: Duration,
    pub trusted_proxies: Vec<IpNet>,
    pub max_header_count: usize,
    pub max_header_bytes: usize,
    pub max_buffered_body_bytes: u64,
    /// Lowercase prefixes of headers only Corridor may set.
    pub internal_header_prefixes: Vec<String>,
    pub access_log: AccessLogTarget,
    pub upstream_pool_size: usize,
}

impl Settings {
    pub fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }
}

/// A listener as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub address: SocketAddr,
    pub h2c: bool,
}

/// Everything compiled from one version of the config.
#[derive(Debug)]
pub struct Runtime {
    pub router: Router,
    pub upstreams: BTreeMap<String, Arc<Upstream>>,
    pub settings: Settings,
    pub listeners: Vec<Listener>,
    pub admin: Option<SocketAddr>,
    /// Short hash of the config files' contents: which config is serving.
    pub version: String,
    pub files: Vec<PathBuf>,
}
