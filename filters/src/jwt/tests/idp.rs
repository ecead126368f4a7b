//! Remote keys, against a local IdP served by the test: discovery, a JWKS the test rotates,
//! outages, and counted hits to check that the IdP is not hammered.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::rustls::{self, pki_types};

use super::*;

struct IdpState {
    base: String,
    issuer: Mutex<String>,
    jwks: Mutex<Value>,
    up: AtomicBool,
    discovery_hits: AtomicUsize,
    jwks_hits: AtomicUsize,
}

/// A local IdP: `/.well-known/openid-configuration`, `/jwks`, and two bad JWKS endpoints,
/// `/huge` (over the size limit) and `/redirect` (to `/jwks`).
struct Idp {
    state: Arc<IdpState>,
}

impl Idp {
    async fn start(kids: &[&str]) -> Idp {
        Idp::serve(kids, None).await
    }

    /// Over TLS, with a certificate for `localhost`.
    async fn start_tls(kids: &[&str], tls: rustls::ServerConfig) -> Idp {
        Idp::serve(kids, Some(tokio_rustls::TlsAcceptor::from(Arc::new(tls)))).await
    }

    async fn serve(kids: &[&str], tls: Option<tokio_rustls::TlsAcceptor>) -> Idp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let base = match tls {
            Some(_) => format!("https://localhost:{port}"),
            None => format!("http://127.0.0.1:{port}"),
        };
        let state = Arc::new(IdpState {
            issuer: Mutex::new(base.clone()),
            base,
            jwks: Mutex::new(jwks(kids)),
            up: AtomicBool::new(true),
            discovery_hits: AtomicUsize::new(0),
            jwks_hits: AtomicUsize::new(0),
        });
        let serving = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let state = Arc::clone(&serving);
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        None => answer(tcp, &state).await,
                        Some(tls) => {
                            if let Ok(stream) = tls.accept(tcp).await {
                                answer(stream, &state).await;
                            }
                        }
                    }
                });
            }
        });
        Idp { state }
    }

    fn base(&self) -> &str {
        &self.state.base
    }

    fn set_keys(&self, kids: &[&str]) {
        *self.state.jwks.lock().unwrap() = jwks(kids);
    }

    fn set_up(&self, up: bool) {
        self.state.up.store(up, Ordering::SeqCst);
    }

    fn jwks_hits(&self) -> usize {
        self.state.jwks_hits.load(Ordering::SeqCst)
    }

    fn discovery_hits(&self) -> usize {
        self.state.discovery_hits.load(Ordering::SeqCst)
    }

    /// A filter taking its keys from `source` (`discovery = true`, `jwks_url = ...`), with
    /// the IdP's base URL as issuer.
    fn filter(&self, source: &str, extra: &str) -> JwtFilter {
        let src = format!(
            "issuer = \"{}\"\naudiences = [\"{AUDIENCE}\"]\n{source}\n{extra}",
            self.base()
        );
        compile_in(&testdata(), &src).unwrap()
    }

    fn jwks_filter(&self, extra: &str) -> JwtFilter {
        self.filter(&format!("jwks_url = \"{}/jwks\"", self.base()), extra)
    }

    /// Valid claims for tokens of this IdP; `n` makes each token distinct.
    fn claims(&self, n: u32) -> Value {
        claims_with(json!({ "iss": self.base(), "jti": n }))
    }
}

/// Answers one HTTP/1.1 request and closes the connection.
async fn answer<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, state: &IdpState) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split(' ').nth(1).unwrap_or("/");
    let (status, location, body) = match path {
        "/.well-known/openid-configuration" => {
            state.discovery_hits.fetch_add(1, Ordering::SeqCst);
            let issuer = state.issuer.lock().unwrap().clone();
            let doc = json!({ "issuer": issuer, "jwks_uri": format!("{}/jwks", state.base) });
            ("200 OK", None, doc.to_string())
        }
        "/jwks" => {
            state.jwks_hits.fetch_add(1, Ordering::SeqCst);
            ("200 OK", None, state.jwks.lock().unwrap().to_string())
        }
        "/huge" => {
            state.jwks_hits.fetch_add(1, Ordering::SeqCst);
            let pad = "x".repeat(2 * 1024 * 1024);
            (
                "200 OK",
                None,
                json!({ "keys": [], "pad": pad }).to_string(),
            )
        }
        "/redirect" => (
            "302 Found",
            Some(format!("{}/jwks", state.base)),
            String::new(),
        ),
        _ => ("404 Not Found", None, String::new()),
    };
    let (status, body) = if state.up.load(Ordering::SeqCst) {
        (status, body)
    } else {
        ("503 Service Unavailable", String::new())
    };
    let location = location.map_or(String::new(), |l| format!("location: {l}\r\n"));
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         {location}connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Polls `done` every 20 ms for up to 5 s.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "timed out: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn discovery_fetches_keys_on_first_use() {
    let idp = Idp::start(&["test-rsa-a", "test-es256"]).await;
    let f = idp.filter("discovery = true", "");
    assert_eq!(
        (idp.discovery_hits(), idp.jwks_hits()),
        (0, 0),
        "build fetches nothing"
    );
    call(&f, &rsa_a().sign(&idp.claims(1))).await.passed();
    call(&f, &es256().sign(&idp.claims(2))).await.passed();
    assert_eq!((idp.discovery_hits(), idp.jwks_hits()), (1, 1));
}

