//! Server certificates of an HTTPS listener, and the choice among them by SNI.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use x509_parser::extensions::GeneralName;

/// The certificates of one listener, indexed by the host names they are valid for.
pub struct CertificateSet {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` is stored under `example.com`: it covers exactly one more label.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    /// The first certificate: for clients that send no SNI or a name no certificate has.
    default: Arc<CertifiedKey>,
    names: Vec<Vec<String>>,
}

impl CertificateSet {
    /// Indexes `certificates` (each with the names of its leaf); the first is the default.
    /// When two certificates share a name, the earlier one wins, as config order suggests.
    pub fn new(certificates: Vec<(CertifiedKey, Vec<String>)>) -> Option<CertificateSet> {
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        let mut default = None;
        let mut all_names = Vec::new();
        for (key, names) in certificates {
            let key = Arc::new(key);
            default.get_or_insert_with(|| key.clone());
            for name in &names {
                let name = name.to_ascii_lowercase();
                match name.strip_prefix("*.") {
                    Some(parent) => wildcard.entry(parent.to_string()),
                    None => exact.entry(name),
                }
                .or_insert_with(|| key.clone());
            }
            all_names.push(names);
        }
        Some(CertificateSet {
            exact,
            wildcard,
            default: default?,
            names: all_names,
        })
    }

    /// The certificate for the name the client asked for (SNI).
    pub fn choose(&self, server_name: Option<&str>) -> Arc<CertifiedKey> {
        let Some(name) = server_name.map(str::to_ascii_lowercase) else {
            return self.default.clone();
        };
        if let Some(key) = self.exact.get(&name) {
            return key.clone();
        }
        name.split_once('.')
            .and_then(|(_, parent)| self.wildcard.get(parent))
            .unwrap_or(&self.default)
            .clone()
    }
}

// Key material stays out of debug output: only the names are shown.
impl fmt::Debug for CertificateSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateSet")
            .field("names", &self.names)
            .finish()
    }
}

/// A certificate chain and its private key from PEM, checked to belong together, with the
/// host names of the leaf (DNS SANs; the common name only when there are none).
pub fn load_certified_key(
    cert_pem: &[u8],
    key_pem: &[u8],
    provider: &CryptoProvider,
) -> Result<(CertifiedKey, Vec<String>), String> {
    let chain = parse_certificates(cert_pem)?;
    let key = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(|e| format!("key_file is not PEM: {e}"))?
        .ok_or("key_file holds no private key")?;
    let key: PrivateKeyDer<'static> = key;
    let names = host_names(&chain[0])?;
    let certified = CertifiedKey::from_der(chain, key, provider)
        .map_err(|e| format!("the key does not fit the certificate: {e}"))?;
    Ok((certified, names))
}

/// Every certificate of a PEM bundle; an error when there is none.
pub fn parse_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a PEM certificate file: {e}"))?;
    if chain.is_empty() {
        return Err("no PEM certificate in the file".into());
    }
    Ok(chain)
}

fn host_names(leaf: &CertificateDer<'_>) -> Result<Vec<String>, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| format!("the certificate cannot be parsed: {e}"))?;
    let mut names: Vec<String> = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                GeneralName::DNSName(dns) => Some(dns.to_string()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    if names.is_empty() {
        names.extend(
            cert.subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok())
                .map(String::from),
        );
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certified(names: &[&str]) -> (CertifiedKey, Vec<String>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.self_signed(&key).unwrap();
        let provider = rustls::crypto::ring::default_provider();
        load_certified_key(
            cert.pem().as_bytes(),
            key.serialize_pem().as_bytes(),
            &provider,
        )
        .unwrap()
    }

    fn leaf_of(set: &CertificateSet, sni: Option<&str>) -> Vec<u8> {
        set.choose(sni).cert[0].to_vec()
    }

    #[test]
    fn sni_picks_exact_then_wildcard_then_the_first() {
        let first = certified(&["api.bank.test"]);
        let wild = certified(&["*.partners.bank.test"]);
        let first_der = first.0.cert[0].to_vec();
        let wild_der = wild.0.cert[0].to_vec();
        let set = CertificateSet::new(vec![first, wild]).unwrap();
        assert_eq!(leaf_of(&set, Some("API.bank.test")), first_der);
        assert_eq!(leaf_of(&set, Some("acme.partners.bank.test")), wild_der);
        // A wildcard covers one label only.
        assert_eq!(leaf_of(&set, Some("a.b.partners.bank.test")), first_der);
        assert_eq!(leaf_of(&set, Some("other.test")), first_der);
        assert_eq!(leaf_of(&set, None), first_der);
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let key = rcgen::KeyPair::generate().unwrap();
        let other = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["a.test".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let provider = rustls::crypto::ring::default_provider();
        let err = load_certified_key(
            cert.pem().as_bytes(),
            other.serialize_pem().as_bytes(),
            &provider,
        )
        .unwrap_err();
        assert!(err.contains("does not fit"), "{err}");
    }
}
