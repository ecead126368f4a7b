//! Claims checks and what a valid token gives the request: times, issuer, audience, scopes,
//! consumer, forwarded claims and certificate binding.

use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::ClientCertificate;

#[tokio::test]
async fn times_are_checked_with_leeway() {
    let f = filter("");
    let now = now();
    // Expired: 401 that may say so.
    let token = rsa_a().sign(&claims_with(json!({"exp": now - 60})));
    let (reply, ctx) = call(&f, &token).await.refused();
    assert_eq!(reply.status, 401);
    assert_eq!(
        challenge(&reply),
        "Bearer realm=\"corridor\", error=\"invalid_token\", \
         error_description=\"the access token has expired\""
    );
    let detail = reply.problem.unwrap().detail;
    assert_eq!(detail.as_deref(), Some("the access token has expired"));
    assert_eq!(ctx.events, ["jwt_expired"]);
    // Within the default 30 s of leeway, on either side.
    for changes in [
        json!({"exp": now - 10}),
        json!({"nbf": now + 10}),
        json!({"iat": now + 10}),
        json!({"exp": (now + 60) as f64 + 0.5}),
    ] {
        call(&f, &rsa_a().sign(&claims_with(changes)))
            .await
            .passed();
    }
    for (changes, event) in [
        (json!({"nbf": now + 120}), "jwt_not_yet_valid"),
        (json!({"iat": now + 120}), "jwt_not_yet_valid"),
        (json!({"exp": null}), "jwt_missing_exp"),
        (json!({"exp": "tomorrow"}), "jwt_invalid_claims"),
        (json!({"nbf": true}), "jwt_invalid_claims"),
    ] {
        call(&f, &rsa_a().sign(&claims_with(changes)))
            .await
            .assert_invalid(event);
    }
    let strict = filter(r#"leeway = "0s""#);
    call(
        &strict,
        &rsa_a().sign(&claims_with(json!({"exp": now - 1}))),
    )
    .await
    .refused();
}

#[tokio::test]
async fn issuer_and_audience_must_match() {
    let src = format!(
        "issuer = \"{ISSUER}\"\naudiences = [\"corridor-api\", \"legacy-api\"]\n\
         jwks_file = \"test-jwks.json\""
    );
    let f = compile_in(&testdata(), &src).unwrap();
    for changes in [
        json!({"aud": "legacy-api"}),
        json!({"aud": ["other", "corridor-api"]}),
    ] {
        call(&f, &rsa_a().sign(&claims_with(changes)))
            .await
            .passed();
    }
    for (changes, event) in [
        (json!({"iss": "https://evil.example"}), "jwt_wrong_issuer"),
        (json!({"iss": format!("{ISSUER}/")}), "jwt_wrong_issuer"),
        (json!({"iss": null}), "jwt_wrong_issuer"),
        (json!({"aud": "other-api"}), "jwt_wrong_audience"),
        (json!({"aud": ["other-api"]}), "jwt_wrong_audience"),
        (json!({"aud": ["corridor-api", 7]}), "jwt_wrong_audience"),
        (json!({"aud": []}), "jwt_wrong_audience"),
        (json!({"aud": null}), "jwt_wrong_audience"),
    ] {
        call(&f, &rsa_a().sign(&claims_with(changes)))
            .await
            .assert_invalid(event);
    }
}

#[tokio::test]
async fn required_scopes_from_scope_or_scp() {
    let f = filter(r#"required_scopes = ["accounts:read", "payments:write"]"#);
    for changes in [
        json!({}),
        json!({"scope": null, "scp": ["payments:write", "accounts:read"]}),
        json!({"scope": "accounts:read", "scp": "payments:write"}),
    ] {
        call(&f, &rsa_a().sign(&claims_with(changes)))
            .await
            .passed();
    }
    for changes in [
        json!({"scope": "accounts:read"}),
        json!({"scope": null}),
        json!({"scope": "accounts:read payments:writer"}),
    ] {
        let (reply, ctx) = call(&f, &rsa_a().sign(&claims_with(changes)))
            .await
            .refused();
        assert_eq!(reply.status, 403);
        assert_eq!(
            challenge(&reply),
            "Bearer realm=\"corridor\", error=\"insufficient_scope\", \
             scope=\"accounts:read payments:write\""
        );
        assert_eq!(reply.problem.unwrap().kind, "forbidden");
        assert_eq!(ctx.events, ["jwt_insufficient_scope"]);
        assert!(ctx.consumer.is_none());
    }
    call(
        &f,
        &rsa_a().sign(&claims_with(json!({"scope": ["accounts:read"]}))),
    )
    .await
    .assert_invalid("jwt_invalid_claims");
}

#[tokio::test]
async fn consumer_comes_from_the_configured_claim() {
    let f = filter("");
    let (_, ctx) = call(&f, &rsa_a().sign(&claims())).await.passed();
    assert_eq!(ctx.consumer.unwrap().id, "partner-1");
    // Without `sub`, and no fallback configured: refused.
    let no_sub = claims_with(json!({"sub": null, "azp": "client-9"}));
    call(&f, &rsa_a().sign(&no_sub))
        .await
        .assert_invalid("jwt_missing_consumer");
    let f = filter(r#"consumer_fallback_claims = ["client_id", "azp"]"#);
    let (_, ctx) = call(&f, &rsa_a().sign(&no_sub)).await.passed();
    assert_eq!(ctx.consumer.unwrap().id, "client-9");
    let f = filter(r#"consumer_claim = "client_id""#);
    let (_, ctx) = call(&f, &rsa_a().sign(&claims_with(json!({"client_id": "c-1"}))))
        .await
        .passed();
    assert_eq!(ctx.consumer.unwrap().id, "c-1");
    // Not a string, or too long: not an id.
    let f = filter("");
    for sub in [json!(42), json!("x".repeat(257)), json!("")] {
        call(&f, &rsa_a().sign(&claims_with(json!({ "sub": sub }))))
            .await
            .assert_invalid("jwt_missing_consumer");
    }
}

#[tokio::test]
async fn claims_are_forwarded_and_client_copies_always_removed() {
    let f = filter(
        r#"forward_claims = { "sub" = "x-consumer-id", "tenant" = "X-Consumer-Tenant", "roles" = "x-roles", "premium" = "x-premium", "meta" = "x-meta" }"#,
    );
    let spoofed = [
        ("x-consumer-id", "admin"),
        ("x-consumer-tenant", "bank"),
        ("x-roles", "root"),
    ];
    let token = rsa_a().sign(&claims_with(json!({
        "tenant": 42, "roles": ["teller", "auditor"], "premium": true, "meta": {"a": 1},
    })));
    let auth = format!("Bearer {token}");
    let mut headers = spoofed.to_vec();
    headers.push(("authorization", &auth));
    let (req, ctx) = call_with(&f, &headers, super::ctx()).await.passed();
    let h = &req.headers;
    assert_eq!(h.get_all("x-consumer-id").iter().count(), 1);
    assert_eq!(h["x-consumer-id"], "partner-1");
    assert_eq!(h["x-consumer-tenant"], "42");
    assert_eq!(h["x-roles"], "teller auditor");
    assert_eq!(h["x-premium"], "true");
    assert!(!h.contains_key("x-meta"), "objects are not forwarded");
    assert_eq!(
        h["authorization"],
        auth.as_str(),
        "forward_token defaults to true"
    );
    let consumer = ctx.consumer.unwrap();
    assert_eq!(consumer.metadata["tenant"], "42");
    assert_eq!(consumer.metadata["sub"], "partner-1");

    // A token without the claim: the client's copy is gone all the same.
    let token = rsa_a().sign(&claims());
    let auth = format!("Bearer {token}");
    let mut headers = spoofed.to_vec();
    headers.push(("authorization", &auth));
    let (req, _) = call_with(&f, &headers, super::ctx()).await.passed();
    assert!(!req.headers.contains_key("x-consumer-tenant"));
    assert!(!req.headers.contains_key("x-roles"));

    // No token, or a bad one: refused, and the copies removed from the request too.
    for auth in [None, Some("Bearer x.y.z")] {
        let mut headers = spoofed.to_vec();
        if let Some(auth) = auth {
            headers.push(("authorization", auth));
        }
        let mut req = request(&headers);
        let mut c = super::ctx();
        assert!(matches!(
            f.on_request(&mut req, &mut c).await,
            Flow::Respond(_)
        ));
        for (name, _) in spoofed {
            assert!(!req.headers.contains_key(name), "{name}");
        }
    }
}

#[tokio::test]
async fn forward_token_false_removes_authorization() {
    let f = filter("forward_token = false");
    let (req, _) = call(&f, &rsa_a().sign(&claims())).await.passed();
    assert!(!req.headers.contains_key("authorization"));
}

fn cert(sha256: [u8; 32]) -> Arc<ClientCertificate> {
    Arc::new(ClientCertificate {
        subject: "CN=partner-1".into(),
        common_name: Some("partner-1".into()),
        dns_names: vec![],
        uris: vec![],
        emails: vec![],
        sha256,
    })
}

async fn call_with_cert(
    f: &JwtFilter,
    token: &str,
    client_cert: Option<Arc<ClientCertificate>>,
) -> Outcome {
    let mut c = ctx();
    c.client_cert = client_cert;
    let auth = format!("Bearer {token}");
    call_with(f, &[("authorization", &auth)], c).await
}

#[tokio::test]
async fn certificate_bound_tokens_need_that_certificate() {
    let f = filter("");
    let thumbprint = [7u8; 32];
    let bound = rsa_a().sign(&claims_with(json!({"cnf": {"x5t#S256": b64(&thumbprint)}})));
    call_with_cert(&f, &bound, Some(cert(thumbprint)))
        .await
        .passed();
    call_with_cert(&f, &bound, Some(cert([8u8; 32])))
        .await
        .assert_invalid("jwt_unbound_cert");
    call_with_cert(&f, &bound, None)
        .await
        .assert_invalid("jwt_unbound_cert");
    // An unbound token is fine by default, with or without a certificate.
    call_with_cert(&f, &rsa_a().sign(&claims()), Some(cert(thumbprint)))
        .await
        .passed();
    // A binding we cannot check (DPoP's jkt) or cannot read is refused.
    for (cnf, event) in [
        (
            json!({"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}),
            "jwt_unsupported_binding",
        ),
        (json!({"x5t#S256": "not base64!"}), "jwt_invalid_claims"),
        (json!({"x5t#S256": b64(&[7u8; 20])}), "jwt_invalid_claims"),
        (json!("x5t"), "jwt_invalid_claims"),
    ] {
        let token = rsa_a().sign(&claims_with(json!({ "cnf": cnf })));
        call_with_cert(&f, &token, Some(cert(thumbprint)))
            .await
            .assert_invalid(event);
    }
}

#[tokio::test]
async fn require_bound_tokens_refuses_bearer_only_tokens() {
    let f = filter("require_bound_tokens = true");
    let thumbprint = [9u8; 32];
    call_with_cert(&f, &rsa_a().sign(&claims()), Some(cert(thumbprint)))
        .await
        .assert_invalid("jwt_unbound_token");
    let bound = rsa_a().sign(&claims_with(json!({"cnf": {"x5t#S256": b64(&thumbprint)}})));
    call_with_cert(&f, &bound, Some(cert(thumbprint)))
        .await
        .passed();
}
