//! HTTPS listeners: ALPN, SNI, TLS versions, mTLS and certificate reloads, against the real
//! gateway with certificates made at test time.
mod common;

use std::net::SocketAddr;
use std::path::Path;

use common::*;
use rcgen::SanType;
use reqwest::tls::Version;
use serde_json::Value;

const HOST: &str = "api.bank.test";

/// A gateway with an HTTPS listener in front of a demo core: `tls` is the body of
/// `[listeners.tls]`, `rest` more sections.
async fn https_gateway(tls: &str, rest: &str) -> Gateway {
    let core = demo_core("core").await;
    Gateway::start(&https_config(core, tls, rest))
}

fn https_config(core: SocketAddr, tls: &str, rest: &str) -> String {
    core_config(&[core], "", "", &format!("{CATCH_ALL}\n{rest}")).replacen(
        "[upstreams.core]",
        &format!("[listeners.tls]\n{tls}\n\n[upstreams.core]"),
        1,
    )
}

/// `[listeners.tls]` keys serving `cert` (written to `dir`), plus `extra`.
fn tls_keys(dir: &Path, cert: &Issued, extra: &str) -> String {
    let (crt, key) = cert.write(dir, "server");
    format!(
        "certificates = [{{ cert_file = \"{}\", key_file = \"{}\" }}]\n{extra}",
        crt.display(),
        key.display()
    )
}

/// A client that trusts only `ca`, reaches `names` at the gateway, and presents `identity`.
fn https_client(
    gw: &Gateway,
    ca: &TestCa,
    identity: Option<&Issued>,
    tweak: impl FnOnce(reqwest::ClientBuilder) -> reqwest::ClientBuilder,
) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca.root())
        .resolve(HOST, gw.addr())
        .resolve("acme.partners.bank.test", gw.addr())
        .timeout(std::time::Duration::from_secs(10));
    if let Some(identity) = identity {
        builder = builder.identity(identity.identity());
    }
    tweak(builder).build().unwrap()
}

fn url(gw: &Gateway, host: &str, path: &str) -> String {
    format!("https://{host}:{}{path}", gw.port)
}

/// The headers the core received, from the demo core's echo.
async fn echoed_headers(resp: reqwest::Response) -> serde_json::Value {
    assert_eq!(resp.status(), 200);
    resp.json::<serde_json::Value>().await.unwrap()["headers"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn serves_https_with_h2_and_http11_by_alpn() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("edge ca");
    let gw = https_gateway(&tls_keys(dir.path(), &ca.server(&[HOST]), ""), "").await;

    let h2 = https_client(&gw, &ca, None, |b| b);
    let resp = h2.get(url(&gw, HOST, "/test/echo")).send().await.unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), 200);

    let h1 = https_client(&gw, &ca, None, |b| b.http1_only());
    let resp = h1.get(url(&gw, HOST, "/test/echo")).send().await.unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    assert_eq!(resp.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn sni_chooses_the_certificate_of_the_name_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("edge ca");
    let (api_crt, api_key) = ca.server(&[HOST]).write(dir.path(), "api");
    let (wild_crt, wild_key) = ca
        .server(&["*.partners.bank.test"])
        .write(dir.path(), "partners");
    let tls = format!(
        "certificates = [\n  {{ cert_file = \"{}\", key_file = \"{}\" }},\n  {{ cert_file = \"{}\", key_file = \"{}\" }},\n]",
        api_crt.display(),
        api_key.display(),
        wild_crt.display(),
        wild_key.display()
    );
    let gw = https_gateway(&tls, "").await;
    // Each certificate is valid for its own name only: a wrong choice fails verification.
    let client = https_client(&gw, &ca, None, |b| b);
    for host in [HOST, "acme.partners.bank.test"] {
        let resp = client.get(url(&gw, host, "/test/echo")).send().await;
        assert_eq!(resp.unwrap().status(), 200, "{host}");
    }
}

