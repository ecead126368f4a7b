//! Tests of the `jwt` filter, with the test keys of `testdata/` (made once with openssl for
//! these tests only) and tokens signed at test time.

mod attacks;
mod cache;
mod claims;
mod config;
mod idp;
mod keys;
mod vectors;

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm as J, EncodingKey, Header};
use serde_json::{json, Value};

use super::filter::JwtFilter;
use super::JwtConfig;
use crate::{BuildContext, Filter, Flow, Reply, RequestContext};

pub(super) const ISSUER: &str = "https://idp.test/realms/partners";
pub(super) const AUDIENCE: &str = "corridor-api";

pub(super) fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/jwt/testdata")
}

pub(super) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The DER inside a PEM file of `testdata/`.
fn pem_der(file: &str) -> Vec<u8> {
    let pem = std::fs::read_to_string(testdata().join(file)).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).unwrap()
}

/// The public JWKs of `testdata/test-jwks.json` with these kids, as a JWKS document.
pub(super) fn jwks(kids: &[&str]) -> Value {
    let all: Value =
        serde_json::from_slice(&std::fs::read(testdata().join("test-jwks.json")).unwrap()).unwrap();
    let keys: Vec<Value> = all["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| kids.contains(&k["kid"].as_str().unwrap()))
        .cloned()
        .collect();
    assert_eq!(keys.len(), kids.len(), "unknown test kid in {kids:?}");
    json!({ "keys": keys })
}

/// A test private key and the `kid` its public half has in `test-jwks.json`.
pub(super) struct Signer {
    pub(super) kid: &'static str,
    pub(super) alg: J,
    key: EncodingKey,
}

pub(super) fn rsa_a() -> Signer {
    let key = EncodingKey::from_rsa_der(&pem_der("test-rsa-a.key.pem"));
    Signer {
        kid: "test-rsa-a",
        alg: J::RS256,
        key,
    }
}
pub(super) fn rsa_b() -> Signer {
    let key = EncodingKey::from_rsa_der(&pem_der("test-rsa-b.key.pem"));
    Signer {
        kid: "test-rsa-b",
        alg: J::RS256,
        key,
    }
}
pub(super) fn es256() -> Signer {
    let key = EncodingKey::from_ec_der(&pem_der("test-ec-p256.key.pem"));
    Signer {
        kid: "test-es256",
        alg: J::ES256,
        key,
    }
}
pub(super) fn es384() -> Signer {
    let key = EncodingKey::from_ec_der(&pem_der("test-ec-p384.key.pem"));
    Signer {
        kid: "test-es384",
        alg: J::ES384,
        key,
    }
}
pub(super) fn ed25519() -> Signer {
    let key = EncodingKey::from_ed_der(&pem_der("test-ed25519.key.pem"));
    Signer {
        kid: "test-ed25519",
        alg: J::EdDSA,
        key,
    }
}

impl Signer {
    /// A token over `claims` with this key's algorithm and kid.
    pub(super) fn sign(&self, claims: &Value) -> String {
        self.sign_as(self.alg, claims)
    }

    /// A token over `claims`, with another algorithm of the same key kind (PS256 with an RSA
    /// key, say).
    pub(super) fn sign_as(&self, alg: J, claims: &Value) -> String {
        let mut header = Header::new(alg);
        header.kid = Some(self.kid.to_owned());
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }

    /// A token with exactly this header and payload text, validly signed: reaches the
    /// checks that come after the signature.
    pub(super) fn sign_raw(&self, header: &str, payload: &str) -> String {
        let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
        let signature = jsonwebtoken::crypto::sign(input.as_bytes(), &self.key, self.alg).unwrap();
        format!("{input}.{signature}")
    }

    /// The JOSE header this key signs with, as JSON text.
    pub(super) fn header_json(&self) -> String {
        format!(r#"{{"alg":"{:?}","kid":"{}"}}"#, self.alg, self.kid)
    }
}

pub(super) fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Claims that pass the default test filter.
pub(super) fn claims() -> Value {
    let now = now();
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "partner-1",
        "iat": now,
        "exp": now + 300,
        "scope": "accounts:read payments:write",
    })
}

