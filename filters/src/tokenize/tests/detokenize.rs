//! The `detokenize` filter on requests, and round trips with `tokenize`.

use http::header::CONTENT_ENCODING;
use http::StatusCode;
use serde_json::Value;

use super::*;
use crate::AuditEntry;

fn detokenize_filter(keys: &Keys, rules: &str, extra: &str) -> Arc<dyn Filter> {
    keys.filter(&format!(
        "type = \"detokenize\"\nrules = [{rules}]\n{extra}"
    ))
}

/// The token `engine` (a tokenize rule's engine) gives `value`, through a tokenize filter.
async fn token_of(keys: &Keys, engine: &str, value: &str) -> String {
    let f = keys.filter(&format!(
        "type = \"tokenize\"\nrules = [{{ path = \"$.v\", engine = {engine} }}]"
    ));
    let out = respond(&f, &format!(r#"{{"v":"{value}"}}"#)).await.unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    let token = v["v"].as_str().unwrap().to_owned();
    assert_ne!(token, value);
    token
}

fn audit(field: &str, key_version: u32) -> AuditEntry {
    AuditEntry {
        action: "detokenize",
        field: field.into(),
        key_version,
    }
}

#[tokio::test]
async fn tokens_in_every_location_become_values_with_an_audit_record_each() {
    let keys = Keys::new();
    let pan = ff1_pan(1);
    let token = token_of(&keys, &pan, PAN).await;
    let token_2 = token_of(&keys, &pan, PAN_2).await;
    let iban_token = token_of(&keys, FF1_IBAN, IBAN).await;
    let f = detokenize_filter(
        &keys,
        &format!(
            r#"{{ body = "$.card.pan", engine = {pan}, consumers = ["acme"] }},
  {{ body = "$.to[*].iban", engine = {FF1_IBAN}, consumers = ["acme"] }},
  {{ header = "X-Account-Token", engine = {pan}, consumers = ["acme"] }},
  {{ query = "account", engine = {pan}, consumers = ["globex", "acme"] }},
  {{ path_segment = 1, engine = {pan}, consumers = ["acme"] }}"#
        ),
        "",
    );
    assert!(f.wants_request_body() && !f.wants_response_body());
    let mut headers = json_headers();
    headers.insert("x-account-token", token_2.parse().unwrap());
    let body = format!(
        r#"{{"card": {{"pan":"{token}", "cvc":"123"}}, "to":[{{"iban":"{iban_token}"}},{{"iban":null}}], "amount":10.50}}"#
    );
    let mut context = ctx(Some("acme"));
    let sent = send_with(
        &f,
        &format!("/cards/{token}/balance?x=a%20b&account={token_2}&account=&y=1"),
        headers,
        &body,
        &mut context,
    )
    .await
    .unwrap();
    assert_eq!(
        sent.uri,
        format!("/cards/{PAN}/balance?x=a%20b&account={PAN_2}&account=&y=1")
    );
    assert_eq!(sent.headers["x-account-token"], PAN_2);
    assert!(!format!("{:?}", sent.headers).contains(PAN_2));
    assert_eq!(
        sent.body,
        format!(
            r#"{{"card": {{"pan":"{PAN}", "cvc":"123"}}, "to":[{{"iban":"{IBAN}"}},{{"iban":null}}], "amount":10.50}}"#
        )
    );
    // In rule order for the head, then the body's in document order.
    assert_eq!(
        context.audit,
        [
            audit("header x-account-token", 1),
            audit("query account", 1),
            audit("path_segment 1", 1),
            audit("body $.card.pan", 1),
            audit("body $.to[*].iban", 1),
        ]
    );
    assert!(context.events.is_empty());
}

#[tokio::test]
async fn other_consumers_tokens_pass_unchanged() {
    let keys = Keys::new();
    let pan = ff1_pan(1);
    let token = token_of(&keys, &pan, PAN).await;
    let f = detokenize_filter(
        &keys,
        &format!(
            r#"{{ path_segment = 1, engine = {pan}, consumers = ["acme"] }}, {{ body = "$.pan", engine = {pan}, consumers = ["acme"] }}"#
        ),
        "",
    );
    let body = format!(r#"{{"pan":"{token}"}}"#);
    for consumer in [Some("globex"), None] {
        let mut context = ctx(consumer);
        let sent = send_with(
            &f,
            &format!("/cards/{token}"),
            json_headers(),
            &body,
            &mut context,
        )
        .await
        .unwrap();
        assert_eq!(sent.uri, format!("/cards/{token}"));
        assert_eq!(sent.body, body);
        assert!(context.audit.is_empty());
        assert_eq!(context.events, ["detokenize_not_permitted"; 2]);
        // Not even checked: what is not a token passes too.
        let sent = send_with(&f, "/cards/junk", json_headers(), "{}", &mut ctx(consumer)).await;
        assert_eq!(sent.unwrap().uri, "/cards/junk");
    }
}

#[tokio::test]
async fn a_value_that_is_not_a_token_is_a_400_naming_the_field_only() {
    let keys = Keys::new();
    let pan = ff1_pan(1);
    let rules = |required: bool| {
        format!(
            r#"{{ body = "$.card.pan", engine = {pan}, consumers = ["acme"], required = {required} }},
  {{ header = "x-card", engine = {pan}, consumers = ["acme"], required = {required} }},
  {{ path_segment = 1, engine = {pan}, consumers = ["acme"], required = {required} }}"#
        )
    };
    let required = detokenize_filter(&keys, &rules(true), "");
    let optional = detokenize_filter(&keys, &rules(false), "");
    // A real card number is Luhn-valid, never a token; then junk, and a token as a number.
    for (uri, header, body, field) in [
        (
            format!("/cards/{PAN}"),
            "",
            "{}".to_owned(),
            "path_segment 1",
        ),
        ("/cards".into(), PAN, "{}".into(), "header x-card"),
        (
            "/cards".into(),
            "",
            r#"{"card":{"pan":"4111-junk-9999"}}"#.into(),
            "body $.card.pan",
        ),
        (
            "/cards".into(),
            "",
            format!(r#"{{"card":{{"pan":{PAN}}}}}"#),
            "body $.card.pan",
        ),
        (
            "/cards".into(),
            "",
            r#"{"card":{"pan":{"a":1}}}"#.into(),
            "body $.card.pan",
        ),
    ] {
        let mut headers = json_headers();
        if !header.is_empty() {
            headers.insert("x-card", header.parse().unwrap());
        }
        let mut context = ctx(Some("acme"));
        let p = send_with(&required, &uri, headers.clone(), &body, &mut context)
            .await
            .unwrap_err();
        assert_eq!(
            (p.status, p.kind),
            (StatusCode::BAD_REQUEST, "invalid-token-value")
        );
        assert_eq!(p.title, "Invalid token");
        assert_eq!(
            p.detail.as_deref(),
            Some(&*format!("{field}: not a valid token"))
        );
        assert!(context.audit.is_empty());

        let sent = send_with(&optional, &uri, headers, &body, &mut ctx(Some("acme")))
            .await
            .unwrap();
        assert_eq!((sent.uri, sent.body), (uri, body));
    }
    // Absent, empty and null values are not there to detokenize.
    for (uri, body) in [
        ("/cards", r#"{"card":{"pan":null}}"#),
        ("/", r#"{"card":{"pan":""}}"#),
    ] {
        let mut headers = json_headers();
        headers.insert("x-card", "".parse().unwrap());
        let sent = send_with(&required, uri, headers, body, &mut ctx(Some("acme"))).await;
        assert_eq!(sent.unwrap().body, body);
    }
}

#[tokio::test]
async fn an_unavailable_engine_is_a_503() {
    let keys = Keys::new();
    let f = detokenize_filter(
        &keys,
        &format!(r#"{{ header = "x-card", engine = {VAULT_DOWN}, consumers = ["acme"] }}"#),
        "",
    );
    let mut headers = HeaderMap::new();
    // A shape a vault PAN token may have (Luhn-invalid), so the store is asked.
    headers.insert("x-card", "4111111111111112".parse().unwrap());
    let p = send_with(&f, "/", headers, "", &mut ctx(Some("acme")))
        .await
        .unwrap_err();
    assert_eq!(
        (p.status, p.kind),
        (StatusCode::SERVICE_UNAVAILABLE, "tokenization-unavailable")
    );
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_400_unless_passed() {
    let keys = Keys::new();
    let rules = format!(
        r#"{{ body = "$.pan", engine = {}, consumers = ["acme"] }}"#,
        ff1_pan(1)
    );
    let reject = detokenize_filter(&keys, &rules, "");
    let pass = detokenize_filter(&keys, &rules, "on_invalid_body = \"pass\"");
    let mut gzip = json_headers();
    gzip.insert(CONTENT_ENCODING, "gzip".parse().unwrap());
    for (headers, body, detail) in [
        (HeaderMap::new(), "pan=1", "needs a JSON body"),
        (json_headers(), r#"{"pan":"s3cret"#, "ends early"),
        (gzip, "{}", "compressed"),
    ] {
        let mut context = ctx(Some("acme"));
        let p = send_with(&reject, "/", headers.clone(), body, &mut context)
            .await
            .unwrap_err();
        assert_eq!(
            (p.status, p.kind),
            (StatusCode::BAD_REQUEST, "invalid-json")
        );
        let d = p.detail.unwrap();
        assert!(d.contains(detail) && !d.contains("s3cret"), "{d}");
        assert_eq!(context.events, ["detokenize_invalid_body"]);
        let sent = send_with(&pass, "/", headers, body, &mut ctx(Some("acme"))).await;
        assert_eq!(sent.unwrap().body, body);
    }
    // No body (a GET) is fine.
    let sent = send_with(&reject, "/", HeaderMap::new(), "", &mut ctx(Some("acme"))).await;
    assert_eq!(sent.unwrap().body, "");
}

#[tokio::test]
async fn ff1_tokens_of_an_older_key_version_still_detokenize() {
    let keys = Keys::new();
    let old = token_of(&keys, &ff1_pan(1), PAN).await;
    let new = token_of(&keys, &ff1_pan(2), PAN).await;
    assert_ne!(old, new);
    let f = detokenize_filter(
        &keys,
        &format!(
            r#"{{ header = "x-card", engine = {}, consumers = ["acme"] }}"#,
            ff1_pan(2)
        ),
        "",
    );
    for (token, version) in [(old, 1), (new, 2)] {
        let mut headers = HeaderMap::new();
        headers.insert("x-card", token.parse().unwrap());
        let mut context = ctx(Some("acme"));
        let sent = send_with(&f, "/", headers, "", &mut context).await.unwrap();
        assert_eq!(sent.headers["x-card"], PAN);
        assert_eq!(context.audit, [audit("header x-card", version)]);
    }
}

#[tokio::test]
async fn vault_tokens_round_trip_between_rules_on_the_same_store() {
    let keys = Keys::new();
    let token = token_of(&keys, VAULT_PAN, PAN).await;
    // The vault draws a new token on every call (not deterministic).
    assert_ne!(token_of(&keys, VAULT_PAN, PAN).await, token);
    let f = detokenize_filter(
        &keys,
        &format!(r#"{{ query = "card", engine = {VAULT_PAN}, consumers = ["acme"] }}"#),
        "",
    );
    let mut context = ctx(Some("acme"));
    let sent = send_with(
        &f,
        &format!("/pay?card={token}"),
        HeaderMap::new(),
        "",
        &mut context,
    )
    .await
    .unwrap();
    assert_eq!(sent.uri, format!("/pay?card={PAN}"));
    assert_eq!(context.audit, [audit("query card", 1)]);
}

#[tokio::test]
async fn values_that_do_not_fit_their_location_are_refused() {
    let keys = Keys::new();
    let string = r#"{ type = "vault", kind = "string", data_dir = "vault", namespace = "strings", keys = { active = 1, versions = [{ version = 1, file = "v1.key" }] } }"#;
    let dots = token_of(&keys, string, "..").await;
    let newline = token_of(&keys, string, r"line\nbreak").await;
    let f = detokenize_filter(
        &keys,
        &format!(
            r#"{{ path_segment = 0, engine = {string}, consumers = ["acme"] }}, {{ header = "x-ref", engine = {string}, consumers = ["acme"] }}"#
        ),
        "",
    );
    let p = send_with(
        &f,
        &format!("/{dots}/admin"),
        HeaderMap::new(),
        "",
        &mut ctx(Some("acme")),
    )
    .await
    .unwrap_err();
    assert_eq!(
        p.detail.unwrap(),
        "path_segment 0: the value cannot be sent in a path segment"
    );
    let mut headers = HeaderMap::new();
    headers.insert("x-ref", newline.parse().unwrap());
    // Path "/": segment 0 is empty, so absent.
    let p = send_with(&f, "/", headers, "", &mut ctx(Some("acme")))
        .await
        .unwrap_err();
    assert_eq!(
        p.detail.unwrap(),
        "header x-ref: the value cannot be sent in a header"
    );
    // Other characters are percent-encoded in a path segment.
    let spaced = token_of(&keys, string, "a b/c").await;
    let sent = send_with(
        &f,
        &format!("/{spaced}/x"),
        HeaderMap::new(),
        "",
        &mut ctx(Some("acme")),
    )
    .await
    .unwrap();
    assert_eq!(sent.uri, "/a%20b%2Fc/x");
}
