//! `[upstreams.NAME.iso8583]`: a card host's spec and links.

use std::net::SocketAddr;
use std::sync::Arc;

use toml::Spanned;

use super::{relative_to, BuildEnv};
use crate::config::{ConfigError, Iso8583Config, Located, UpstreamConfig};
use crate::iso8583::Spec;
use crate::upstream::iso8583::{CardHost, Framing, LinkSettings};

const MAX_LINKS: usize = 64;
const MAX_IN_FLIGHT: usize = 10_000;

/// Checks what an ISO 8583 upstream may not have (HTTP-only options, retries) and parses
/// its spec. The spec file's contents come from the caller, who counted them in the
/// upstream's file digest.
pub(super) fn check(
    name: &str,
    at: &Located<UpstreamConfig>,
    iso: &Spanned<Iso8583Config>,
    spec_text: &[u8],
    errors: &mut Vec<ConfigError>,
) -> Option<Arc<Spec>> {
    let config = &at.value;
    let settings = iso.get_ref();
    let mut refuse = |what: &str| {
        errors.push(at.error_at(
            iso.span(),
            format!("upstream \"{name}\": {what} does not apply to an iso8583 upstream"),
        ))
    };
    if config.tls || config.ca_file.is_some() || config.client_cert_file.is_some() {
        refuse("tls");
    }
    if config.health_check.is_some() {
        refuse("health_check (links are checked with echoes)");
    }
    if config.hash_on.is_some() {
        refuse("hash_on");
    }
    // Absent `retries` has an empty span; any value written in the file is refused.
    let retries_written = config.retries.span() != (0..0);
    if retries_written && *config.retries.get_ref() > 0 {
        errors.push(at.error_at(
            config.retries.span(),
            format!("upstream \"{name}\": an iso8583 upstream never retries: a message that may have reached the host, sent again, could charge a card twice"),
        ));
    }
    if !(1..=MAX_LINKS).contains(&settings.links) {
        errors.push(at.error_at(
            iso.span(),
            format!("upstream \"{name}\": iso8583.links must be 1 to {MAX_LINKS}"),
        ));
    }
    if !(1..=MAX_IN_FLIGHT).contains(&settings.max_in_flight) {
        errors.push(at.error_at(
            iso.span(),
            format!("upstream \"{name}\": iso8583.max_in_flight must be 1 to {MAX_IN_FLIGHT}"),
        ));
    }
    let framing_max = match settings.framing {
        Framing::Binary2 => 65_535,
        Framing::Ascii4 => 9_999,
    };
    if !(64..=framing_max).contains(&settings.max_message_bytes) {
        errors.push(at.error_at(
            iso.span(),
            format!("upstream \"{name}\": iso8583.max_message_bytes must be 64 to {framing_max} with this framing"),
        ));
    }
    if settings.request_timeout.is_zero() || settings.reconnect_min.is_zero() {
        errors.push(at.error_at(
            iso.span(),
            format!(
                "upstream \"{name}\": iso8583.request_timeout and reconnect_min must be above 0"
            ),
        ));
    }
    if settings.reconnect_max < settings.reconnect_min {
        errors.push(at.error_at(
            iso.span(),
            format!("upstream \"{name}\": iso8583.reconnect_max is below reconnect_min"),
        ));
    }
    let spec_path = relative_to(&at.file.path, settings.spec_file.get_ref());
    let text = match std::str::from_utf8(spec_text) {
        Ok(text) => text,
        Err(_) => {
            errors.push(ConfigError::file(
                &spec_path,
                "the spec file is not UTF-8 text",
            ));
            return None;
        }
    };
    match Spec::from_toml(text) {
        Ok(spec) => {
            if !settings.echo_interval.is_zero() && !spec.can_echo() {
                errors.push(at.error_at(
                    iso.span(),
                    format!("upstream \"{name}\": echoes need fields 7, 11 and 70 in the spec (or echo_interval = \"0s\")"),
                ));
            }
            Some(Arc::new(spec))
        }
        Err(e) => {
            errors.push(spec_error(&spec_path, &e));
            None
        }
    }
}

/// The card host's links; nothing connects until the first request.
pub(super) fn card_host(
    name: &str,
    config: &UpstreamConfig,
    iso: &Iso8583Config,
    spec: Arc<Spec>,
    targets: Vec<(SocketAddr, Arc<str>)>,
    env: &BuildEnv,
) -> Arc<CardHost> {
    let settings = LinkSettings {
        framing: iso.framing,
        links: iso.links,
        max_in_flight: iso.max_in_flight,
        max_message_bytes: iso.max_message_bytes,
        connect_timeout: config.timeouts.connect,
        echo_interval: iso.echo_interval,
        request_timeout: iso.request_timeout,
        reconnect_min: iso.reconnect_min,
        reconnect_max: iso.reconnect_max,
    };
    Arc::new(CardHost::new(
        Arc::from(name),
        spec,
        settings,
        targets,
        env.metrics.iso8583(name),
    ))
}

fn spec_error(path: &std::path::Path, e: &crate::iso8583::SpecError) -> ConfigError {
    ConfigError {
        path: path.to_path_buf(),
        line: e.line,
        col: e.col,
        message: e.message.clone(),
    }
}
