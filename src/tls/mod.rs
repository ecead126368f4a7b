//! HTTPS listeners on rustls: certificates chosen by SNI, TLS 1.3 unless 1.2 is allowed,
//! mTLS, and the verified client certificate handed to filters. A handshake reads the
//! listener's settings from the runtime serving at that moment, so certificates, keys, CAs
//! and modes reload with the config; only the address and whether it is TLS are fixed.

mod certs;
mod client_auth;
mod handshake;

use std::sync::Arc;

use arc_swap::ArcSwap;
use pingora::listeners::tls::TlsSettings;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

pub use certs::{load_certified_key, parse_certificates, CertificateSet};
pub use client_auth::verifier_for;
pub use handshake::{client_certificate, PeerTls};

use crate::config::{ClientAuth, TlsVersion};
use crate::runtime::Runtime;
use client_auth::ListenerClientVerifier;
use handshake::HandshakeInspector;

/// The TLS settings of one listener, compiled from its `[listeners.tls]`.
#[derive(Debug)]
pub struct ListenerTls {
    pub certificates: CertificateSet,
    pub min_version: TlsVersion,
    pub client_auth: ClientAuth,
    /// Verifies client certificates against `client_ca_file`; None when `client_auth` is
    /// "none".
    pub client_verifier: Option<Arc<dyn ClientCertVerifier>>,
}

/// pingora's settings for the listener at `index` of the runtime's listeners: every part
/// of the handshake defers to the runtime serving when the handshake happens.
pub fn listener_settings(runtime: &Arc<ArcSwap<Runtime>>, index: usize) -> TlsSettings {
    let inspector = HandshakeInspector {
        runtime: runtime.clone(),
        listener: index,
    };
    let mut settings = TlsSettings::with_callbacks(Box::new(inspector))
        .expect("creating TLS settings with callbacks cannot fail");
    settings.set_cert_resolver(Arc::new(SniResolver {
        runtime: runtime.clone(),
        listener: index,
    }));
    settings.set_client_cert_verifier(Arc::new(ListenerClientVerifier::new(
        runtime.clone(),
        index,
    )));
    settings.enable_h2();
    settings
}

/// Picks the certificate by SNI, and refuses clients below the listener's minimum version.
#[derive(Debug)]
struct SniResolver {
    runtime: Arc<ArcSwap<Runtime>>,
    listener: usize,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let runtime = self.runtime.load();
        let tls = runtime.listeners.get(self.listener)?.tls.as_ref()?;
        // rustls offers both 1.2 and 1.3 through pingora; a client that offers no TLS 1.3
        // cipher suite cannot speak 1.3, so on a 1.3-only listener it gets no certificate
        // and the handshake fails.
        if tls.min_version == TlsVersion::Tls13 && !hello.cipher_suites().iter().any(is_tls13) {
            return None;
        }
        Some(tls.certificates.choose(hello.server_name()))
    }
}

/// TLS 1.3 cipher suites are the 0x13xx range (RFC 8446 B.4).
fn is_tls13(suite: &rustls::CipherSuite) -> bool {
    u16::from(*suite) >> 8 == 0x13
}
