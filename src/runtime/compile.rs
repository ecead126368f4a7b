//! Config → runtime. Checks everything and returns every error at once, each with
//! file:line:col, so `corridor check` reads like a compiler's output.

use std::collections::{BTreeMap, HashSet};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use corridor_filters::{BuildContext, Chain};
use http::{HeaderName, HeaderValue, Method};
use ipnet::IpNet;
use pingora::upstreams::peer::HttpPeer;
use pingora::utils::tls::WrappedX509;
use regex::Regex;
use sha2::{Digest, Sha256};

use super::{
    AccessLogTarget, Admin, BuiltChain, HeaderMatch, HostMatch, Listener, Matcher, PathMatch,
    Rewrite, Route, Router, Runtime, Settings,
};
use crate::config::{
    AdminConfig, Balance, ChainConfig, Config, ConfigError, Located, MatchConfig, RouteConfig,
    ServerConfig, UpstreamConfig,
};
use crate::metrics::Metrics;
use crate::upstream::{Balancer, HashOn, Target, TargetHealth, Upstream};

/// Most extra attempts a route may make: retries multiply load on a struggling core.
const MAX_RETRIES: u32 = 5;

/// What a build may use besides the config: where metrics go, and the runtime serving now,
/// whose unchanged upstreams and filters are kept with their state.
pub struct BuildEnv {
    pub metrics: Arc<Metrics>,
    pub previous: Option<Arc<Runtime>>,
}

impl BuildEnv {
    /// For a build that will not serve (`corridor check`).
    pub fn standalone() -> Self {
        BuildEnv {
            metrics: Metrics::new(),
            previous: None,
        }
    }
}

/// Builds a runtime, or returns every problem found.
pub fn compile(config: &Config, env: &BuildEnv) -> Result<Runtime, Vec<ConfigError>> {
    let mut errors = Vec::new();
    // Contents of files the config names (CAs, tokens): part of the version, so a rotated
    // certificate is a change even when the TOML is not.
    let mut named_files: Vec<Vec<u8>> = Vec::new();
    let previous = env.previous.as_deref();
    let first_file = config
        .files
        .first()
        .map(|f| f.path.clone())
        .unwrap_or_default();

    let default_server = Located {
        value: ServerConfig::default(),
        file: config.files[0].clone(),
        span: 0..0,
    };
    let server = config.server.as_ref().unwrap_or(&default_server);
    let settings = settings(&server.value, server, &mut errors);

    let listeners = listeners(config, &first_file, &mut errors);
    let admin = config
        .admin
        .as_ref()
        .and_then(|admin| build_admin(admin, &mut named_files, &mut errors));

    let mut upstreams = BTreeMap::new();
    for (name, upstream) in &config.upstreams {
        let kept = previous.and_then(|p| p.upstreams.get(name));
        let built = build_upstream(name, upstream, kept, env, &mut named_files, &mut errors);
        if let Some(built) = built {
            upstreams.insert(name.clone(), built);
        }
    }

    let mut chains = BTreeMap::new();
    for (name, chain) in &config.chains {
        let kept = previous.and_then(|p| p.chains.get(name));
        chains.insert(name.clone(), build_chain(name, chain, kept, &mut errors));
    }

    let mut routes = Vec::new();
    let mut ids = HashSet::new();
    let targets = Targets {
        upstreams: &upstreams,
        chains: &chains,
        empty_chain: Arc::new(Chain::default()),
        defined_upstreams: config.upstreams.keys().map(String::as_str).collect(),
    };
    let previous_routes: std::collections::HashMap<&str, &Arc<Route>> = previous
        .map(|p| {
            p.router
                .routes()
                .iter()
                .map(|r| (r.id.as_ref(), r))
                .collect()
        })
        .unwrap_or_default();
    for route in &config.routes {
        let id = route.value.id.get_ref();
        if !ids.insert(id.clone()) {
            errors.push(route.error_at(
                route.value.id.span(),
                format!("route id \"{id}\" is used twice"),
            ));
        }
        let built = build_route(
            route,
            &targets,
            previous_routes.get(id.as_str()).copied(),
            env,
            &mut errors,
        );
        if let Some(built) = built {
            routes.push(built);
        }
    }
    if config.routes.is_empty() {
        errors.push(ConfigError::file(
            &first_file,
            "no [[routes]]: the gateway would answer 404 to everything",
        ));
    }

    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Runtime {
        router: Router::new(routes),
        upstreams,
        chains,
        settings,
        listeners,
        admin,
        version: version_hash(config, &named_files),
        files: config.files.iter().map(|f| f.path.clone()).collect(),
    })
}