#[tokio::test]
async fn discovery_must_describe_the_configured_issuer() {
    let idp = Idp::start(&["test-rsa-a"]).await;
    *idp.state.issuer.lock().unwrap() = "https://impostor.example".to_owned();
    let f = idp.filter("discovery = true", "");
    let (reply, ctx) = call(&f, &rsa_a().sign(&idp.claims(1))).await.refused();
    assert_eq!(reply.status, 503);
    assert_eq!(reply.problem.unwrap().kind, "auth-unavailable");
    assert_eq!(reply.headers["retry-after"], "30");
    assert_eq!(
        ctx.events,
        ["jwt_jwks_refresh_failed", "jwt_jwks_unavailable"]
    );
    assert_eq!(idp.jwks_hits(), 0);
}

#[tokio::test]
async fn rotation_new_kid_on_first_use_old_kid_until_removed() {
    let idp = Idp::start(&["test-rsa-a"]).await;
    let f = idp.jwks_filter("refetch_interval = \"200ms\"\njwks_ttl = \"1s\"");
    let old = rsa_a().sign(&idp.claims(1));
    call(&f, &old).await.passed();
    assert_eq!(idp.jwks_hits(), 1);

    // The IdP publishes its next key; a token signed with it works on first use.
    idp.set_keys(&["test-rsa-a", "test-rsa-b"]);
    tokio::time::sleep(Duration::from_millis(250)).await;
    call(&f, &rsa_b().sign(&idp.claims(2))).await.passed();
    assert_eq!(idp.jwks_hits(), 2);
    // The old key keeps working while it is published.
    call(&f, &old).await.passed();
    call(&f, &rsa_a().sign(&idp.claims(3))).await.passed();

    // The old key is withdrawn: once the set is stale, a background refresh drops it.
    idp.set_keys(&["test-rsa-b"]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, ctx) = call(&f, &rsa_b().sign(&idp.claims(4))).await.passed();
    assert!(
        ctx.events.is_empty(),
        "served from the stale set: {:?}",
        ctx.events
    );
    eventually("the refresh", || idp.jwks_hits() == 3).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    call(&f, &old).await.assert_invalid("jwt_unknown_kid");
    call(&f, &rsa_a().sign(&idp.claims(5)))
        .await
        .assert_invalid("jwt_unknown_kid");
}