/// Claims with some members changed (`null` removes one).
pub(super) fn claims_with(changes: Value) -> Value {
    let mut claims = claims();
    for (name, value) in changes.as_object().unwrap() {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(name);
        } else {
            claims[name] = value.clone();
        }
    }
    claims
}

fn config_source(extra: &str) -> String {
    format!(
        "issuer = \"{ISSUER}\"\naudiences = [\"{AUDIENCE}\"]\njwks_file = \"test-jwks.json\"\n{extra}"
    )
}

pub(super) fn compile_in(dir: &Path, src: &str) -> Result<JwtFilter, String> {
    let config: JwtConfig = toml::from_str(src).map_err(|e| e.to_string())?;
    let ctx = BuildContext::new(dir);
    config.compile(&ctx).map_err(|e| e.0)
}

/// The filter over the JWKS file of `testdata/`, with these options added.
pub(super) fn filter(extra: &str) -> JwtFilter {
    compile_in(&testdata(), &config_source(extra)).unwrap()
}

pub(super) fn build_error(extra: &str) -> String {
    match compile_in(&testdata(), &config_source(extra)) {
        Ok(_) => panic!("built: {extra}"),
        Err(e) => e,
    }
}

pub(super) fn ctx() -> RequestContext {
    RequestContext::new("r-1".into(), "route".into(), None)
}

pub(super) fn request(headers: &[(&str, &str)]) -> http::request::Parts {
    let mut b = http::Request::builder().uri("/v1/accounts");
    for (name, value) in headers {
        b = b.header(*name, *value);
    }
    b.body(()).unwrap().into_parts().0
}

/// What one request got: the request as it goes upstream, or the filter's reply; and the
/// context (consumer, events).
pub(super) struct Outcome {
    pub(super) result: Result<http::request::Parts, Reply>,
    pub(super) ctx: RequestContext,
}

impl Outcome {
    pub(super) fn passed(self) -> (http::request::Parts, RequestContext) {
        match self.result {
            Ok(req) => (req, self.ctx),
            Err(reply) => panic!(
                "refused: {:?} {:?} events {:?}",
                reply.status, reply.headers, self.ctx.events
            ),
        }
    }

    pub(super) fn refused(self) -> (Reply, RequestContext) {
        match self.result {
            Err(reply) => (reply, self.ctx),
            Ok(_) => panic!("passed; events {:?}", self.ctx.events),
        }
    }

    /// A 401 `invalid_token` counted as `event`, with the generic detail.
    pub(super) fn assert_invalid(self, event: &str) {
        let (reply, ctx) = self.refused();
        assert_eq!(reply.status, 401, "{:?}", ctx.events);
        assert_eq!(
            challenge(&reply),
            "Bearer realm=\"corridor\", error=\"invalid_token\""
        );
        let problem = reply.problem.as_ref().unwrap();
        assert_eq!(problem.kind, "unauthorized");
        assert_eq!(
            problem.detail.as_deref(),
            Some("the access token is not valid")
        );
        assert!(
            ctx.events.contains(&event),
            "{event} not in {:?}",
            ctx.events
        );
        assert!(ctx.consumer.is_none());
    }
}

pub(super) fn challenge(reply: &Reply) -> &str {
    reply.headers["www-authenticate"].to_str().unwrap()
}

pub(super) async fn call_with(
    f: &JwtFilter,
    headers: &[(&str, &str)],
    mut ctx: RequestContext,
) -> Outcome {
    let mut req = request(headers);
    let result = match f.on_request(&mut req, &mut ctx).await {
        Flow::Continue => Ok(req),
        Flow::Respond(reply) => Err(reply),
    };
    Outcome { result, ctx }
}

/// One request with `Authorization: Bearer <token>`.
pub(super) async fn call(f: &JwtFilter, token: &str) -> Outcome {
    let auth = format!("Bearer {token}");
    call_with(f, &[("authorization", &auth)], ctx()).await
}