fn version_hash(config: &Config, named_files: &[Vec<u8>]) -> String {
    let mut hasher = Sha256::new();
    for file in &config.files {
        hasher.update(file.path.to_string_lossy().as_bytes());
        hasher.update([0]);
        hasher.update(file.text.as_bytes());
        hasher.update([0]);
    }
    for contents in named_files {
        hasher.update(Sha256::digest(contents));
    }
    hex::encode(&hasher.finalize()[..8])
}

fn settings(
    server: &ServerConfig,
    at: &Located<ServerConfig>,
    errors: &mut Vec<ConfigError>,
) -> Settings {
    let mut trusted_proxies = Vec::new();
    for cidr in &server.trusted_proxies {
        let text = cidr.get_ref();
        match text
            .parse::<IpNet>()
            .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
        {
            Ok(net) => trusted_proxies.push(net),
            Err(_) => errors.push(at.error_at(
                cidr.span(),
                format!("trusted_proxies: \"{text}\" is not a CIDR or IP address"),
            )),
        }
    }
    if server.threads == Some(0) {
        errors.push(at.error("threads must be at least 1"));
    }
    if server.max_header_count == 0
        || server.max_header_bytes == 0
        || server.max_buffered_body_bytes == 0
    {
        errors.push(at.error(
            "max_header_count, max_header_bytes and max_buffered_body_bytes must be above 0",
        ));
    }
    let access_log = match server.access_log.as_str() {
        "off" => AccessLogTarget::Off,
        "stdout" => AccessLogTarget::Stdout,
        "" => {
            errors.push(at.error("access_log must be \"stdout\", \"off\" or a file path"));
            AccessLogTarget::Off
        }
        path => AccessLogTarget::File(PathBuf::from(path)),
    };
    Settings {
        threads: server
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        grace_period: server.grace_period,
        trusted_proxies,
        max_header_count: server.max_header_count,
        max_header_bytes: server.max_header_bytes,
        max_buffered_body_bytes: server.max_buffered_body_bytes,
        internal_header_prefixes: server
            .internal_header_prefixes
            .iter()
            .map(|p| p.to_ascii_lowercase())
            .collect(),
        access_log,
        upstream_pool_size: server.upstream_pool_size,
        config_rescan: server.config_rescan,
    }
}

fn build_admin(
    at: &Located<AdminConfig>,
    named_files: &mut Vec<Vec<u8>>,
    errors: &mut Vec<ConfigError>,
) -> Option<Admin> {
    let address = at.value.listen.parse::<SocketAddr>().map_err(|_| {
        errors.push(at.error(format!(
            "admin listen address \"{}\" is not ip:port",
            at.value.listen
        )))
    });
    let token = at.value.token_file.as_ref().map(|path| {
        let full = relative_to(&at.file.path, path.get_ref());
        // Errors name the file, never its contents.
        let problem = match std::fs::read_to_string(&full) {
            Ok(token) if !token.trim().is_empty() => {
                named_files.push(token.as_bytes().to_vec());
                return Ok(Sha256::digest(token.trim().as_bytes()).into());
            }
            Ok(_) => format!("admin token_file {} is empty", full.display()),
            Err(e) => format!("admin token_file {}: {e}", full.display()),
        };
        errors.push(at.error_at(path.span(), problem));
        Err(())
    });
    let token_sha256 = token.transpose();
    Some(Admin {
        address: address.ok()?,
        token_sha256: token_sha256.ok()?,
    })
}

/// A path from config, relative to the config file that names it.
fn relative_to(config_file: &Path, path: &Path) -> PathBuf {
    config_file
        .parent()
        .map_or(path.to_path_buf(), |dir| dir.join(path))
}

