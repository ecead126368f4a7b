//! Forged, altered and malformed tokens: each refused with a 401 and its own event.

use jsonwebtoken::{Algorithm as J, EncodingKey};
use serde_json::json;

use super::*;

#[tokio::test]
async fn each_algorithm_verifies_with_its_key() {
    let f = filter(r#"algorithms = ["RS256", "PS256", "PS512", "ES256", "ES384", "EdDSA"]"#);
    let tokens = [
        rsa_a().sign(&claims()),
        rsa_a().sign_as(J::PS256, &claims()),
        rsa_b().sign_as(J::PS512, &claims()),
        es256().sign(&claims()),
        es384().sign(&claims()),
        ed25519().sign(&claims()),
    ];
    for token in tokens {
        let (_, ctx) = call(&f, &token).await.passed();
        assert_eq!(ctx.consumer.unwrap().id, "partner-1");
        assert!(ctx.events.is_empty(), "{:?}", ctx.events);
    }
}

#[tokio::test]
async fn alg_none_is_refused() {
    let f = filter("");
    let payload = b64(claims().to_string().as_bytes());
    for header in [
        r#"{"alg":"none","kid":"test-rsa-a"}"#,
        r#"{"alg":"None","kid":"test-rsa-a"}"#,
    ] {
        let unsigned = format!("{}.{payload}.", b64(header.as_bytes()));
        call(&f, &unsigned).await.assert_invalid("jwt_malformed");
        // With something in the signature's place, the header itself is refused.
        let faked = format!("{}.{payload}.AAAA", b64(header.as_bytes()));
        call(&f, &faked).await.assert_invalid("jwt_disallowed_alg");
    }
}

#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key_is_refused() {
    let f = filter("");
    // The key confusion attack: the public key (as the JWKS publishes it) as an HMAC secret.
    let public_jwk = jwks(&["test-rsa-a"])["keys"][0].to_string();
    let n = URL_SAFE_NO_PAD
        .decode(jwks(&["test-rsa-a"])["keys"][0]["n"].as_str().unwrap())
        .unwrap();
    for secret in [public_jwk.as_bytes(), &n] {
        let mut header = jsonwebtoken::Header::new(J::HS256);
        header.kid = Some("test-rsa-a".to_owned());
        let token =
            jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_secret(secret)).unwrap();
        call(&f, &token).await.assert_invalid("jwt_disallowed_alg");
    }
}

