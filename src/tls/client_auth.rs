//! mTLS on a listener: a client certificate verifier that follows the runtime, so the CA
//! bundle and the none/optional/required mode reload with the config.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, Error, RootCertStore, SignatureScheme};

use super::{certs::parse_certificates, ListenerTls};
use crate::config::ClientAuth;
use crate::runtime::Runtime;

/// A WebPKI verifier for client certificates signed by the CAs of `ca_pem`. Client
/// certificates are optional at this level: whether one is required is decided per
/// handshake by [`ListenerClientVerifier`] from the current config.
pub fn verifier_for(
    ca_pem: &[u8],
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, String> {
    let mut roots = RootCertStore::empty();
    for ca in parse_certificates(ca_pem)? {
        roots
            .add(ca)
            .map_err(|e| format!("not a usable CA certificate: {e}"))?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .allow_unauthenticated()
        .build()
        .map_err(|e| format!("cannot verify clients against it: {e}"))
}

/// The verifier installed on a listener for its whole life. Each handshake reads the
/// listener's TLS settings from the runtime serving at that moment.
#[derive(Debug)]
pub struct ListenerClientVerifier {
    runtime: Arc<ArcSwap<Runtime>>,
    listener: usize,
    provider: Arc<CryptoProvider>,
}

impl ListenerClientVerifier {
    pub fn new(runtime: Arc<ArcSwap<Runtime>>, listener: usize) -> Self {
        ListenerClientVerifier {
            runtime,
            listener,
            provider: Arc::new(rustls::crypto::ring::default_provider()),
        }
    }

    fn with_tls<T>(&self, f: impl FnOnce(&ListenerTls) -> T) -> Option<T> {
        let runtime = self.runtime.load();
        let tls = runtime.listeners.get(self.listener)?.tls.as_ref()?;
        Some(f(tls))
    }

    fn mode(&self) -> ClientAuth {
        self.with_tls(|tls| tls.client_auth)
            .unwrap_or(ClientAuth::None)
    }

    fn inner(&self) -> Result<Arc<dyn ClientCertVerifier>, Error> {
        self.with_tls(|tls| tls.client_verifier.clone())
            .flatten()
            .ok_or_else(|| Error::General("client certificates are not accepted here".into()))
    }
}

impl ClientCertVerifier for ListenerClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.mode() != ClientAuth::None
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mode() == ClientAuth::Required
    }

    // No CA names are hinted: they would have to outlive a reload. Clients then offer the
    // certificate they are configured with, which is what partners' clients do anyway.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        self.inner()?
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