fn build_chain(
    name: &str,
    at: &Located<ChainConfig>,
    kept: Option<&BuiltChain>,
    errors: &mut Vec<ConfigError>,
) -> BuiltChain {
    let ctx = BuildContext {
        base_dir: at
            .file
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
    };
    let mut filters = Vec::new();
    for (index, entry) in at.value.filters.iter().enumerate() {
        let config = entry.get_ref();
        // Same filter, same config, same place: keep the instance and whatever it holds.
        let same = kept
            .and_then(|k| k.filters.get(index))
            .filter(|(old, _)| old == config);
        if let Some((_, filter)) = same {
            filters.push((config.clone(), filter.clone()));
            continue;
        }
        match config.build(&ctx) {
            Ok(filter) => filters.push((config.clone(), filter)),
            Err(e) => errors.push(at.error_at(
                entry.span(),
                format!("chain \"{name}\": filter \"{}\": {e}", config.type_name()),
            )),
        }
    }
    let chain = match kept {
        Some(k)
            if k.filters.len() == filters.len()
                && k.filters
                    .iter()
                    .zip(&filters)
                    .all(|(a, b)| Arc::ptr_eq(&a.1, &b.1)) =>
        {
            k.chain.clone()
        }
        _ => Arc::new(Chain::new(filters.iter().map(|(_, f)| f.clone()).collect())),
    };
    BuiltChain { chain, filters }
}

fn listeners(config: &Config, first_file: &Path, errors: &mut Vec<ConfigError>) -> Vec<Listener> {
    let mut out: Vec<Listener> = Vec::new();
    for listener in &config.listeners {
        let text = listener.value.listen.get_ref();
        let span = listener.value.listen.span();
        match text.parse::<SocketAddr>() {
            Ok(address) if out.iter().any(|l| l.address == address) => errors
                .push(listener.error_at(span, format!("listener {address} is declared twice"))),
            Ok(address) => out.push(Listener {
                address,
                h2c: listener.value.h2c,
            }),
            Err(_) => errors
                .push(listener.error_at(span, format!("listen address \"{text}\" is not ip:port"))),
        }
    }
    if config.listeners.is_empty() {
        errors.push(ConfigError::file(
            first_file,
            "no [[listeners]]: the gateway would accept no connections",
        ));
    }
    out
}

