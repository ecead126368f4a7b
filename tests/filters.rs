//! The built-in filters end to end through the real gateway: cors, request_id, headers and
//! json_fields (which makes the gateway buffer bodies).

mod common;
use common::*;

use std::net::SocketAddr;

use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::any;
use serde_json::{json, Value};

/// A gateway config with one upstream "core" and one catch-all route through chain "web",
/// whose filters are `filters` (the TOML array's contents). `server_extra` goes in `[server]`.
fn config(core: SocketAddr, filters: &str, server_extra: &str) -> String {
    core_config(
        &[core],
        server_extra,
        "",
        &format!(
            r#"
[chains.web]
filters = [{filters}]

[[routes]]
id = "all"
upstream = "core"
chain = "web"
[routes.match]
path_prefix = "/"
methods = ["GET", "POST"]
"#
        ),
    )
}

/// `8-4-4-4-12` lowercase hex with version 4 and the RFC 4122 variant.
fn is_uuid_v4(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| is_lower_hex(g))
        && groups[2].starts_with('4')
        && groups[3].starts_with(['8', '9', 'a', 'b'])
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

const APP: &str = "https://app.partner.example";
const CORS: &str = r#"{ type = "cors", allow_origins = ["https://app.partner.example"], allow_credentials = true }"#;

