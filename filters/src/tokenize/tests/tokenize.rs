//! The `tokenize` filter on response bodies.

use http::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE};
use http::StatusCode;
use serde_json::Value;

use super::*;
use crate::tokenize::rules::{Engine, EngineConfig};
use crate::tokenize::TokenError;

fn tokenize_filter(keys: &Keys, rules: &str, extra: &str) -> Arc<dyn Filter> {
    keys.filter(&format!("type = \"tokenize\"\nrules = [{rules}]\n{extra}"))
}

#[tokio::test]
async fn selected_strings_become_tokens_and_every_other_byte_stays() {
    let keys = Keys::new();
    let f = tokenize_filter(
        &keys,
        &format!(
            r#"{{ path = "$.accounts[*].iban", engine = {FF1_IBAN} }}, {{ path = "$..pan", engine = {} }}"#,
            ff1_pan(1)
        ),
        "",
    );
    let body = format!(
        r#"{{"z":1, "accounts":[{{"iban":"{IBAN}","amount":10.50,"pan":"{PAN}"}},{{"iban":"GB82WEST12345698765432","big":12345678901234567890.10}}],
  "card" : {{ "pan" : "{PAN_2}", "note":"caf\u00e9" }}, "a":1.0e2}}"#
    );
    let out = respond(&f, &body).await.unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    let (iban_1, iban_2) = (
        v["accounts"][0]["iban"].as_str().unwrap(),
        v["accounts"][1]["iban"].as_str().unwrap(),
    );
    let (pan_1, pan_2) = (
        v["accounts"][0]["pan"].as_str().unwrap(),
        v["card"]["pan"].as_str().unwrap(),
    );
    // Tokens keep the format: the country and length of an IBAN, the length and last four
    // digits of a PAN.
    assert!(iban_1.starts_with("DE") && iban_1.len() == IBAN.len() && iban_1 != IBAN);
    assert!(iban_2.starts_with("GB") && iban_2.len() == 22 && !iban_2.contains("98765432"));
    assert!(pan_1.ends_with("1111") && pan_1.len() == 16 && pan_1 != PAN);
    assert!(pan_2.ends_with("4444") && pan_2 != PAN_2);
    // Everything else is the same text: amounts, key order, spacing, escapes.
    let restored = out
        .replace(iban_1, IBAN)
        .replace(iban_2, "GB82WEST12345698765432")
        .replace(pan_1, PAN)
        .replace(pan_2, PAN_2);
    assert_eq!(restored, body);
    assert!(out.contains(r#""amount":10.50"#) && out.contains("12345678901234567890.10"));
    // FF1 is deterministic: the same body, the same tokens.
    assert_eq!(respond(&f, &body).await.unwrap(), out);
}

#[tokio::test]
async fn nothing_selected_leaves_the_body_as_it_came() {
    let keys = Keys::new();
    let f = tokenize_filter(
        &keys,
        &format!(r#"{{ path = "$.pan", engine = {} }}"#, ff1_pan(1)),
        "",
    );
    for body in [r#"{"id":1, "amount": 10.50}"#, "[1,2]", r#""text""#, "{}"] {
        assert_eq!(respond(&f, body).await.unwrap(), body);
    }
    // Selected values that are neither strings nor numbers are left alone.
    for body in [
        r#"{"pan":null}"#,
        r#"{"pan":true}"#,
        r#"{"pan":{"x":1}}"#,
        r#"{"pan":[]}"#,
    ] {
        assert_eq!(respond(&f, body).await.unwrap(), body);
    }
    // An empty body (a 204, a HEAD) has nothing to tokenize.
    assert_eq!(
        respond_with(&f, HeaderMap::new(), "", &mut ctx(None))
            .await
            .unwrap(),
        ""
    );
}

#[tokio::test]
async fn refused_values_and_numbers_are_masked_whole_and_counted() {
    let keys = Keys::new();
    let f = tokenize_filter(
        &keys,
        &format!(r#"{{ path = "$.cards[*]", engine = {} }}"#, ff1_pan(1)),
        "",
    );
    let mut context = ctx(None);
    // A Luhn-invalid number, letters, a PAN as a JSON number: none passes raw.
    let out = respond_with(
        &f,
        json_headers(),
        r#"{"cards":["4111111111111112","not a pan",4111111111111111,"4111111111111111"]}"#,
        &mut context,
    )
    .await
    .unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["cards"][0], "****************");
    assert_eq!(v["cards"][1], "*********");
    assert_eq!(v["cards"][2], "****************");
    assert!(v["cards"][3].as_str().unwrap().ends_with("1111"));
    assert_ne!(v["cards"][3], PAN);
    assert_eq!(context.events, ["tokenize_invalid_value"; 3]);
    assert!(!out.contains("41111111111111"), "{out}");
}

#[tokio::test]
async fn the_mask_engine_keeps_the_last_characters() {
    let keys = Keys::new();
    let f = tokenize_filter(
        &keys,
        r##"{ path = "$.pan", engine = { type = "mask" } }, { path = "$.iban", engine = { type = "mask", keep_last = 2, mask_char = "#" } }"##,
        "",
    );
    let out = respond(
        &f,
        &format!(r#"{{"pan":"4111111111111234","iban":"{IBAN}","n":{PAN}}}"#),
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        format!(
            r#"{{"pan":"************1234","iban":"{}00","n":{PAN}}}"#,
            "#".repeat(20)
        )
    );
    // A number under a mask rule is masked the same way, as a string.
    let f = tokenize_filter(&keys, r#"{ path = "$.n", engine = { type = "mask" } }"#, "");
    assert_eq!(
        respond(&f, r#"{"n":4111111111111234}"#).await.unwrap(),
        r#"{"n":"************1234"}"#
    );
}

#[tokio::test]
async fn an_unavailable_engine_replaces_the_whole_answer_with_a_503() {
    let keys = Keys::new();
    let f = tokenize_filter(
        &keys,
        &format!(
            r#"{{ path = "$.a", engine = {} }}, {{ path = "$.b", engine = {VAULT_DOWN} }}"#,
            ff1_pan(1)
        ),
        "",
    );
    let p = respond(&f, &format!(r#"{{"a":"{PAN}","b":"{PAN_2}"}}"#))
        .await
        .unwrap_err();
    assert_eq!(p.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(p.kind, "tokenization-unavailable");
    assert_eq!(p.detail, None);
    // Values are tokenized together, but the first unavailable one ends it: the others
    // would each wait as long for nothing.
    let table: toml::Table = toml::from_str(&format!("engine = {VAULT_DOWN}")).unwrap();
    let engine: EngineConfig = table["engine"].clone().try_into().unwrap();
    let Engine::Token(engine) = engine.build(&BuildContext::new(keys.0.path())).unwrap() else {
        panic!("a token engine")
    };
    let tokens = engine.tokenize_all(&[PAN, PAN_2, PAN]).await;
    assert!(matches!(tokens[..], [Err(TokenError::Unavailable(_))]));
}

#[tokio::test]
async fn a_body_that_is_not_json_is_refused_unless_passed() {
    let keys = Keys::new();
    let rules = format!(r#"{{ path = "$.pan", engine = {} }}"#, ff1_pan(1));
    let reject = tokenize_filter(&keys, &rules, "");
    let pass = tokenize_filter(&keys, &rules, "on_invalid_body = \"pass\"");
    let html = |content_type: &str| {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, content_type.parse().unwrap());
        h
    };
    let mut gzip = json_headers();
    gzip.insert(CONTENT_ENCODING, "gzip".parse().unwrap());
    let cases = [
        (html("text/html"), format!("<p>card {PAN}</p>")),
        (HeaderMap::new(), format!(r#"{{"pan":"{PAN}"}}"#)),
        (json_headers(), format!(r#"{{"pan":"{PAN}""#)),
        (json_headers(), format!(r#"{{"pan":{PAN}x}}"#)),
        (gzip, format!(r#"{{"pan":"{PAN}"}}"#)),
        // A lone surrogate makes the PAN's string unreadable: it must not go out as it is.
        (json_headers(), format!(r#"{{"pan":"{PAN}\ud800"}}"#)),
    ];
    for (headers, body) in cases {
        let mut context = ctx(None);
        let p = respond_with(&reject, headers.clone(), &body, &mut context)
            .await
            .unwrap_err();
        assert_eq!(
            (p.status, p.kind),
            (StatusCode::BAD_GATEWAY, "tokenization-failed")
        );
        assert_eq!(p.detail, None);
        assert_eq!(context.events, ["tokenize_invalid_body"]);
        let out = respond_with(&pass, headers, &body, &mut ctx(None)).await;
        assert_eq!(out.unwrap(), body);
    }
    // problem+json and vendor types are JSON.
    let out = respond_with(
        &reject,
        html("application/vnd.bank+json; charset=utf-8"),
        &format!(r#"{{"pan":"{PAN}"}}"#),
        &mut ctx(None),
    )
    .await
    .unwrap();
    assert!(!out.contains(PAN));
}

#[tokio::test]
async fn asks_the_upstream_for_uncompressed_answers() {
    let keys = Keys::new();
    let f = tokenize_filter(
        &keys,
        r#"{ path = "$.pan", engine = { type = "mask" } }"#,
        "",
    );
    assert!(f.wants_response_body() && !f.wants_request_body());
    assert_eq!(f.name(), "tokenize");
    let (mut req, _) = http::Request::get("/cards")
        .header(ACCEPT_ENCODING, "gzip, br")
        .body(())
        .unwrap()
        .into_parts();
    assert!(matches!(
        f.on_request(&mut req, &mut ctx(None)).await,
        Flow::Continue
    ));
    assert_eq!(req.headers.get_all(ACCEPT_ENCODING).iter().count(), 1);
    assert_eq!(req.headers[ACCEPT_ENCODING], "identity");
}
