//! Serde structs for each section of the config. Every struct refuses unknown keys and every
//! option has a safe default, documented in the README's config reference.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use corridor_filters::FilterConfig;
use serde::Deserialize;
use toml::Spanned;

use super::Located;

/// One config file: every section is optional, so a directory can split the config.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub server: Option<Spanned<ServerConfig>>,
    pub admin: Option<Spanned<AdminConfig>>,
    #[serde(default)]
    pub listeners: Vec<Spanned<ListenerConfig>>,
    #[serde(default)]
    pub upstreams: BTreeMap<String, Spanned<UpstreamConfig>>,
    #[serde(default)]
    pub routes: Vec<Spanned<RouteConfig>>,
    /// Not `Spanned`: toml cannot give a span to a table that only `[[chains.NAME.filters]]`
    /// headers define, so a chain is located by its first filter.
    #[serde(default)]
    pub chains: BTreeMap<String, ChainConfig>,
}

/// The whole config, merged from its files in name order.
#[derive(Debug, Default)]
pub struct Config {
    pub files: Vec<std::sync::Arc<super::SourceFile>>,
    pub server: Option<Located<ServerConfig>>,
    pub admin: Option<Located<AdminConfig>>,
    pub listeners: Vec<Located<ListenerConfig>>,
    pub upstreams: BTreeMap<String, Located<UpstreamConfig>>,
    pub routes: Vec<Located<RouteConfig>>,
    pub chains: BTreeMap<String, Located<ChainConfig>>,
}

/// `[server]`: process-wide settings.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Worker threads serving the listeners (default: the number of CPUs).
    pub threads: Option<usize>,
    /// On SIGTERM or Ctrl-C, how long in-flight requests get to finish.
    #[serde(with = "humantime_serde")]
    pub grace_period: Duration,
    /// CIDRs of proxies in front of Corridor whose X-Forwarded-* headers are believed.
    pub trusted_proxies: Vec<Spanned<String>>,
    /// Most request headers a client may send (431 past it).
    pub max_header_count: usize,
    /// Most bytes of request headers, names and values together (431 past it).
    pub max_header_bytes: usize,
    /// Cap on a body buffered because a filter needs it whole (413 or 502 past it).
    pub max_buffered_body_bytes: u64,
    /// Header name prefixes that only Corridor may set: clients' copies are removed.
    pub internal_header_prefixes: Vec<String>,
    /// Where access log lines go: "stdout", "off", or a file path.
    pub access_log: String,
    /// Where audit records go (one JSON line per detokenization): "stdout", "off", or a
    /// file path. Unlike access log lines, audit records are never dropped.
    pub audit_log: String,
    /// Idle keep-alive connections kept to upstreams, for all upstreams together.
    pub upstream_pool_size: usize,
    /// How often the config files are re-read even without a change notification: a safety
    /// net for file systems whose events get lost.
    #[serde(with = "humantime_serde")]
    pub config_rescan: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            threads: None,
            grace_period: Duration::from_secs(5),
            trusted_proxies: Vec::new(),
            max_header_count: 100,
            max_header_bytes: 32 * 1024,
            max_buffered_body_bytes: 1024 * 1024,
            internal_header_prefixes: vec!["x-corridor-".into(), "x-consumer-".into()],
            access_log: "stdout".into(),
            audit_log: "stdout".into(),
            upstream_pool_size: 256,
            config_rescan: Duration::from_secs(30),
        }
    }
}

/// `[admin]`: the operators' listener.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Address of the admin listener; keep it on loopback or a management network.
    pub listen: String,
    /// File holding a bearer token that every admin call but /healthz must present.
    pub token_file: Option<Spanned<PathBuf>>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: "127.0.0.1:9901".into(),
            token_file: None,
        }
    }
}

