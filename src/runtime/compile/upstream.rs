//! Upstreams: targets, balancing, hash_on, address resolution and CA certificates.

use std::collections::HashSet;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;

use http::HeaderName;
use pingora::upstreams::peer::HttpPeer;
use pingora::utils::tls::WrappedX509;
use sha2::{Digest, Sha256};
use toml::Spanned;

use super::tls::{client_cert_key, read_named};
use super::{iso8583, BuildEnv};
use crate::config::{Balance, ConfigError, Located, UpstreamConfig};
use crate::upstream::{
    Balancer, CircuitBreaker, ConcurrencyCap, HashOn, Target, TargetHealth, Upstream,
};

/// Most extra attempts a route may make: retries multiply load on a struggling core.
const MAX_RETRIES: u32 = 5;

pub(super) fn build_upstream(
    name: &str,
    at: &Located<UpstreamConfig>,
    kept: Option<&Arc<Upstream>>,
    env: &BuildEnv,
    named_files: &mut Vec<Vec<u8>>,
    errors: &mut Vec<ConfigError>,
) -> Option<Arc<Upstream>> {
    let config = &at.value;
    let before = errors.len();
    let mut file_contents = Vec::new();
    let mut read = |path: &Option<Spanned<PathBuf>>, what: &str| {
        let path = path.as_ref()?;
        let what = format!("upstream \"{name}\": {what}");
        let contents = read_named(at, path, &what, named_files, errors)?;
        file_contents.push(contents.clone());
        Some(contents)
    };
    let ca_pem = read(&config.ca_file, "ca_file");
    let client_cert_pem = read(&config.client_cert_file, "client_cert_file");
    let client_key_pem = read(&config.client_key_file, "client_key_file");
    let iso_spec_text = config
        .iso8583
        .as_ref()
        .and_then(|iso| read(&Some(iso.get_ref().spec_file.clone()), "iso8583.spec_file"));
    if errors.len() > before {
        return None;
    }
    let files_sha256 = files_digest(&file_contents);
    // An unchanged definition keeps its targets' health, pools and balancer position.
    if let Some(kept) = kept.filter(|k| k.definition == *config && k.files_sha256 == files_sha256) {
        return Some(kept.clone());
    }
    let client_cert = match (&client_cert_pem, &client_key_pem) {
        (Some(cert), Some(key)) => match client_cert_key(cert, key) {
            Ok(cert_key) => Some(cert_key),
            Err(e) => {
                errors.push(at.error(format!("upstream \"{name}\": client certificate: {e}")));
                None
            }
        },
        (None, None) => None,
        _ => {
            errors.push(at.error(format!(
                "upstream \"{name}\": client_cert_file and client_key_file go together"
            )));
            None
        }
    };
    if client_cert.is_some() && !config.tls {
        errors.push(at.error(format!(
            "upstream \"{name}\": a client certificate needs tls = true"
        )));
    }
    let iso_spec = match (&config.iso8583, &iso_spec_text) {
        (Some(iso), Some(text)) => iso8583::check(name, at, iso, text, errors),
        _ => None,
    };
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
    let breaker = &config.circuit_breaker;
    if !(0.0..=1.0).contains(&breaker.error_ratio)
        || (breaker.error_ratio > 0.0 && breaker.window.is_zero())
        || ((breaker.error_ratio > 0.0 || breaker.consecutive_failures > 0)
            && breaker.open_for.is_zero())
    {
        errors.push(at.error(format!(
            "upstream \"{name}\": circuit_breaker.error_ratio must be within 0..=1, and window and open_for above 0"
        )));
    }
    if config
        .concurrency
        .adaptive
        .as_ref()
        .is_some_and(|a| a.latency_target.is_zero())
    {
        errors.push(at.error(format!(
            "upstream \"{name}\": concurrency.adaptive.latency_target must be above 0"
        )));
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
        peer.client_cert_key = client_cert.clone();
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
    let card_host = match (&config.iso8583, iso_spec) {
        (Some(iso), Some(spec)) => {
            let addresses = targets.iter().map(|t| (t.address, t.label.clone()));
            Some(iso8583::card_host(
                name,
                config,
                iso.get_ref(),
                spec,
                addresses.collect(),
                env,
            ))
        }
        _ => None,
    };
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
        concurrency: ConcurrencyCap::new(&config.concurrency),
        breaker: CircuitBreaker::new(&config.circuit_breaker),
        card_host,
        metrics: env.metrics.upstream(name),
        definition: config.clone(),
        files_sha256,
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

/// One digest of the files an upstream names (CA, client certificate and key): a reload
/// that changes none keeps the upstream, and no key material is kept around to compare.
fn files_digest(contents: &[Vec<u8>]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for file in contents {
        hasher.update(Sha256::digest(file));
    }
    hasher.finalize().into()
}