/// A client that speaks TLS 1.2 only and offers no TLS 1.3 cipher suite, as OpenSSL-based
/// clients capped at 1.2 do.
fn tls12_client(gw: &Gateway, ca: &TestCa) -> reqwest::Client {
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .retain(|suite| suite.version() == &rustls::version::TLS12);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der.clone().into()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider.into())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .resolve(HOST, gw.addr())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn tls12_is_refused_unless_configured() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("edge ca");
    let cert = ca.server(&[HOST]);
    let target = |gw: &Gateway| url(gw, HOST, "/test/echo");

    let strict = https_gateway(&tls_keys(dir.path(), &cert, ""), "").await;
    let refused = tls12_client(&strict, &ca).get(target(&strict)).send().await;
    assert!(refused.is_err(), "a TLS 1.2 client got in: {refused:?}");
    // A client that offers TLS 1.3 suites yet caps at 1.2 (rustls does) gets through the
    // handshake; nothing it sends reaches the core.
    let capped = https_client(&strict, &ca, None, |b| b.max_tls_version(Version::TLS_1_2));
    let resp = capped.get(target(&strict)).send().await.unwrap();
    assert_problem(resp, 426, "tls-version-refused").await;
    let modern = https_client(&strict, &ca, None, |b| b.min_tls_version(Version::TLS_1_3));
    let resp = modern.get(target(&strict)).send().await;
    assert_eq!(resp.unwrap().status(), 200);

    let lenient = https_gateway(&tls_keys(dir.path(), &cert, "min_version = \"1.2\""), "").await;
    let resp = tls12_client(&lenient, &ca)
        .get(target(&lenient))
        .send()
        .await;
    assert_eq!(resp.unwrap().status(), 200);
}

/// `[listeners.tls]` asking for client certificates signed by `client_ca`.
fn mtls_keys(dir: &Path, server: &Issued, client_ca: &TestCa, mode: &str) -> String {
    let ca_file = client_ca.write(dir, "partners-ca.pem");
    tls_keys(
        dir,
        server,
        &format!(
            "client_auth = \"{mode}\"\nclient_ca_file = \"{}\"",
            ca_file.display()
        ),
    )
}

/// A chain forwarding the verified certificate's facts to the core.
const FORWARD_CERT: &str = r#"
[[routes]]
id = "echo"
priority = 10
upstream = "core"
chain = "certs"
[routes.match]
path_prefix = "/test/echo"

[chains.certs]
filters = [
  { type = "client_cert_headers", sha256 = "x-client-cert-sha256", subject = "x-client-subject" },
]
"#;

#[tokio::test(flavor = "multi_thread")]
async fn required_client_auth_admits_only_certificates_of_the_partner_ca() {
    let dir = tempfile::tempdir().unwrap();
    let edge = TestCa::new("edge ca");
    let partners = TestCa::new("partners ca");
    let stranger = TestCa::new("unknown ca");
    let tls = mtls_keys(dir.path(), &edge.server(&[HOST]), &partners, "required");
    let gw = https_gateway(&tls, FORWARD_CERT).await;
    let target = url(&gw, HOST, "/test/echo");

    let anonymous = https_client(&gw, &edge, None, |b| b);
    assert!(anonymous.get(&target).send().await.is_err());
    let forged = stranger.client("acme", vec![]);
    let wrong_ca = https_client(&gw, &edge, Some(&forged), |b| b);
    assert!(wrong_ca.get(&target).send().await.is_err());

    let acme = partners.client("acme", vec![]);
    let client = https_client(&gw, &edge, Some(&acme), |b| b);
    let headers = echoed_headers(client.get(&target).send().await.unwrap()).await;
    assert_eq!(headers["x-client-cert-sha256"], acme.sha256_hex());
    assert!(headers["x-client-subject"]
        .as_str()
        .unwrap()
        .contains("CN=acme"));
}

#[tokio::test(flavor = "multi_thread")]
async fn optional_client_auth_lets_the_route_decide_and_never_trusts_client_headers() {
    let dir = tempfile::tempdir().unwrap();
    let edge = TestCa::new("edge ca");
    let partners = TestCa::new("partners ca");
    let tls = mtls_keys(dir.path(), &edge.server(&[HOST]), &partners, "optional");
    let gw = https_gateway(&tls, FORWARD_CERT).await;
    let target = url(&gw, HOST, "/test/echo");

    let anonymous = https_client(&gw, &edge, None, |b| b);
    let resp = anonymous
        .get(&target)
        .header("x-client-cert-sha256", "forged")
        .send()
        .await
        .unwrap();
    let headers = echoed_headers(resp).await;
    assert!(headers.get("x-client-cert-sha256").is_none(), "{headers}");
    assert_eq!(headers["x-forwarded-proto"], "https");

    let acme = partners.client(
        "acme",
        vec![SanType::DnsName("acme.partners.test".try_into().unwrap())],
    );
    let client = https_client(&gw, &edge, Some(&acme), |b| b);
    let resp = client
        .get(&target)
        .header("x-client-cert-sha256", "forged")
        .send()
        .await
        .unwrap();
    let headers = echoed_headers(resp).await;
    assert_eq!(headers["x-client-cert-sha256"], acme.sha256_hex());
}