/// `[[listeners]]`: where partners connect.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// Socket address, e.g. "0.0.0.0:8080".
    pub listen: Spanned<String>,
    /// Accept HTTP/2 over cleartext with prior knowledge (h2c) beside HTTP/1.1.
    #[serde(default = "yes")]
    pub h2c: bool,
    /// Serve HTTPS on this listener (HTTP/2 and HTTP/1.1 by ALPN).
    #[serde(default)]
    pub tls: Option<Spanned<ListenerTlsConfig>>,
}

/// `[listeners.tls]`: certificates, protocol versions and client certificates.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ListenerTlsConfig {
    /// Certificate chains with their keys; the client's SNI picks the one whose names match,
    /// the first serves clients that send no SNI or an unknown name.
    pub certificates: Spanned<Vec<CertificateConfig>>,
    /// Oldest TLS version accepted: "1.3" (the default) or "1.2".
    #[serde(default)]
    pub min_version: TlsVersion,
    /// Whether clients are asked for a certificate (mTLS).
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// PEM bundle of the CAs that sign partners' client certificates; required unless
    /// `client_auth` is "none".
    #[serde(default)]
    pub client_ca_file: Option<Spanned<PathBuf>>,
}

/// A certificate chain (leaf first) and its private key, as PEM files.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CertificateConfig {
    pub cert_file: Spanned<PathBuf>,
    pub key_file: Spanned<PathBuf>,
}

#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
pub enum TlsVersion {
    #[serde(rename = "1.2")]
    Tls12,
    #[default]
    #[serde(rename = "1.3")]
    Tls13,
}

/// How a listener treats client certificates.
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// Never asked for.
    #[default]
    None,
    /// Asked for and verified when sent; connections without one are accepted, and routes
    /// decide (e.g. with `mtls_consumer`).
    Optional,
    /// The handshake fails without a certificate the CA bundle verifies.
    Required,
}

fn yes() -> bool {
    true
}

/// `[upstreams.NAME]`: a cluster of targets serving the same thing.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Targets as "host:port" or `{ address = "host:port", weight = 2 }`.
    pub targets: Spanned<Vec<TargetConfig>>,
    /// How a target is chosen.
    #[serde(default)]
    pub balance: Balance,
    /// For `consistent_hash`: "client_ip" or "header:NAME".
    #[serde(default)]
    pub hash_on: Option<Spanned<String>>,
    /// Speak TLS to the targets (hostname verification on).
    #[serde(default)]
    pub tls: bool,
    /// Server name for TLS (SNI and verification); default: the target's host.
    #[serde(default)]
    pub sni: Option<String>,
    /// PEM bundle of CAs that sign the targets' certificates; default: the system's.
    #[serde(default)]
    pub ca_file: Option<Spanned<PathBuf>>,
    /// Client certificate Corridor presents to the targets (mTLS toward the core), with
    /// `client_key_file`.
    #[serde(default)]
    pub client_cert_file: Option<Spanned<PathBuf>>,
    #[serde(default)]
    pub client_key_file: Option<Spanned<PathBuf>>,
    #[serde(default)]
    pub timeouts: TimeoutConfig,
    /// Extra attempts after a failed one: always when the connection failed before the
    /// request was sent, otherwise only for idempotent methods.
    #[serde(default = "one_retry")]
    pub retries: Spanned<u32>,
    /// Active health checks; none when absent.
    #[serde(default)]
    pub health_check: Option<HealthCheckConfig>,
    #[serde(default)]
    pub passive_health: PassiveHealthConfig,
    /// Cap on concurrent requests to the core, with a bounded wait queue.
    #[serde(default)]
    pub concurrency: ConcurrencyConfig,
    /// Fail fast while the core keeps failing.
    #[serde(default)]
    pub circuit_breaker: CircuitBreakerConfig,
    /// Makes this upstream a card host spoken to in ISO 8583 over persistent TCP links
    /// instead of HTTP.
    #[serde(default)]
    pub iso8583: Option<Spanned<Iso8583Config>>,
}

