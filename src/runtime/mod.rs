//! The compiled runtime: everything a request needs, built whole from a config and swapped in
//! one step. Requests hold the snapshot they started with until they end.

mod compile;
mod path_index;
mod rewrite;
mod router;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use corridor_filters::{Chain, Filter, FilterConfig};
use ipnet::IpNet;

pub use compile::{compile, BuildEnv};
pub use rewrite::Rewrite;
pub use router::{HeaderMatch, HostMatch, Matcher, PathMatch, Router};

use crate::metrics::RouteMetrics;
use crate::tls::ListenerTls;
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
    pub metrics: RouteMetrics,
    /// The config it was built from: a reload keeps this route when it is unchanged.
    pub definition: crate::config::RouteConfig,
    /// For a route to a card host: the operation of its spec this route performs.
    pub operation: Option<Arc<str>>,
}

/// A built chain and the config of each of its filters, so a reload can keep the filters
/// (and their state: limiter counters, key caches) whose config did not change.
#[derive(Clone)]
pub struct BuiltChain {
    pub chain: Arc<Chain>,
    pub filters: Vec<BuiltFilter>,
}

/// A filter with what it was built from: its config, and the files it read (path and
/// SHA-256 of the contents). Both must be unchanged for a reload to keep it.
#[derive(Clone)]
pub struct BuiltFilter {
    pub config: FilterConfig,
    pub files: Vec<(PathBuf, [u8; 32])>,
    pub filter: Arc<dyn Filter>,
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
    pub audit_log: AccessLogTarget,
    pub upstream_pool_size: usize,
    pub config_rescan: Duration,
}

impl Settings {
    /// Settings that only a restart can change: reported when a reload changes them.
    pub fn fixed_at_start(&self) -> impl PartialEq + std::fmt::Debug + '_ {
        (
            self.threads,
            self.grace_period,
            &self.access_log,
            &self.audit_log,
            self.upstream_pool_size,
        )
    }

    pub fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }
}

/// A listener as configured.
#[derive(Debug, Clone)]
pub struct Listener {
    pub address: SocketAddr,
    pub h2c: bool,
    /// HTTPS settings; None for cleartext.
    pub tls: Option<Arc<ListenerTls>>,
}

impl Listener {
    /// What only a restart can change: the socket, and how it speaks. Certificates, keys
    /// and client-certificate settings reload.
    pub fn fixed_at_start(&self) -> (SocketAddr, bool, bool) {
        (self.address, self.h2c, self.tls.is_some())
    }
}

impl std::fmt::Debug for BuiltChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.chain.fmt(f)
    }
}

/// The admin listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    pub address: SocketAddr,
    /// SHA-256 of the bearer token, when one is required.
    pub token_sha256: Option<[u8; 32]>,
}

/// Everything compiled from one version of the config.
#[derive(Debug)]
pub struct Runtime {
    pub router: Router,
    pub upstreams: BTreeMap<String, Arc<Upstream>>,
    pub chains: BTreeMap<String, BuiltChain>,
    pub settings: Settings,
    pub listeners: Vec<Listener>,
    pub admin: Option<Admin>,
    /// Short hash of the config files' contents and the files they name: which config is
    /// serving. Equal versions mean nothing changed.
    pub version: String,
    pub files: Vec<PathBuf>,
}
