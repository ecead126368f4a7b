//! What the gateway learns from a finished handshake, once per connection: the verified
//! client certificate as filters see it, and whether the protocol version is one the
//! listener refuses.

use std::any::Any;
use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use corridor_filters::ClientCertificate;
use pingora::listeners::TlsAccept;
use pingora::protocols::tls::TlsRef;
use sha2::{Digest, Sha256};
use x509_parser::extensions::GeneralName;

use crate::config::TlsVersion;
use crate::runtime::Runtime;

/// Facts about a TLS connection, attached to it by pingora after the handshake.
#[derive(Debug)]
pub struct PeerTls {
    /// Parsed from the leaf the client presented; rustls has already verified the chain.
    pub client_cert: Option<Arc<ClientCertificate>>,
    /// The connection negotiated TLS 1.2 on a listener that accepts 1.3 only. The SNI
    /// resolver already refuses clients that cannot speak 1.3; this catches any other.
    pub version_refused: bool,
}

/// The post-handshake callback of a listener.
pub struct HandshakeInspector {
    pub runtime: Arc<ArcSwap<Runtime>>,
    pub listener: usize,
}

#[async_trait]
impl TlsAccept for HandshakeInspector {
    async fn handshake_complete_callback(
        &self,
        tls: &TlsRef,
    ) -> Option<Arc<dyn Any + Send + Sync>> {
        let min_version = self
            .runtime
            .load()
            .listeners
            .get(self.listener)
            .and_then(|l| l.tls.as_ref())
            .map_or(TlsVersion::Tls13, |tls| tls.min_version);
        let is_tls12 = matches!(tls.version(), Some("TLSv1_2" | "TLSv1.2"));
        Some(Arc::new(PeerTls {
            client_cert: tls
                .peer_certificate_der()
                .and_then(client_certificate)
                .map(Arc::new),
            version_refused: is_tls12 && min_version == TlsVersion::Tls13,
        }))
    }
}

/// The facts of a client certificate that filters use: subject, SANs and thumbprint.
pub fn client_certificate(der: &[u8]) -> Option<ClientCertificate> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let mut parsed = ClientCertificate {
        subject: subject.to_string(),
        common_name: subject
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(String::from),
        dns_names: Vec::new(),
        uris: Vec::new(),
        emails: Vec::new(),
        sha256: Sha256::digest(der).into(),
    };
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(dns) => parsed.dns_names.push(dns.to_string()),
                GeneralName::URI(uri) => parsed.uris.push(uri.to_string()),
                GeneralName::RFC822Name(email) => parsed.emails.push(email.to_string()),
                _ => {}
            }
        }
    }
    Some(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_subject_sans_and_thumbprint() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["acme.partners.test".to_string()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "acme-client");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Acme Ltd");
        params.subject_alt_names.push(rcgen::SanType::URI(
            "spiffe://partners/acme".try_into().unwrap(),
        ));
        params.subject_alt_names.push(rcgen::SanType::Rfc822Name(
            "ops@acme.test".try_into().unwrap(),
        ));
        let cert = params.self_signed(&key).unwrap();
        let parsed = client_certificate(cert.der()).unwrap();
        assert_eq!(parsed.common_name.as_deref(), Some("acme-client"));
        assert!(
            parsed.subject.contains("CN=acme-client"),
            "{}",
            parsed.subject
        );
        assert!(parsed.subject.contains("O=Acme Ltd"), "{}", parsed.subject);
        assert_eq!(parsed.dns_names, ["acme.partners.test"]);
        assert_eq!(parsed.uris, ["spiffe://partners/acme"]);
        assert_eq!(parsed.emails, ["ops@acme.test"]);
        let expected: [u8; 32] = Sha256::digest(cert.der()).into();
        assert_eq!(parsed.sha256, expected);
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(client_certificate(b"not a certificate").is_none());
    }
}
