//! `[listeners.tls]` → the listener's certificates and client-certificate verifier, and the
//! client certificate an upstream presents to the core.

use std::path::PathBuf;
use std::sync::Arc;

use pingora::utils::tls::CertKey;
use toml::Spanned;

use super::relative_to;
use crate::config::{ClientAuth, ConfigError, ListenerConfig, ListenerTlsConfig, Located};
use crate::tls::{
    load_certified_key, parse_certificates, verifier_for, CertificateSet, ListenerTls,
};

/// Reads a file the config names, relative to the config file. Its contents join the
/// config's version, so replacing a certificate is a change even when the TOML is not.
/// Errors name the file, never its contents.
pub(super) fn read_named<T>(
    at: &Located<T>,
    path: &Spanned<PathBuf>,
    what: &str,
    named_files: &mut Vec<Vec<u8>>,
    errors: &mut Vec<ConfigError>,
) -> Option<Vec<u8>> {
    let full = relative_to(&at.file.path, path.get_ref());
    match std::fs::read(&full) {
        Ok(contents) => {
            named_files.push(contents.clone());
            Some(contents)
        }
        Err(e) => {
            errors.push(at.error_at(
                path.span(),
                format!("{what}: cannot read {}: {e}", full.display()),
            ));
            None
        }
    }
}

pub(super) fn listener_tls(
    at: &Located<ListenerConfig>,
    tls: &Spanned<ListenerTlsConfig>,
    named_files: &mut Vec<Vec<u8>>,
    errors: &mut Vec<ConfigError>,
) -> Option<ListenerTls> {
    let config = tls.get_ref();
    let before = errors.len();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut certificates = Vec::new();
    for certificate in config.certificates.get_ref() {
        let cert = read_named(at, &certificate.cert_file, "cert_file", named_files, errors);
        let key = read_named(at, &certificate.key_file, "key_file", named_files, errors);
        let (Some(cert), Some(key)) = (cert, key) else {
            continue;
        };
        match load_certified_key(&cert, &key, &provider) {
            Ok(loaded) => certificates.push(loaded),
            Err(e) => errors.push(at.error_at(
                certificate.cert_file.span(),
                format!(
                    "certificate {}: {e}",
                    certificate.cert_file.get_ref().display()
                ),
            )),
        }
    }
    if config.certificates.get_ref().is_empty() {
        errors.push(at.error_at(
            config.certificates.span(),
            "tls: certificates is empty: a TLS listener needs at least one",
        ));
    }
    let client_verifier = match (config.client_auth, &config.client_ca_file) {
        (ClientAuth::None, None) => None,
        (ClientAuth::None, Some(path)) => {
            errors.push(at.error_at(
                path.span(),
                "tls: client_ca_file is set but client_auth is \"none\": say \"optional\" or \"required\", or remove it",
            ));
            None
        }
        (_, None) => {
            errors.push(at.error_at(
                tls.span(),
                "tls: client_auth needs client_ca_file, the CAs that sign partners' certificates",
            ));
            None
        }
        (_, Some(path)) => {
            read_named(at, path, "client_ca_file", named_files, errors).and_then(|pem| {
                verifier_for(&pem, provider.clone())
                    .map_err(|e| {
                        errors.push(at.error_at(
                            path.span(),
                            format!("client_ca_file {}: {e}", path.get_ref().display()),
                        ))
                    })
                    .ok()
            })
        }
    };
    if errors.len() > before {
        return None;
    }
    Some(ListenerTls {
        certificates: CertificateSet::new(certificates)?,
        min_version: config.min_version,
        client_auth: config.client_auth,
        client_verifier,
    })
}

/// The certificate and key an upstream presents to its targets, as pingora wants them.
pub(super) fn client_cert_key(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<CertKey>, String> {
    let provider = rustls::crypto::ring::default_provider();
    // Loading it as a server key checks that the key is usable and fits the certificate.
    load_certified_key(cert_pem, key_pem, &provider)?;
    let chain = parse_certificates(cert_pem)?;
    let key = rustls_pemfile::private_key(&mut &key_pem[..])
        .ok()
        .flatten()
        .ok_or("client_key_file holds no private key")?;
    Ok(Arc::new(CertKey::new(
        chain.into_iter().map(|c| c.to_vec()).collect(),
        key.secret_der().to_vec(),
    )))
}