fn build_upstream(
    name: &str,
    at: &Located<UpstreamConfig>,
    kept: Option<&Arc<Upstream>>,
    env: &BuildEnv,
    named_files: &mut Vec<Vec<u8>>,
    errors: &mut Vec<ConfigError>,
) -> Option<Arc<Upstream>> {
    let config = &at.value;
    let before = errors.len();
    let ca_pem = match &config.ca_file {
        Some(path) => {
            let full = relative_to(&at.file.path, path.get_ref());
            match std::fs::read(&full) {
                Ok(pem) => Some(pem),
                Err(e) => {
                    errors.push(at.error_at(
                        path.span(),
                        format!(
                            "upstream \"{name}\": ca_file: cannot read {}: {e}",
                            full.display()
                        ),
                    ));
                    return None;
                }
            }
        }
        None => None,
    };
    if let Some(pem) = &ca_pem {
        named_files.push(pem.clone());
    }
    // An unchanged definition keeps its targets' health, pools and balancer position.
    if let Some(kept) = kept.filter(|k| k.definition == *config && k.ca_pem == ca_pem) {
        return Some(kept.clone());
    }
    let targets_span = config.targets.span();
    if config.targets.get_ref().is_empty() {
        errors.push(at.error_at(
            targets_span.clone(),
            format!("upstream \"{name}\" has no targets"),
        ));
    }
    let timeouts = &config.timeouts;
    for (what, value) in [
        ("connect", timeouts.connect),
        ("read", timeouts.read),
        ("write", timeouts.write),
        ("total", timeouts.total),
    ] {
        if value.is_zero() {
            errors.push(at.error(format!(
                "upstream \"{name}\": timeouts.{what} must be above 0"
            )));
        }
    }
    if *config.retries.get_ref() > MAX_RETRIES {
        errors.push(at.error_at(
            config.retries.span(),
            format!(
                "upstream \"{name}\": retries is {}, at most {MAX_RETRIES} are allowed",
                config.retries.get_ref()
            ),
        ));
    }
    if let Some(check) = &config.health_check {
        if !check.path.starts_with('/') {
            errors.push(at.error(format!(
                "upstream \"{name}\": health_check.path must start with '/'"
            )));
        }
        if check.interval.is_zero()
            || check.timeout.is_zero()
            || check.healthy_threshold == 0
            || check.unhealthy_threshold == 0
        {
            errors.push(at.error(format!("upstream \"{name}\": health_check interval, timeout and thresholds must be above 0")));
        }
    }
    let hash_on = match (&config.hash_on, config.balance) {
        (None, Balance::ConsistentHash) => Some(HashOn::ClientIp),
        (None, _) => None,
        (Some(spec), balance) => {
            if balance != Balance::ConsistentHash {
                errors.push(at.error_at(
                    spec.span(),
                    format!("upstream \"{name}\": hash_on needs balance = \"consistent_hash\""),
                ));
            }
            match parse_hash_on(spec.get_ref()) {
                Some(h) => Some(h),
                None => {
                    errors.push(at.error_at(spec.span(), format!("upstream \"{name}\": hash_on must be \"client_ip\" or \"header:NAME\", not \"{}\"", spec.get_ref())));
                    None
                }
            }
        }
    };
    let ca = match (&config.ca_file, &ca_pem) {
        (Some(path), Some(pem)) => parse_ca(pem)
            .map_err(|e| {
                let file = path.get_ref().display();
                errors.push(at.error_at(
                    path.span(),
                    format!("upstream \"{name}\": ca_file {file}: {e}"),
                ))
            })
            .ok(),
        _ => None,
    };

    let mut targets = Vec::new();
    let mut seen = HashSet::new();
    for target in config.targets.get_ref() {
        let text = target.address();
        if target.weight() == 0 {
            errors.push(at.error_at(
                targets_span.clone(),
                format!("upstream \"{name}\": target \"{text}\" has weight 0"),
            ));
            continue;
        }
        let address = match resolve(text) {
            Ok(address) => address,
            Err(e) => {
                errors.push(at.error_at(
                    targets_span.clone(),
                    format!("upstream \"{name}\": target \"{text}\": {e}"),
                ));
                continue;
            }
        };
        if !seen.insert(address) {
            errors.push(at.error_at(
                targets_span.clone(),
                format!("upstream \"{name}\": target {address} is listed twice"),
            ));
            continue;
        }
        let host = text
            .rsplit_once(':')
            .map_or(text, |(h, _)| h)
            .trim_matches(|c| c == '[' || c == ']');
        let sni = config.sni.clone().unwrap_or_else(|| host.to_string());
        let mut peer = HttpPeer::new(address, config.tls, sni);
        peer.options.connection_timeout = Some(timeouts.connect);
        peer.options.total_connection_timeout = Some(timeouts.connect);
        peer.options.read_timeout = Some(timeouts.read.min(timeouts.total));
        peer.options.write_timeout = Some(timeouts.write);
        peer.options.idle_timeout = Some(timeouts.idle);
        peer.options.verify_cert = true;
        peer.options.verify_hostname = true;
        peer.options.ca = ca.clone();
        targets.push(Target {
            address,
            label: Arc::from(text),
            weight: target.weight(),
            peer,
            health: Arc::new(TargetHealth::default()),
        });
    }
    if errors.len() > before {
        return None;
    }
    let balancer = match config.balance {
        Balance::RoundRobin => Balancer::round_robin(&targets),
        Balance::LeastConnections => Balancer::least_connections(),
        Balance::ConsistentHash => Balancer::consistent_hash(&targets),
    };
    Some(Arc::new(Upstream {
        name: Arc::from(name),
        targets,
        balancer,
        hash_on,
        timeouts: config.timeouts.clone(),
        retries: *config.retries.get_ref(),
        health_check: config.health_check.clone(),
        passive: config.passive_health.clone(),
        metrics: env.metrics.upstream(name),
        definition: config.clone(),
        ca_pem,
    }))
}

