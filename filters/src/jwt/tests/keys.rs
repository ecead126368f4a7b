//! Reading JWKS documents: which keys are usable, and for which algorithms.

use serde_json::json;

use super::super::alg::Algorithm;
use super::super::keys::{KeySet, Lookup};
use super::jwks;

fn parse(doc: serde_json::Value) -> Result<KeySet, String> {
    KeySet::parse(doc.to_string().as_bytes())
}

fn rsa_jwk() -> serde_json::Value {
    jwks(&["test-rsa-a"])["keys"][0].clone()
}

#[test]
fn keys_are_picked_by_kid_and_algorithm() {
    let set = parse(jwks(&["test-rsa-a", "test-es256", "test-ed25519"])).unwrap();
    assert!(matches!(
        set.lookup("test-rsa-a", Algorithm::Rs256),
        Lookup::Found(_)
    ));
    assert!(matches!(
        set.lookup("test-rsa-a", Algorithm::Ps512),
        Lookup::Found(_)
    ));
    assert!(matches!(
        set.lookup("test-rsa-a", Algorithm::Es256),
        Lookup::WrongAlgorithm
    ));
    assert!(matches!(
        set.lookup("test-es256", Algorithm::Es384),
        Lookup::WrongAlgorithm
    ));
    assert!(matches!(
        set.lookup("test-ed25519", Algorithm::EdDsa),
        Lookup::Found(_)
    ));
    assert!(matches!(
        set.lookup("nope", Algorithm::Rs256),
        Lookup::Unknown
    ));
}

#[test]
fn a_jwk_alg_restricts_its_key() {
    let mut jwk = rsa_jwk();
    jwk["alg"] = json!("PS256");
    let set = parse(json!({ "keys": [jwk] })).unwrap();
    assert!(matches!(
        set.lookup("test-rsa-a", Algorithm::Ps256),
        Lookup::Found(_)
    ));
    assert!(matches!(
        set.lookup("test-rsa-a", Algorithm::Rs256),
        Lookup::WrongAlgorithm
    ));
}

#[test]
fn unusable_keys_are_skipped() {
    let good = jwks(&["test-es256"])["keys"][0].clone();
    let mut short_rsa = rsa_jwk();
    // A 1024-bit modulus.
    short_rsa["n"] = json!(super::b64(&[0xC5; 128]));
    let with = |change: serde_json::Value| {
        let mut jwk = rsa_jwk();
        for (k, v) in change.as_object().unwrap() {
            jwk[k] = v.clone();
        }
        jwk
    };
    for bad in [
        short_rsa,
        with(json!({"use": "enc"})),
        with(json!({"key_ops": ["encrypt"]})),
        with(json!({"alg": "ES256"})),
        with(json!({"alg": "HS256"})),
        with(json!({"kid": "../x"})),
        with(json!({"kid": 7})),
        with(json!({"n": "not base64!"})),
        json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}),
        json!({"kty": "EC", "kid": "p521", "crv": "P-521", "x": "AA", "y": "AA"}),
        json!({"kty": "EC", "kid": "short", "crv": "P-256", "x": "AAAA", "y": "AAAA"}),
        json!({"kty": "OKP", "kid": "x448", "crv": "Ed448", "x": "AAAA"}),
    ] {
        let set = parse(json!({ "keys": [bad.clone(), good.clone()] })).unwrap();
        let kid = bad["kid"].as_str().unwrap_or("test-rsa-a");
        assert!(!set.knows(kid), "{bad}");
        assert!(set.knows("test-es256"));
    }
}

#[test]
fn a_document_without_usable_keys_is_refused() {
    for doc in [
        json!({ "keys": [] }),
        json!({ "keys": [{"kty": "oct", "kid": "k", "k": "c2VjcmV0"}] }),
        json!({ "keys": "none" }),
        json!({ "keys": [1] }),
        json!({ "keys": vec![rsa_jwk(); 101] }),
        json!([]),
    ] {
        assert!(parse(doc.clone()).is_err(), "{doc}");
    }
}

#[test]
fn the_fingerprint_follows_the_key_not_the_kid() {
    let a = parse(jwks(&["test-rsa-a"])).unwrap();
    let mut renamed = jwks(&["test-rsa-b"]);
    renamed["keys"][0]["kid"] = json!("test-rsa-a");
    let b = parse(renamed).unwrap();
    let Lookup::Found(key_a) = a.lookup("test-rsa-a", Algorithm::Rs256) else {
        panic!()
    };
    assert!(a.holds("test-rsa-a", &key_a.fingerprint));
    assert!(
        !b.holds("test-rsa-a", &key_a.fingerprint),
        "replaced under the same kid"
    );
    let again = parse(jwks(&["test-rsa-a"])).unwrap();
    assert!(
        again.holds("test-rsa-a", &key_a.fingerprint),
        "same key, refetched"
    );
}
