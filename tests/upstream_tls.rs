//! TLS toward the core: a CA file, SNI and hostname verification, against a real TLS server
//! whose certificates are made at test time.
mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use common::*;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use tokio::io::AsyncWriteExt;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, ServerConfig};

struct Pki {
    ca_pem: String,
    server: ServerConfig,
}

/// A CA and a server certificate for "localhost" signed by it.
fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server_cert = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(server_cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        )
        .unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        server,
    }
}

/// A TLS server that answers every HTTP/1.1 request with 200 "over tls".
async fn tls_backend(config: ServerConfig) -> SocketAddr {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                // One answer per request head, until the client goes away.
                while read_head(&mut tls, &mut Vec::new()).await.is_ok() {
                    let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\nover tls";
                    if tls.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Writes the CA certificate to a file, in a directory removed when dropped.
fn write_ca(ca_pem: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("core-ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    (dir, ca)
}

fn tls_config(backend: SocketAddr, upstream_extra: &str) -> String {
    simple_config(&[backend], &format!("tls = true\n{upstream_extra}"), "")
}

#[tokio::test(flavor = "multi_thread")]
async fn reaches_a_tls_core_signed_by_the_configured_ca() {
    let pki = pki();
    let backend = tls_backend(pki.server).await;
    let (_dir, ca) = write_ca(&pki.ca_pem);
    let gw = Gateway::start(&tls_config(
        backend,
        &format!("sni = \"localhost\"\nca_file = \"{}\"", ca.display()),
    ));
    let resp = client().get(gw.url("/x")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "over tls");
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_a_core_whose_certificate_is_not_trusted() {
    let pki = pki();
    let backend = tls_backend(pki.server).await;
    // No ca_file: the system roots do not know the test CA.
    let gw = Gateway::start(&tls_config(backend, "sni = \"localhost\""));
    let resp = client().get(gw.url("/x")).send().await.unwrap();
    assert_eq!(resp.status(), 502);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["type"], "urn:corridor:problem:upstream-failed");
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_a_core_whose_name_does_not_match() {
    let pki = pki();
    let backend = tls_backend(pki.server).await;
    let (_dir, ca) = write_ca(&pki.ca_pem);
    let gw = Gateway::start(&tls_config(
        backend,
        &format!(
            "sni = \"core.other.example\"\nca_file = \"{}\"",
            ca.display()
        ),
    ));
    let resp = client().get(gw.url("/x")).send().await.unwrap();
    assert_eq!(resp.status(), 502);
}

/// A TLS core that admits only clients with a certificate from `clients`.
fn mtls_core(server: &Issued, clients: &TestCa) -> ServerConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(clients.der.clone().into()).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let key = rustls_pemfile::private_key(&mut server.key_pem.as_bytes())
        .unwrap()
        .unwrap();
    ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![CertificateDer::from(server.der.clone())], key)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn presents_the_configured_client_certificate_to_a_core_that_requires_one() {
    let core_ca = TestCa::new("core ca");
    let gateway_clients = TestCa::new("gateway clients ca");
    let backend = tls_backend(mtls_core(&core_ca.server(&["localhost"]), &gateway_clients)).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = core_ca.write(dir.path(), "core-ca.pem");
    let (cert, key) = gateway_clients
        .client("corridor-edge", vec![])
        .write(dir.path(), "edge");
    let trusted = format!("sni = \"localhost\"\nca_file = \"{}\"", ca.display());

    let gw = Gateway::start(&tls_config(
        backend,
        &format!(
            "{trusted}\nclient_cert_file = \"{}\"\nclient_key_file = \"{}\"",
            cert.display(),
            key.display()
        ),
    ));
    let resp = client().get(gw.url("/x")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "over tls");

    // Without the certificate the core hangs up, and the partner gets a clean 502.
    let anonymous = Gateway::start(&tls_config(backend, &trusted));
    let resp = client().get(anonymous.url("/x")).send().await.unwrap();
    assert_eq!(resp.status(), 502);
}
