//! The jwt filter through the real gateway: bearer tokens in, the consumer and its claims
//! out to the core, RFC 6750 refusals, and certificate-bound tokens (RFC 8705) over an mTLS
//! listener.
mod common;

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/filters/src/jwt/testdata");
const ISSUER: &str = "https://idp.bank.test/realms/partners";
const HOST: &str = "api.bank.test";

/// The jwt chain on route "accounts" (`/test/echo`), needing `accounts:read`, forwarding
/// `sub` and `tenant`; then `extra` (more TOML).
fn jwt_config(core: SocketAddr, jwt_extra: &str, extra: &str) -> String {
    simple_config(
        &[core],
        "",
        &format!(
            r#"
[[chains.partners.filters]]
type = "jwt"
issuer = "{ISSUER}"
audiences = ["corridor-api"]
jwks_file = "{TESTDATA}/test-jwks.json"
required_scopes = ["accounts:read"]
forward_claims = {{ sub = "x-consumer-id", tenant = "x-consumer-tenant" }}
{jwt_extra}

[[routes]]
id = "accounts"
priority = 10
upstream = "core"
chain = "partners"
[routes.match]
path_prefix = "/test/echo"
{extra}
"#
        ),
    )
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An ES256 token with the usual claims, `changes` merged over them.
fn token(changes: Value) -> String {
    let pem = std::fs::read_to_string(format!("{TESTDATA}/test-ec-p256.key.pem")).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let key = EncodingKey::from_ec_der(&STANDARD.decode(body).unwrap());
    let mut claims = json!({
        "iss": ISSUER,
        "aud": "corridor-api",
        "sub": "acme",
        "tenant": "retail",
        "iat": now(),
        "exp": now() + 600,
        "scope": "accounts:read payments:write",
    });
    for (name, value) in changes.as_object().unwrap() {
        claims[name] = value.clone();
    }
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("test-es256".into());
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_valid_token_reaches_the_core_as_its_consumer_with_its_claims() {
    let core = demo_core("core").await;
    let gw = Gateway::start(&jwt_config(core, "", ""));
    let resp = client()
        .get(gw.url("/test/echo"))
        .header("authorization", bearer(&token(json!({}))))
        .header("x-consumer-tenant", "forged")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let echo: Value = resp.json().await.unwrap();
    assert_eq!(echo["headers"]["x-consumer-id"], "acme", "{echo}");
    assert_eq!(echo["headers"]["x-consumer-tenant"], "retail", "{echo}");

    let log = gw.settled_access_log().await;
    assert_eq!(log.last().unwrap()["consumer"], "acme", "{log:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_are_rfc6750_problems_and_the_core_is_not_called() {
    let core = demo_core("core").await;
    let admin = free_port();
    let gw = Gateway::start_with_admin(&jwt_config(core, "", &admin_section(admin, "")), admin);
    let before = hits(core).await;
    let cases = [
        (None, 401, "unauthorized", "Bearer realm=\"corridor\""),
        (
            Some(token(json!({ "exp": now() - 3600 }))),
            401,
            "unauthorized",
            "error=\"invalid_token\"",
        ),
        (
            Some(token(json!({ "aud": "another-api" }))),
            401,
            "unauthorized",
            "error=\"invalid_token\"",
        ),
        (
            Some(token(json!({ "scope": "payments:write" }))),
            403,
            "forbidden",
            "error=\"insufficient_scope\"",
        ),
    ];
    for (token, status, kind, challenge) in cases {
        let mut request = client().get(gw.url("/test/echo"));
        if let Some(token) = &token {
            request = request.header("authorization", bearer(token));
        }
        let resp = request.send().await.unwrap();
        let www = header(&resp, "www-authenticate")
            .unwrap_or_default()
            .to_owned();
        assert!(www.contains(challenge), "{www}");
        let (body, _) = assert_titled_problem(resp, status, kind).await;
        if let Some(token) = &token {
            assert!(!body.contains(token.as_str()), "{body}");
        }
    }
    assert_eq!(hits(core).await, before, "the core saw a refused call");
    let metrics = admin_metrics(admin).await;
    for event in [
        "jwt_missing",
        "jwt_expired",
        "jwt_wrong_audience",
        "jwt_insufficient_scope",
    ] {
        let count = must_metric(
            &metrics,
            "corridor_filter_events_total",
            &[("route", "accounts"), ("event", event)],
        );
        assert_eq!(count, 1.0, "{event}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_bound_token_needs_the_certificate_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let edge = TestCa::new("edge ca");
    let partners = TestCa::new("partners ca");
    let (crt, key) = edge.server(&[HOST]).write(dir.path(), "server");
    let partners_ca = partners.write(dir.path(), "partners-ca.pem");
    let core = demo_core("core").await;
    let tls = format!(
        "[listeners.tls]\ncertificates = [{{ cert_file = \"{}\", key_file = \"{}\" }}]\n\
         client_auth = \"optional\"\nclient_ca_file = \"{}\"\n\n[upstreams.core]",
        crt.display(),
        key.display(),
        partners_ca.display()
    );
    let config = jwt_config(core, "", "").replacen("[upstreams.core]", &tls, 1);
    let gw = Gateway::start(&config);

    let acme = partners.client("acme", vec![]);
    let thumbprint = URL_SAFE_NO_PAD.encode(sha2::Digest::finalize(
        <sha2::Sha256 as sha2::Digest>::new_with_prefix(&acme.der),
    ));
    let bound = token(json!({ "cnf": { "x5t#S256": thumbprint } }));
    let call = |identity: Option<&Issued>| {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(edge.root())
            .resolve(HOST, gw.addr());
        if let Some(identity) = identity {
            builder = builder.identity(identity.identity());
        }
        builder
            .build()
            .unwrap()
            .get(format!("https://{HOST}:{}/test/echo", gw.port))
            .header("authorization", bearer(&bound))
            .send()
    };

    assert_eq!(call(Some(&acme)).await.unwrap().status(), 200);
    let other = partners.client("globex", vec![]);
    assert_problem(call(Some(&other)).await.unwrap(), 401, "unauthorized").await;
    assert_problem(call(None).await.unwrap(), 401, "unauthorized").await;
}