fn parse_hash_on(spec: &str) -> Option<HashOn> {
    if spec == "client_ip" {
        return Some(HashOn::ClientIp);
    }
    let name = spec.strip_prefix("header:")?;
    HeaderName::from_bytes(name.as_bytes())
        .ok()
        .map(HashOn::Header)
}

fn resolve(text: &str) -> Result<SocketAddr, String> {
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Ok(address);
    }
    if !text.contains(':') {
        return Err("needs a port (host:port)".into());
    }
    // A host name is resolved once, when the config is loaded.
    text.to_socket_addrs()
        .map_err(|e| format!("cannot resolve: {e}"))?
        .next()
        .ok_or_else(|| "resolves to no address".into())
}

fn parse_ca(pem: &[u8]) -> Result<Arc<[WrappedX509]>, String> {
    let mut store = rustls::RootCertStore::empty();
    let mut certs = Vec::new();
    for cert in rustls_pemfile::certs(&mut &pem[..]) {
        let cert = cert.map_err(|e| format!("not PEM: {e}"))?;
        // Parse it here so a bad certificate is a config error, not a failure at connect time.
        store
            .add(cert.clone())
            .map_err(|e| format!("bad certificate: {e}"))?;
        certs.push(WrappedX509::new(
            cert.to_vec(),
            pingora::utils::tls::parse_x509,
        ));
    }
    if certs.is_empty() {
        return Err("holds no PEM certificate".into());
    }
    Ok(Arc::from(certs.into_boxed_slice()))
}

/// What routes may refer to.
struct Targets<'a> {
    upstreams: &'a BTreeMap<String, Arc<Upstream>>,
    chains: &'a BTreeMap<String, BuiltChain>,
    empty_chain: Arc<Chain>,
    /// Upstreams declared, built or not (one with errors was reported already).
    defined_upstreams: HashSet<&'a str>,
}

fn build_route(
    at: &Located<RouteConfig>,
    targets: &Targets<'_>,
    kept: Option<&Arc<Route>>,
    env: &BuildEnv,
    errors: &mut Vec<ConfigError>,
) -> Option<Arc<Route>> {
    let route = &at.value;
    let id = route.id.get_ref();
    let before = errors.len();
    let upstream = targets.upstreams.get(route.upstream.get_ref()).cloned();
    if upstream.is_none()
        && !targets
            .defined_upstreams
            .contains(route.upstream.get_ref().as_str())
    {
        errors.push(at.error_at(
            route.upstream.span(),
            format!(
                "route \"{id}\": unknown upstream \"{}\"",
                route.upstream.get_ref()
            ),
        ));
    }
    let chain = match &route.chain {
        None => Some(targets.empty_chain.clone()),
        Some(name) => {
            let found = targets.chains.get(name.get_ref()).map(|c| c.chain.clone());
            if found.is_none() {
                errors.push(at.error_at(
                    name.span(),
                    format!("route \"{id}\": unknown chain \"{}\"", name.get_ref()),
                ));
            }
            found
        }
    };
    // The same definition over the same upstream and chain: keep the compiled route (its
    // regexes and metric handles) instead of building it again.
    if let (Some(kept), Some(upstream), Some(chain)) = (kept, &upstream, &chain) {
        let same_chain =
            Arc::ptr_eq(&kept.chain, chain) || (kept.chain.is_empty() && chain.is_empty());
        if kept.definition == *route && Arc::ptr_eq(&kept.upstream, upstream) && same_chain {
            return Some(kept.clone());
        }
    }
    let matcher = build_matcher(id, &route.matcher, at, errors);
    let regex = match (&route.rewrite.regex_replace, &matcher) {
        (None, _) => None,
        (
            Some(replacement),
            Some(Matcher {
                path: PathMatch::Regex(re),
                ..
            }),
        ) => Some((re.clone(), replacement.get_ref().clone())),
        (Some(replacement), _) => {
            errors.push(at.error_at(
                replacement.span(),
                format!("route \"{id}\": rewrite.regex_replace needs match.path_regex"),
            ));
            None
        }
    };
    for prefix in [&route.rewrite.strip_prefix, &route.rewrite.add_prefix]
        .into_iter()
        .flatten()
    {
        if !prefix.starts_with('/') {
            errors.push(at.error(format!(
                "route \"{id}\": rewrite prefix \"{prefix}\" must start with '/'"
            )));
        }
    }
    if errors.len() > before {
        return None;
    }
    Some(Arc::new(Route {
        id: Arc::from(id.as_str()),
        priority: route.priority,
        matcher: matcher?,
        upstream: upstream?,
        chain: chain?,
        rewrite: Rewrite {
            strip_prefix: route.rewrite.strip_prefix.clone(),
            add_prefix: route.rewrite.add_prefix.clone(),
            regex,
        },
        metrics: env.metrics.route(id),
        definition: route.clone(),
    }))
}