#[tokio::test]
async fn algorithms_outside_the_allowed_list_are_refused() {
    let f = filter(r#"algorithms = ["ES256"]"#);
    call(&f, &rsa_a().sign(&claims()))
        .await
        .assert_invalid("jwt_disallowed_alg");
    // RS384 is a real algorithm, but not in the default list.
    let f = filter("");
    call(&f, &rsa_a().sign_as(J::RS384, &claims()))
        .await
        .assert_invalid("jwt_disallowed_alg");
    // ES512 (RFC 7520 §4.3) is not supported at all.
    let header = b64(br#"{"alg":"ES512","kid":"test-es256"}"#);
    let token = format!("{header}.{}.AAAA", b64(claims().to_string().as_bytes()));
    call(&f, &token).await.assert_invalid("jwt_disallowed_alg");
}

#[tokio::test]
async fn the_key_must_fit_the_algorithm() {
    let f = filter("");
    // Signed by the EC key, but naming the RSA key's kid: the RSA key never verifies ES256.
    let mut signer = es256();
    signer.kid = "test-rsa-a";
    call(&f, &signer.sign(&claims()))
        .await
        .assert_invalid("jwt_alg_key_mismatch");
    // And the other way round.
    let mut signer = rsa_a();
    signer.kid = "test-es256";
    call(&f, &signer.sign(&claims()))
        .await
        .assert_invalid("jwt_alg_key_mismatch");
}

#[tokio::test]
async fn unknown_and_hostile_kids_are_refused() {
    let f = filter("");
    let mut signer = rsa_a();
    signer.kid = "no-such-key";
    call(&f, &signer.sign(&claims()))
        .await
        .assert_invalid("jwt_unknown_kid");
    for kid in [
        "../../etc/passwd",
        "' OR 1=1 --",
        "a/b",
        "",
        &"k".repeat(129),
    ] {
        let header = format!(r#"{{"alg":"RS256","kid":{}}}"#, json!(kid));
        let token = rsa_a().sign_raw(&header, &claims().to_string());
        call(&f, &token).await.assert_invalid("jwt_bad_kid");
    }
    // No kid at all.
    let token = rsa_a().sign_raw(r#"{"alg":"RS256"}"#, &claims().to_string());
    call(&f, &token).await.assert_invalid("jwt_bad_kid");
}

#[tokio::test]
async fn tampered_payload_and_stripped_signature_are_refused() {
    let f = filter("");
    let token = rsa_a().sign(&claims());
    let parts: Vec<&str> = token.split('.').collect();
    let forged = b64(claims_with(json!({"sub": "admin"})).to_string().as_bytes());
    let tampered = format!("{}.{forged}.{}", parts[0], parts[2]);
    call(&f, &tampered)
        .await
        .assert_invalid("jwt_bad_signature");
    // A signature from another key under the same kid.
    let mut other = rsa_b();
    other.kid = "test-rsa-a";
    call(&f, &other.sign(&claims()))
        .await
        .assert_invalid("jwt_bad_signature");
    // One bit of the signature flipped.
    let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    sig[10] ^= 1;
    let flipped = format!("{}.{}.{}", parts[0], parts[1], b64(&sig));
    call(&f, &flipped).await.assert_invalid("jwt_bad_signature");
    for stripped in [
        format!("{}.{}.", parts[0], parts[1]),
        format!("{}.{}", parts[0], parts[1]),
    ] {
        call(&f, &stripped).await.assert_invalid("jwt_malformed");
    }
}

#[tokio::test]
async fn malformed_base64_and_json_are_refused() {
    let f = filter("");
    let good = rsa_a().sign(&claims());
    let parts: Vec<&str> = good.split('.').collect();
    for bad in [
        "not-a-jwt".to_owned(),
        format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}+.{}", parts[0], parts[1], parts[2]),
        format!("A.{}.{}", parts[1], parts[2]),
        format!(
            "{}.{}.{}.{}.{}",
            parts[0], parts[1], parts[2], parts[1], parts[2]
        ),
        format!("{}.{}.{}", b64(b"{not json"), parts[1], parts[2]),
    ] {
        call(&f, &bad).await.assert_invalid("jwt_malformed");
    }
    // Validly signed, so these reach the payload checks.
    let header = rsa_a().header_json();
    for payload in ["{not json", "[1,2]", "\"sub\"", "", "{\"exp\":1}{}"] {
        let token = rsa_a().sign_raw(&header, payload);
        call(&f, &token).await.assert_invalid("jwt_malformed");
    }
}

#[tokio::test]
async fn duplicate_claims_are_refused() {
    let f = filter("");
    let exp = now() + 300;
    let payload = format!(
        r#"{{"iss":"{ISSUER}","aud":"{AUDIENCE}","exp":{exp},"sub":"partner-1","sub":"admin"}}"#
    );
    let token = rsa_a().sign_raw(&rsa_a().header_json(), &payload);
    call(&f, &token).await.assert_invalid("jwt_malformed");
    // A repeated header member too.
    let header = r#"{"alg":"RS256","kid":"test-rsa-b","kid":"test-rsa-a"}"#;
    let token = rsa_a().sign_raw(header, &claims().to_string());
    call(&f, &token).await.assert_invalid("jwt_malformed");
}

#[tokio::test]
async fn unknown_critical_header_is_refused() {
    let f = filter("");
    let header = r#"{"alg":"RS256","kid":"test-rsa-a","crit":["b64"],"b64":false}"#;
    let token = rsa_a().sign_raw(header, &claims().to_string());
    call(&f, &token)
        .await
        .assert_invalid("jwt_unsupported_header");
}

#[tokio::test]
async fn oversized_tokens_are_refused_before_parsing() {
    let f = filter("");
    let padded = |n: usize| rsa_a().sign(&claims_with(json!({ "pad": "x".repeat(n) })));
    // Find a padding that lands just under and just over the limit.
    let base = padded(0).len();
    let under = padded((8192 - base) * 3 / 4 - 16);
    assert!(under.len() <= 8192);
    call(&f, &under).await.passed();
    let over = padded((8192 - base) * 3 / 4 + 16);
    assert!(over.len() > 8192);
    call(&f, &over).await.assert_invalid("jwt_too_large");
    // Garbage is refused on size alone.
    call(&f, &"x".repeat(100_000))
        .await
        .assert_invalid("jwt_too_large");
    let small = filter("max_token_bytes = 100");
    call(&small, &rsa_a().sign(&claims()))
        .await
        .assert_invalid("jwt_too_large");
}

#[tokio::test]
async fn authorization_header_forms() {
    let f = filter("");
    let token = rsa_a().sign(&claims());
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let value = format!("{scheme} {token}");
        call_with(&f, &[("authorization", &value)], ctx())
            .await
            .passed();
    }
    // No token, or another scheme: a challenge without an error code (RFC 6750 §3.1).
    for headers in [
        vec![],
        vec![("authorization", "Basic dXNlcjpwYXNz")],
        vec![("authorization", "Bearer")],
        vec![("authorization", "Bearer   ")],
        vec![("x-token", token.as_str())],
    ] {
        let (reply, ctx) = call_with(&f, &headers, ctx()).await.refused();
        assert_eq!(reply.status, 401);
        assert_eq!(challenge(&reply), "Bearer realm=\"corridor\"");
        let problem = reply.problem.unwrap();
        assert_eq!(problem.kind, "unauthorized");
        assert_eq!(
            problem.detail.as_deref(),
            Some("an access token is required")
        );
        assert_eq!(ctx.events, ["jwt_missing"]);
    }
    // Two Authorization headers: which one counts would be a guess.
    let value = format!("Bearer {token}");
    call_with(
        &f,
        &[("authorization", &value), ("authorization", &value)],
        ctx(),
    )
    .await
    .assert_invalid("jwt_malformed");
}

#[tokio::test]
async fn replies_never_echo_the_token() {
    let f = filter("");
    let token = rsa_a().sign(&claims_with(json!({"aud": "other"})));
    let (reply, _) = call(&f, &token).await.refused();
    let body = String::from_utf8(reply.problem.unwrap().to_json("r-1")).unwrap();
    let signature = token.rsplit('.').next().unwrap();
    assert!(!body.contains(signature), "{body}");
    assert!(!body.contains("aud"), "{body}");
    for value in reply.headers.values() {
        assert!(!value.to_str().unwrap().contains(signature));
    }
}
