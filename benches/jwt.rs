//! What checking a JWT costs: one `on_request` of the `jwt` filter, per signature algorithm,
//! on a cache miss and on a cache hit.
//!
//! - miss: a filter with `cache_size = 0`, so every call does the whole check: parse the
//!   token, look up the key, verify the signature, check the claims.
//! - hit: a filter with the default cache, warmed with the token, so every call hashes the
//!   token, finds it and re-checks its time window, key and scopes, without the signature.
//!
//! Keys come from the filter crate's test JWKS file (no network). Each sample runs its
//! iterations inside one `block_on` of a current-thread runtime, so the runtime's cost is
//! paid once per sample, not once per call.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use corridor_filters::{BuildContext, Filter, FilterConfig, Flow, RequestContext};
use criterion::{criterion_group, criterion_main, Criterion};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tokio::runtime::Runtime;

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/filters/src/jwt/testdata");
const ISSUER: &str = "https://idp.bench/realms/partners";

fn build(extra: &str) -> Arc<dyn Filter> {
    let src = format!(
        "type = \"jwt\"\nissuer = \"{ISSUER}\"\naudiences = [\"corridor-api\"]\n\
         jwks_file = \"test-jwks.json\"\nrequired_scopes = [\"accounts:read\"]\n{extra}"
    );
    toml::from_str::<FilterConfig>(&src)
        .unwrap()
        .build(&BuildContext::new(TESTDATA))
        .unwrap()
}

/// The DER inside a PEM test key.
fn der(file: &str) -> Vec<u8> {
    let pem = std::fs::read_to_string(format!("{TESTDATA}/{file}")).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).unwrap()
}

/// A token like an IdP's access token, valid for an hour.
fn token(alg: Algorithm, kid: &str, key: &EncodingKey) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "iss": ISSUER,
        "aud": "corridor-api",
        "sub": "partner-1",
        "azp": "partner-1-app",
        "iat": now,
        "exp": now + 3600,
        "jti": "6f1c9c5e-2b7a-4d0e-9a51-0c7e9c3b1f00",
        "scope": "accounts:read payments:write",
    });
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, &claims, key).unwrap()
}

fn request(token: &str) -> http::request::Parts {
    http::Request::builder()
        .uri("/v1/accounts")
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap()
        .into_parts()
        .0
}

/// Runs `iters` calls in one `block_on` and returns the time they took. Panics on a refused
/// call, which would skew the figure. The filter leaves the request as it found it (no claim
/// headers configured, the token kept), so one request serves every call.
fn run(rt: &Runtime, f: &dyn Filter, req: &mut http::request::Parts, iters: u64) -> Duration {
    let mut ctx = RequestContext::new("r-1".into(), "route".into(), None);
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            ctx.events.clear();
            let flow = black_box(f.on_request(req, &mut ctx).await);
            assert!(matches!(flow, Flow::Continue), "refused: {flow:?}");
        }
        start.elapsed()
    })
}

fn verify(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rsa = EncodingKey::from_rsa_der(&der("test-rsa-a.key.pem"));
    let cases = [
        ("RS256", Algorithm::RS256, "test-rsa-a", rsa.clone()),
        ("PS256", Algorithm::PS256, "test-rsa-a", rsa),
        (
            "ES256",
            Algorithm::ES256,
            "test-es256",
            EncodingKey::from_ec_der(&der("test-ec-p256.key.pem")),
        ),
        (
            "EdDSA",
            Algorithm::EdDSA,
            "test-ed25519",
            EncodingKey::from_ed_der(&der("test-ed25519.key.pem")),
        ),
    ];
    let miss = build("cache_size = 0");
    let hit = build("");
    let mut group = c.benchmark_group("jwt");
    for (name, alg, kid, key) in &cases {
        let mut req = request(&token(*alg, kid, key));
        group.bench_function(format!("{name}/miss"), |b| {
            b.iter_custom(|iters| run(&rt, &*miss, &mut req, iters))
        });
        // Warm: the first call verifies and caches.
        run(&rt, &*hit, &mut req, 1);
        group.bench_function(format!("{name}/hit"), |b| {
            b.iter_custom(|iters| run(&rt, &*hit, &mut req, iters))
        });
    }
    group.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