/// `[upstreams.NAME.iso8583]`: the card host's message spec and its links.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Iso8583Config {
    /// The spec file: field formats and the operations routes may name.
    pub spec_file: Spanned<PathBuf>,
    /// Length header in front of each message: "binary2" (default) or "ascii4".
    #[serde(default)]
    pub framing: crate::upstream::iso8583::Framing,
    /// Links kept open, spread over the targets (1 to 64).
    #[serde(default = "two")]
    pub links: usize,
    /// Requests in flight on one link; past it, 503 (1 to 10,000).
    #[serde(default = "sixty_four")]
    pub max_in_flight: usize,
    /// Largest message, either way (at most 65,535; 9,999 with "ascii4").
    #[serde(default = "eight_kib")]
    pub max_message_bytes: usize,
    /// How long the host has to answer one request (504 past it).
    #[serde(default = "fifteen_seconds", with = "humantime_serde")]
    pub request_timeout: Duration,
    /// A link the host has been silent on this long gets an echo (0800); "0s" turns it off.
    #[serde(default = "thirty_seconds", with = "humantime_serde")]
    pub echo_interval: Duration,
    /// Reconnect backoff, doubling from `reconnect_min` up to `reconnect_max`.
    #[serde(default = "tenth_of_a_second", with = "humantime_serde")]
    pub reconnect_min: Duration,
    #[serde(default = "ten_seconds", with = "humantime_serde")]
    pub reconnect_max: Duration,
}

fn sixty_four() -> usize {
    64
}

fn eight_kib() -> usize {
    8 * 1024
}

fn fifteen_seconds() -> Duration {
    Duration::from_secs(15)
}

fn thirty_seconds() -> Duration {
    Duration::from_secs(30)
}

fn tenth_of_a_second() -> Duration {
    Duration::from_millis(100)
}