#[tokio::test(flavor = "multi_thread")]
async fn replaced_certificates_serve_after_a_reload_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let old_ca = TestCa::new("old ca");
    let new_ca = TestCa::new("new ca");
    let admin = free_port();
    let core = demo_core("core").await;
    let config = https_config(
        core,
        &tls_keys(dir.path(), &old_ca.server(&[HOST]), ""),
        &admin_section(admin, ""),
    );
    let gw = Gateway::start_with_admin(&config, admin);
    let old_client = https_client(&gw, &old_ca, None, |b| b);
    let resp = old_client.get(url(&gw, HOST, "/test/echo")).send().await;
    assert_eq!(resp.unwrap().status(), 200);

    new_ca.server(&[HOST]).write(dir.path(), "server");
    let reload = admin_call(admin, "POST", "/reload", None).await;
    assert_eq!(reload.status, 200, "{}", reload.body);

    let new_client = https_client(&gw, &new_ca, None, |b| b);
    let resp = new_client.get(url(&gw, HOST, "/test/echo")).send().await;
    assert_eq!(resp.unwrap().status(), 200);
    let stale = https_client(&gw, &old_ca, None, |b| b);
    assert!(stale
        .get(url(&gw, HOST, "/test/echo"))
        .send()
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_tls_settings_are_reported_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("edge ca");
    let (crt, _) = ca.server(&[HOST]).write(dir.path(), "server");
    let (_, other_key) = ca.server(&[HOST]).write(dir.path(), "other");
    let core: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let mismatched = format!(
        "certificates = [{{ cert_file = \"{}\", key_file = \"{}\" }}]\nclient_auth = \"required\"",
        crt.display(),
        other_key.display()
    );
    let checked = check(&https_config(core, &mismatched, "").replace("{port}", "8443"));
    assert!(!checked.ok, "{}", checked.stdout);
    assert!(
        checked.stderr.contains("does not fit the certificate"),
        "{}",
        checked.stderr
    );
    assert!(
        checked.stderr.contains("client_auth needs client_ca_file"),
        "{}",
        checked.stderr
    );
    // Errors point at the line in the file, and never print key material.
    assert!(
        checked.stderr.contains("corridor.toml:"),
        "{}",
        checked.stderr
    );
    assert!(
        !checked.stderr.contains("PRIVATE KEY"),
        "{}",
        checked.stderr
    );
}

#[test]
fn an_upstream_client_certificate_needs_its_key_and_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (crt, _) = TestCa::new("ca")
        .client("edge", vec![])
        .write(dir.path(), "edge");
    let core: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let config = simple_config(
        &[core],
        &format!("client_cert_file = \"{}\"", crt.display()),
        "",
    )
    .replace("{port}", "8080");
    let checked = check(&config);
    assert!(!checked.ok, "{}", checked.stdout);
    assert!(
        checked
            .stderr
            .contains("client_cert_file and client_key_file go together"),
        "{}",
        checked.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mtls_consumer_names_the_partner_by_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let edge = TestCa::new("edge ca");
    let partners = TestCa::new("partners ca");
    let acme = partners.client("acme-client", vec![]);
    let unknown = partners.client("initech-client", vec![]);
    let tls = mtls_keys(dir.path(), &edge.server(&[HOST]), &partners, "optional");
    let chain = format!(
        r#"
[[routes]]
id = "partners"
priority = 10
upstream = "core"
chain = "partners"
[routes.match]
path_prefix = "/test/echo"

[[chains.partners.filters]]
type = "mtls_consumer"
match_on = "sha256"
consumers = [{{ value = "{}", consumer = "acme" }}]
"#,
        acme.sha256_hex()
    );
    let gw = https_gateway(&tls, &chain).await;
    let target = url(&gw, HOST, "/test/echo");

    let resp = https_client(&gw, &edge, Some(&acme), |b| b)
        .get(&target)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = https_client(&gw, &edge, Some(&unknown), |b| b)
        .get(&target)
        .send()
        .await
        .unwrap();
    assert_problem(resp, 403, "forbidden").await;
    let resp = https_client(&gw, &edge, None, |b| b)
        .get(&target)
        .send()
        .await
        .unwrap();
    assert_problem(resp, 401, "client-certificate-required").await;

    let log = gw.settled_access_log().await;
    let consumers: Vec<&Value> = log.iter().map(|line| &line["consumer"]).collect();
    assert_eq!(
        consumers,
        [&Value::from("acme"), &Value::Null, &Value::Null]
    );
}
