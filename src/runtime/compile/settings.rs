//! Server settings, listeners and the admin endpoint.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ipnet::IpNet;
use sha2::{Digest, Sha256};

use super::relative_to;
use super::tls::listener_tls;
use crate::config::{AdminConfig, Config, ConfigError, Located, ServerConfig};
use crate::runtime::{AccessLogTarget, Admin, Listener, Settings};

pub(super) fn settings(
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
    let access_log = log_target(&server.access_log, "access_log", at, errors);
    let audit_log = log_target(&server.audit_log, "audit_log", at, errors);
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
        audit_log,
        upstream_pool_size: server.upstream_pool_size,
        config_rescan: server.config_rescan,
    }
}

fn log_target(
    text: &str,
    key: &str,
    at: &Located<ServerConfig>,
    errors: &mut Vec<ConfigError>,
) -> AccessLogTarget {
    match text {
        "off" => AccessLogTarget::Off,
        "stdout" => AccessLogTarget::Stdout,
        "" => {
            errors.push(at.error(format!("{key} must be \"stdout\", \"off\" or a file path")));
            AccessLogTarget::Off
        }
        path => AccessLogTarget::File(PathBuf::from(path)),
    }
}

pub(super) fn build_admin(
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

pub(super) fn listeners(
    config: &Config,
    first_file: &Path,
    named_files: &mut Vec<Vec<u8>>,
    errors: &mut Vec<ConfigError>,
) -> Vec<Listener> {
    let mut out: Vec<Listener> = Vec::new();
    for listener in &config.listeners {
        let text = listener.value.listen.get_ref();
        let span = listener.value.listen.span();
        match text.parse::<SocketAddr>() {
            Ok(address) if out.iter().any(|l| l.address == address) => errors
                .push(listener.error_at(span, format!("listener {address} is declared twice"))),
            Ok(address) => {
                let tls = match &listener.value.tls {
                    Some(tls) => match listener_tls(listener, tls, named_files, errors) {
                        Some(built) => Some(Arc::new(built)),
                        None => continue,
                    },
                    None => None,
                };
                out.push(Listener {
                    address,
                    h2c: listener.value.h2c,
                    tls,
                })
            }
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