fn build_matcher(
    id: &str,
    m: &MatchConfig,
    at: &Located<RouteConfig>,
    errors: &mut Vec<ConfigError>,
) -> Option<Matcher> {
    let before = errors.len();
    let host = match &m.host {
        None => HostMatch::Any,
        Some(host) => match host.get_ref().strip_prefix('*') {
            Some(suffix) if suffix.starts_with('.') && suffix.len() > 1 => {
                HostMatch::Suffix(suffix.to_ascii_lowercase())
            }
            Some(_) => {
                errors.push(at.error_at(
                    host.span(),
                    format!("route \"{id}\": host wildcard must look like \"*.example.com\""),
                ));
                HostMatch::Any
            }
            None => HostMatch::Exact(host.get_ref().to_ascii_lowercase()),
        },
    };
    let given = [
        m.path.is_some(),
        m.path_prefix.is_some(),
        m.path_regex.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if given > 1 {
        // Point at the last of them: the one that conflicts with what came before.
        let last = [&m.path, &m.path_prefix, &m.path_regex]
            .into_iter()
            .flatten()
            .map(|p| p.span())
            .max_by_key(|span| span.start)
            .unwrap_or(at.span.clone());
        errors.push(at.error_at(
            last,
            format!(
                "route \"{id}\": give only one of match.path, match.path_prefix, match.path_regex"
            ),
        ));
    }
    for p in [&m.path, &m.path_prefix].into_iter().flatten() {
        if !p.get_ref().starts_with('/') {
            errors.push(at.error_at(
                p.span(),
                format!(
                    "route \"{id}\": path \"{}\" must start with '/'",
                    p.get_ref()
                ),
            ));
        }
    }
    let path = if let Some(p) = &m.path {
        PathMatch::Exact(p.get_ref().clone())
    } else if let Some(p) = &m.path_prefix {
        PathMatch::Prefix(p.get_ref().trim_end_matches('/').to_string())
    } else if let Some(p) = &m.path_regex {
        // Anchored so "^/a" cannot accidentally match "/x/a".
        match Regex::new(&format!(
            "^(?:{})$",
            p.get_ref().trim_start_matches('^').trim_end_matches('$')
        )) {
            Ok(re) => PathMatch::Regex(re),
            Err(e) => {
                errors.push(at.error_at(p.span(), format!("route \"{id}\": path_regex: {e}")));
                PathMatch::Any
            }
        }
    } else {
        PathMatch::Any
    };
    let mut methods = Vec::new();
    for method in &m.methods {
        let text = method.get_ref().to_ascii_uppercase();
        match Method::from_bytes(text.as_bytes()) {
            Ok(parsed) if text.bytes().all(|b| b.is_ascii_uppercase()) => methods.push(parsed),
            _ => errors.push(at.error_at(
                method.span(),
                format!(
                    "route \"{id}\": \"{}\" is not an HTTP method",
                    method.get_ref()
                ),
            )),
        }
    }
    let mut headers = Vec::new();
    for (name, value) in &m.headers {
        let parsed_name = HeaderName::from_bytes(name.as_bytes());
        let parsed_value = if value == "*" {
            Ok(None)
        } else {
            HeaderValue::from_str(value).map(Some)
        };
        match (parsed_name, parsed_value) {
            (Ok(name), Ok(value)) => headers.push(HeaderMatch { name, value }),
            _ => errors.push(at.error(format!(
                "route \"{id}\": match.headers: \"{name}\" = \"{value}\" is not a valid header"
            ))),
        }
    }
    if errors.len() > before {
        return None;
    }
    Some(Matcher {
        host,
        path,
        methods,
        headers,
    })
}
