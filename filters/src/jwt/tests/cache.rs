//! The verified-token cache: hits skip the signature but not the per-request checks, entries
//! die with their token, and the cache stays within its size.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::ClientCertificate;

#[tokio::test]
async fn a_second_call_is_a_cache_hit_with_the_same_result() {
    let f = filter(r#"forward_claims = { "sub" = "x-consumer-id" }"#);
    let token = rsa_a().sign(&claims());
    let (_, first) = call(&f, &token).await.passed();
    assert!(first.events.is_empty(), "{:?}", first.events);
    let (req, second) = call(&f, &token).await.passed();
    assert_eq!(second.events, ["jwt_cache_hit"]);
    assert_eq!(second.consumer, first.consumer);
    assert_eq!(req.headers["x-consumer-id"], "partner-1");
    assert_eq!(f.cache.len(), 1);
}

#[tokio::test]
async fn a_cached_token_is_refused_once_expired() {
    let f = filter(r#"leeway = "0s""#);
    let exp = now() + 2;
    let token = rsa_a().sign(&claims_with(json!({ "exp": exp })));
    call(&f, &token).await.passed();
    let (_, ctx) = call(&f, &token).await.passed();
    assert_eq!(ctx.events, ["jwt_cache_hit"]);
    while now() < exp {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (reply, ctx) = call(&f, &token).await.refused();
    assert_eq!(reply.status, 401);
    assert_eq!(ctx.events, ["jwt_expired"], "never a hit past exp");
    assert_eq!(f.cache.len(), 0);
}

#[tokio::test]
async fn a_cache_hit_still_checks_the_binding_and_scopes() {
    let thumbprint = [3u8; 32];
    let cert = Arc::new(ClientCertificate {
        subject: "CN=p".into(),
        common_name: None,
        dns_names: vec![],
        uris: vec![],
        emails: vec![],
        sha256: thumbprint,
    });
    let f = filter("");
    let token = rsa_a().sign(&claims_with(json!({"cnf": {"x5t#S256": b64(&thumbprint)}})));
    let auth = format!("Bearer {token}");
    let headers = [("authorization", auth.as_str())];
    let with_cert = || {
        let mut ctx = ctx();
        ctx.client_cert = Some(cert.clone());
        ctx
    };
    call_with(&f, &headers, with_cert()).await.passed();
    // Cached now, but this connection has no certificate.
    let (_, refused) = call_with(&f, &headers, ctx()).await.refused();
    assert_eq!(refused.events, ["jwt_cache_hit", "jwt_unbound_cert"]);
    let (_, ok) = call_with(&f, &headers, with_cert()).await.passed();
    assert_eq!(ok.events, ["jwt_cache_hit"]);

    let f = filter(r#"required_scopes = ["admin"]"#);
    let token = rsa_a().sign(&claims());
    for events in [
        &["jwt_insufficient_scope"][..],
        &["jwt_cache_hit", "jwt_insufficient_scope"],
    ] {
        let (reply, ctx) = call(&f, &token).await.refused();
        assert_eq!(reply.status, 403);
        assert_eq!(ctx.events, events);
    }
}

#[tokio::test]
async fn the_cache_stays_within_its_size() {
    let f = filter("cache_size = 8");
    for n in 0..50 {
        let token = es256().sign(&claims_with(json!({ "jti": n })));
        call(&f, &token).await.passed();
        assert!(f.cache.len() <= 8, "{}", f.cache.len());
    }
    // The tokens closest to expiry go first.
    let short = es256().sign(&claims_with(json!({ "exp": now() + 60 })));
    let f = filter("cache_size = 4");
    call(&f, &short).await.passed();
    for n in 0..4 {
        call(&f, &es256().sign(&claims_with(json!({ "jti": n }))))
            .await
            .passed();
    }
    let (_, ctx) = call(&f, &short).await.passed();
    assert!(ctx.events.is_empty(), "evicted, so verified again");
}

#[tokio::test]
async fn cache_size_zero_turns_the_cache_off() {
    let f = filter("cache_size = 0");
    let token = ed25519().sign(&claims());
    for _ in 0..3 {
        let (_, ctx) = call(&f, &token).await.passed();
        assert!(ctx.events.is_empty());
    }
    assert_eq!(f.cache.len(), 0);
}