#[tokio::test]
async fn an_idp_outage_keeps_the_cached_keys() {
    let idp = Idp::start(&["test-ed25519"]).await;
    let f = idp.jwks_filter("refetch_interval = \"200ms\"\njwks_ttl = \"1s\"\ncache_size = 0");
    let token = ed25519().sign(&idp.claims(1));
    call(&f, &token).await.passed();
    idp.set_up(false);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Stale, and every refresh fails: requests still pass, and a request counts the failure.
    let mut counted = false;
    let start = Instant::now();
    while !counted {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "no failure counted"
        );
        let (_, ctx) = call(&f, &token).await.passed();
        counted = ctx.events.contains(&"jwt_jwks_refresh_failed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Refreshes are retried at most once per refetch_interval, not once per request.
    let hits = idp.jwks_hits();
    for _ in 0..20 {
        call(&f, &token).await.passed();
    }
    assert!(
        idp.jwks_hits() <= hits + 1,
        "{} > {hits} + 1",
        idp.jwks_hits()
    );
}

#[tokio::test]
async fn unknown_kids_refetch_at_most_once_per_interval() {
    let idp = Idp::start(&["test-rsa-a"]).await;
    let f = Arc::new(idp.jwks_filter("refetch_interval = \"500ms\""));
    call(&f, &rsa_a().sign(&idp.claims(0))).await.passed();
    assert_eq!(idp.jwks_hits(), 1);
    tokio::time::sleep(Duration::from_millis(600)).await;
    // A burst of tokens with made-up kids, all at once: one refetch between them.
    let mut tasks = Vec::new();
    for n in 0..20 {
        let f = Arc::clone(&f);
        let mut signer = rsa_a();
        signer.kid = ["ghost-a", "ghost-b"][n % 2];
        let token = signer.sign(&idp.claims(n as u32));
        tasks.push(tokio::spawn(async move { call(&f, &token).await }));
    }
    for task in tasks {
        task.await.unwrap().assert_invalid("jwt_unknown_kid");
    }
    assert_eq!(idp.jwks_hits(), 2);
    let mut ghost = rsa_a();
    ghost.kid = "ghost-c";
    for n in 100..110 {
        call(&f, &ghost.sign(&idp.claims(n)))
            .await
            .assert_invalid("jwt_unknown_kid");
    }
    assert_eq!(idp.jwks_hits(), 2);
    tokio::time::sleep(Duration::from_millis(600)).await;
    call(&f, &ghost.sign(&idp.claims(200)))
        .await
        .assert_invalid("jwt_unknown_kid");
    assert_eq!(idp.jwks_hits(), 3);
}

#[tokio::test]
async fn no_keys_yet_answers_503_and_retries_after_the_interval() {
    let idp = Idp::start(&["test-es256"]).await;
    idp.set_up(false);
    let f = idp.jwks_filter("refetch_interval = \"300ms\"");
    let token = es256().sign(&idp.claims(1));
    let (reply, ctx) = call(&f, &token).await.refused();
    assert_eq!(reply.status, 503);
    assert_eq!(reply.headers["retry-after"], "1");
    assert!(!reply.headers.contains_key("www-authenticate"));
    assert_eq!(
        ctx.events,
        ["jwt_jwks_refresh_failed", "jwt_jwks_unavailable"]
    );
    let (_, ctx) = call(&f, &token).await.refused();
    assert_eq!(ctx.events, ["jwt_jwks_unavailable"]);
    assert_eq!(idp.jwks_hits(), 1, "the second request did not fetch");
    idp.set_up(true);
    tokio::time::sleep(Duration::from_millis(350)).await;
    call(&f, &token).await.passed();
    assert_eq!(idp.jwks_hits(), 2);
}

#[tokio::test]
async fn oversized_and_redirected_jwks_are_refused() {
    let idp = Idp::start(&["test-rsa-a"]).await;
    let token = rsa_a().sign(&idp.claims(1));
    for path in ["huge", "redirect"] {
        let f = idp.filter(&format!("jwks_url = \"{}/{path}\"", idp.base()), "");
        let (reply, _) = call(&f, &token).await.refused();
        assert_eq!(reply.status, 503, "{path}");
    }
    assert_eq!(idp.jwks_hits(), 1, "the redirect was not followed");
}

/// A CA and a `localhost` server certificate it signed: the CA's PEM and the server config.
fn tls_pki() -> (String, rustls::ServerConfig) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_pem = ca_params.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server_cert = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![server_cert.der().clone()],
            pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
        )
        .unwrap();
    (ca_pem, config)
}

#[tokio::test]
async fn https_idp_trusted_through_ca_file() {
    let (ca_pem, tls) = tls_pki();
    let idp = Idp::start_tls(&["test-es384"], tls).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("idp-ca.pem"), ca_pem).unwrap();
    let src = |ca: &str| {
        format!(
            "issuer = \"{ISSUER}\"\naudiences = [\"{AUDIENCE}\"]\nalgorithms = [\"ES384\"]\n\
             jwks_url = \"{}/jwks\"\n{ca}",
            idp.base()
        )
    };
    let token = es384().sign(&claims());
    let trusted = compile_in(dir.path(), &src("ca_file = \"idp-ca.pem\"")).unwrap();
    call(&trusted, &token).await.passed();
    assert_eq!(idp.jwks_hits(), 1);
    // Without the CA, the IdP's certificate is not trusted: no keys.
    let untrusted = compile_in(dir.path(), &src("")).unwrap();
    let (reply, _) = call(&untrusted, &token).await.refused();
    assert_eq!(reply.status, 503);
    assert_eq!(idp.jwks_hits(), 1);
}