#[tokio::test(flavor = "multi_thread")]
async fn cors_preflight_is_answered_by_the_gateway() {
    let core = demo_core("core-1").await;
    let gw = Gateway::start(&config(core, CORS, ""));

    let resp = client()
        .request(reqwest::Method::OPTIONS, gw.url("/accounts"))
        .header("origin", APP)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type, x-request-id",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204, "{}", gw.stderr());
    assert_eq!(header(&resp, "access-control-allow-origin"), Some(APP));
    let methods = header(&resp, "access-control-allow-methods").unwrap_or_default();
    assert!(methods.split(", ").any(|m| m == "POST"), "{methods}");
    let allowed = header(&resp, "access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(allowed.contains("content-type"), "{allowed}");
    assert!(allowed.contains("x-request-id"), "{allowed}");
    assert_eq!(header(&resp, "access-control-max-age"), Some("600"));
    assert_eq!(
        header(&resp, "access-control-allow-credentials"),
        Some("true")
    );
    assert!(header(&resp, "vary").is_some_and(|v| v.contains("Origin")));
    assert!(resp.bytes().await.unwrap().is_empty());
    assert_eq!(hits(core).await, 0, "the preflight reached the core");

    // The real call that follows gets the CORS headers on the core's answer.
    let resp = client()
        .get(gw.url("/accounts"))
        .header("origin", APP)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "access-control-allow-origin"), Some(APP));
    assert_eq!(
        header(&resp, "access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(hits(core).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn cors_preflight_from_a_disallowed_origin_is_a_403_problem() {
    let core = demo_core("core-1").await;
    let gw = Gateway::start(&config(core, CORS, ""));
    let resp = client()
        .request(reqwest::Method::OPTIONS, gw.url("/accounts"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(header(&resp, "access-control-allow-origin").is_none());
    assert_problem(resp, 403, "cors-rejected").await;
    assert_eq!(hits(core).await, 0, "the preflight reached the core");

    // An allowed origin asking for a request header the policy does not allow: refused too.
    let resp = client()
        .request(reqwest::Method::OPTIONS, gw.url("/accounts"))
        .header("origin", APP)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "x-not-allowed")
        .send()
        .await
        .unwrap();
    assert_problem(resp, 403, "cors-rejected").await;
    assert_eq!(hits(core).await, 0, "the preflight reached the core");
}

const REQUEST_ID: &str = r#"{ type = "request_id" }"#;

#[tokio::test(flavor = "multi_thread")]
async fn request_id_is_generated_echoed_and_sent_to_the_core() {
    let core = demo_core("core-1").await;
    let gw = Gateway::start(&config(core, REQUEST_ID, ""));

    let resp = client()
        .get(gw.url("/test/echo"))
        .header("x-request-id", "partner-chosen-id")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let id = header(&resp, "x-request-id").unwrap().to_owned();
    assert!(is_uuid_v4(&id), "{id}");
    let echo: Value = resp.json().await.unwrap();
    assert_eq!(echo["headers"]["x-request-id"], id.as_str(), "{echo}");

    let second = client().get(gw.url("/test/echo")).send().await.unwrap();
    let second_id = header(&second, "x-request-id").unwrap().to_owned();
    assert!(is_uuid_v4(&second_id), "{second_id}");
    assert_ne!(second_id, id);

    let ids: Vec<Value> = gw
        .settled_access_log()
        .await
        .iter()
        .map(|l| l["request_id"].clone())
        .collect();
    assert_eq!(ids, [json!(id), json!(second_id)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn traceparent_keeps_the_trace_id_with_a_new_parent_id() {
    let core = demo_core("core-1").await;
    let gw = Gateway::start(&config(core, REQUEST_ID, ""));
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let incoming_parent = "00f067aa0ba902b7";
    let echo: Value = client()
        .get(gw.url("/test/echo"))
        .header("traceparent", format!("00-{trace_id}-{incoming_parent}-01"))
        .header("tracestate", "vendor=opaque")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tp = echo["headers"]["traceparent"].as_str().unwrap();
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!(parts.len(), 4, "{tp}");
    assert_eq!(parts[0], "00", "{tp}");
    assert_eq!(parts[1], trace_id, "{tp}");
    assert_eq!(parts[2].len(), 16, "{tp}");
    assert!(is_lower_hex(parts[2]), "{tp}");
    assert_ne!(parts[2], incoming_parent, "{tp}");
    assert_ne!(parts[2], "0000000000000000", "{tp}");
    assert_eq!(parts[3], "01", "{tp}");
    assert_eq!(echo["headers"]["tracestate"], "vendor=opaque");

    // No traceparent: a new trace is started.
    let echo = fetch_json(&gw.url("/test/echo")).await;
    let tp = echo["headers"]["traceparent"].as_str().unwrap();
    assert_eq!(tp.len(), 55, "{tp}");
    assert!(tp.starts_with("00-") && !tp.contains(trace_id), "{tp}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_call_carries_the_same_request_id_as_its_problem() {
    let core = demo_core("core-1").await;
    let gw = Gateway::start(&config(
        core,
        r#"{ type = "request_id" }, { type = "body_limit", max_bytes = 16 }"#,
        "",
    ));
    let resp = client()
        .post(gw.url("/test/echo"))
        .body("this body is longer than sixteen bytes")
        .send()
        .await
        .unwrap();
    let id = header(&resp, "x-request-id").map(str::to_owned);
    let problem = assert_problem(resp, 413, "body-too-large").await;
    assert_eq!(id.as_deref(), problem["request_id"].as_str(), "{problem}");
    assert_eq!(hits(core).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gateways_own_problems_carry_cors_and_request_id_headers() {
    // Nothing listens there: every call is a 502 made by the gateway.
    let dead = closed_port();
    let filters = format!("{CORS}, {REQUEST_ID}");
    let text = config(dead, &filters, "").replace(
        &format!("targets = [\"{dead}\"]"),
        &format!("targets = [\"{dead}\"]\nretries = 0"),
    );
    let gw = Gateway::start(&text);
    let resp = client()
        .get(gw.url("/accounts"))
        .header("origin", APP)
        .send()
        .await
        .unwrap();
    assert_eq!(header(&resp, "access-control-allow-origin"), Some(APP));
    let id = header(&resp, "x-request-id").map(str::to_owned);
    let problem = assert_problem(resp, 502, "upstream-failed").await;
    assert_eq!(id.as_deref(), problem["request_id"].as_str(), "{problem}");
}

/// Reflects the request headers as JSON and answers with a few headers of its own.
async fn reflect(headers: HeaderMap) -> axum::response::Response {
    let mut seen = serde_json::Map::new();
    for name in headers.keys() {
        let values: Vec<Value> = headers
            .get_all(name)
            .iter()
            .map(|v| json!(v.to_str().unwrap()))
            .collect();
        seen.insert(name.as_str().to_owned(), Value::Array(values));
    }
    (
        [
            ("x-internal-ref", "ref-7"),
            ("x-internal-debug", "sql=select * from accounts"),
            ("cache-control", "public, max-age=60"),
        ],
        axum::Json(Value::Object(seen)),
    )
        .into_response()
}

#[tokio::test(flavor = "multi_thread")]
async fn headers_filter_edits_requests_and_responses() {
    let backend = serve(axum::Router::new().route("/{*rest}", any(reflect))).await;
    let filter = r#"{ type = "headers", request = { set = { "x-channel" = "partner" }, remove = ["x-debug"], rename = { "x-partner-key" = "x-api-key" }, add = { "x-tag" = "gw" } }, response = { set = { "cache-control" = "no-store" }, remove = ["x-internal-debug"], rename = { "x-internal-ref" = "x-ref" } } }"#;
    let gw = Gateway::start(&config(backend, filter, ""));

    let resp = client()
        .get(gw.url("/reflect"))
        .header("x-channel", "web")
        .header("x-debug", "1")
        .header("x-partner-key", "k-123")
        .header("x-api-key", "spoofed")
        .header("x-tag", "client")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", gw.stderr());
    assert_eq!(header(&resp, "x-ref"), Some("ref-7"));
    assert!(header(&resp, "x-internal-ref").is_none());
    assert!(header(&resp, "x-internal-debug").is_none());
    let cache: Vec<&str> = resp
        .headers()
        .get_all("cache-control")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(cache, ["no-store"]);

    let seen: Value = resp.json().await.unwrap();
    assert_eq!(seen["x-channel"], json!(["partner"]), "{seen}");
    assert!(seen.get("x-debug").is_none(), "{seen}");
    assert!(seen.get("x-partner-key").is_none(), "{seen}");
    assert_eq!(seen["x-api-key"], json!(["k-123"]), "{seen}");
    assert_eq!(seen["x-tag"], json!(["client", "gw"]), "{seen}");
}

const JSON_FIELDS: &str = r#"{ type = "json_fields", remove_from_response = ["trace"], remove_from_request = ["internal"] }"#;

#[tokio::test(flavor = "multi_thread")]
async fn json_fields_removes_a_field_from_the_core_answer_with_a_correct_length() {
    let core = demo_core("core-1").await;
    let gw = Gateway::start(&config(core, JSON_FIELDS, ""));
    let direct = fetch_json(&format!("http://{core}/accounts/ACC-9999")).await;
    assert!(direct.get("trace").is_some(), "{direct}");

    let resp = client()
        .get(gw.url("/accounts/ACC-9999"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404, "{}", gw.stderr());
    assert_eq!(header(&resp, "content-type"), Some("application/json"));
    assert!(header(&resp, "transfer-encoding").is_none());
    let length: usize = header(&resp, "content-length")
        .expect("a buffered answer has a Content-Length")
        .parse()
        .unwrap();
    let body = resp.bytes().await.unwrap();
    assert_eq!(length, body.len());
    let v: Value = serde_json::from_slice(&body).unwrap();
    let mut expected = direct.clone();
    expected.as_object_mut().unwrap().remove("trace");
    assert_eq!(v, expected);
    assert!(!String::from_utf8_lossy(&body).contains("AccountDao"));
}

#[tokio::test(flavor = "multi_thread")]
async fn json_fields_removes_a_field_from_the_request_body_with_a_correct_length() {
    let core = demo_core("core-1").await;
    let gw = Gateway::start(&config(core, JSON_FIELDS, ""));
    let sent = r#"{"amount": "10.00", "internal": {"score": 7}, "note": "hi"}"#;
    let resp = client()
        .post(gw.url("/test/echo"))
        .header("content-type", "application/json")
        .body(sent)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", gw.stderr());
    let echo: Value = resp.json().await.unwrap();
    let body = echo["body"].as_str().unwrap();
    let received: Value = serde_json::from_str(body).unwrap();
    assert_eq!(received, json!({"amount": "10.00", "note": "hi"}));
    assert_eq!(echo["body_len"], body.len());
    assert_eq!(
        echo["headers"]["content-length"],
        body.len().to_string(),
        "{echo}"
    );
    assert!(echo["headers"].get("transfer-encoding").is_none(), "{echo}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_buffered_request_body_over_the_cap_is_a_413_problem() {
    let core = demo_core("core-1").await;
    let gw = Gateway::start(&config(core, JSON_FIELDS, "max_buffered_body_bytes = 1024"));

    let small = json!({"note": "a".repeat(500)}).to_string();
    let resp = client()
        .post(gw.url("/test/echo"))
        .header("content-type", "application/json")
        .body(small)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(hits(core).await, 1);

    let big = json!({"note": "a".repeat(4096)}).to_string();
    let resp = client()
        .post(gw.url("/test/echo"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_problem(resp, 413, "body-too-large").await;
    assert_eq!(hits(core).await, 1, "the refused body reached the core");

    // The same cap holds for the core's answer, which must be buffered too.
    let resp = client()
        .get(gw.url("/test/bytes?n=4096"))
        .send()
        .await
        .unwrap();
    assert_problem(resp, 502, "upstream-response-too-large").await;
}