fn ten_seconds() -> Duration {
    Duration::from_secs(10)
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ConcurrencyConfig {
    /// Most requests in flight to this upstream (all targets together); 0 = no cap.
    pub max: usize,
    /// Requests that may wait for a slot; more are refused at once (503).
    pub queue: usize,
    /// Longest wait for a slot (503 past it).
    #[serde(with = "humantime_serde")]
    pub queue_timeout: Duration,
    /// Lower the cap while the core answers slowly, raise it again when it is fast.
    pub adaptive: Option<AdaptiveConfig>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AdaptiveConfig {
    /// Answers slower than this (time to the answer's head) cut the limit by 10%.
    #[serde(with = "humantime_serde")]
    pub latency_target: Duration,
    /// The limit never goes below this.
    #[serde(default = "two")]
    pub min: usize,
}

fn two() -> usize {
    2
}

impl Default for ConcurrencyConfig {
    fn default() -> Self {
        ConcurrencyConfig {
            max: 0,
            queue: 100,
            queue_timeout: Duration::from_secs(1),
            adaptive: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CircuitBreakerConfig {
    /// Failed exchanges in a row (connect errors, timeouts, 502/503/504) that open the
    /// circuit; 0 = off.
    pub consecutive_failures: u32,
    /// Share of failed exchanges within `window` that opens the circuit (0 < ratio ≤ 1);
    /// 0 = off.
    pub error_ratio: f64,
    /// Exchanges a window needs before `error_ratio` is judged.
    pub min_requests: u32,
    /// Length of the window `error_ratio` is computed over.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// How long it stays open (503 at once) before one probe request is let through.
    #[serde(with = "humantime_serde")]
    pub open_for: Duration,
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        CircuitBreakerConfig {
            consecutive_failures: 0,
            error_ratio: 0.0,
            min_requests: 20,
            window: Duration::from_secs(10),
            open_for: Duration::from_secs(10),
        }
    }
}

fn one_retry() -> Spanned<u32> {
    Spanned::new(0..0, 1)
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum TargetConfig {
    Address(String),
    Weighted {
        address: String,
        #[serde(default = "one")]
        weight: u32,
    },
}

impl TargetConfig {
    pub fn address(&self) -> &str {
        match self {
            TargetConfig::Address(a) | TargetConfig::Weighted { address: a, .. } => a,
        }
    }
    pub fn weight(&self) -> u32 {
        match self {
            TargetConfig::Address(_) => 1,
            TargetConfig::Weighted { weight, .. } => *weight,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    #[default]
    RoundRobin,
    LeastConnections,
    ConsistentHash,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TimeoutConfig {
    /// TCP (and TLS) connection setup.
    #[serde(with = "humantime_serde")]
    pub connect: Duration,
    /// Longest wait for the next bytes of the upstream's answer (504 past it).
    #[serde(with = "humantime_serde")]
    pub read: Duration,
    /// Longest wait while sending the request to the upstream.
    #[serde(with = "humantime_serde")]
    pub write: Duration,
    /// Budget for the whole upstream exchange, retries included (504 past it).
    #[serde(with = "humantime_serde")]
    pub total: Duration,
    /// How long an idle keep-alive connection to a target is kept.
    #[serde(with = "humantime_serde")]
    pub idle: Duration,
}

impl Default for TimeoutConfig {
    fn default() -> Self {
        TimeoutConfig {
            connect: Duration::from_secs(2),
            read: Duration::from_secs(30),
            write: Duration::from_secs(30),
            total: Duration::from_secs(60),
            idle: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HealthCheckConfig {
    /// Path requested with GET on each target.
    pub path: String,
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Consecutive successes that bring a target back.
    pub healthy_threshold: u32,
    /// Consecutive failures that take a target out.
    pub unhealthy_threshold: u32,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        HealthCheckConfig {
            path: "/health".into(),
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            healthy_threshold: 2,
            unhealthy_threshold: 3,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PassiveHealthConfig {
    /// Consecutive failed exchanges (connect errors, timeouts, 502/503/504) that eject a
    /// target; 0 turns passive ejection off.
    pub consecutive_failures: u32,
    /// How long an ejected target is left out before it gets traffic again.
    #[serde(with = "humantime_serde")]
    pub ejection_time: Duration,
}

impl Default for PassiveHealthConfig {
    fn default() -> Self {
        PassiveHealthConfig {
            consecutive_failures: 5,
            ejection_time: Duration::from_secs(30),
        }
    }
}

/// `[[routes]]`: which requests go where, through which chain.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Stable id, used in metrics and logs.
    pub id: Spanned<String>,
    /// Higher priorities are tried first; equal ones in config order.
    #[serde(default)]
    pub priority: i32,
    #[serde(rename = "match", default)]
    pub matcher: MatchConfig,
    /// Name of an `[upstreams.NAME]`.
    pub upstream: Spanned<String>,
    /// Name of a `[chains.NAME]`; no chain means plain proxying.
    #[serde(default)]
    pub chain: Option<Spanned<String>>,
    #[serde(default)]
    pub rewrite: RewriteConfig,
    /// For an `iso8583` upstream: the operation of its spec this route performs.
    #[serde(default)]
    pub operation: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    /// Host (without port), exact or "*.example.com".
    pub host: Option<Spanned<String>>,
    /// Exact path.
    pub path: Option<Spanned<String>>,
    /// Path prefix, matched on segment boundaries: "/v1/accounts" matches
    /// "/v1/accounts" and "/v1/accounts/7" but not "/v1/accountsx".
    pub path_prefix: Option<Spanned<String>>,
    /// Regular expression over the whole path (anchored).
    pub path_regex: Option<Spanned<String>>,
    /// Allowed methods; empty means any.
    #[serde(default)]
    pub methods: Vec<Spanned<String>>,
    /// Required headers: name → exact value, or "*" for "present with any value".
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RewriteConfig {
    /// Remove this prefix from the path before it goes upstream.
    pub strip_prefix: Option<String>,
    /// Put this prefix in front of the path before it goes upstream.
    pub add_prefix: Option<String>,
    /// With `path_regex`: the upstream path, with `$1`, `${name}` from the match.
    pub regex_replace: Option<Spanned<String>>,
}

/// `[chains.NAME]`: filters run in order on the request, in reverse on the response.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ChainConfig {
    pub filters: Vec<Spanned<FilterConfig>>,
}
