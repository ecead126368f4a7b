//! Edge hygiene through the real gateway: hop-by-hop and internal headers, X-Forwarded-*,
//! revealing response headers, header and body limits, HTTP/1.1 and h2c, the gateway's own
//! problem answers, and streaming of large responses.

mod common;
use common::*;

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::routing::get;
use serde_json::Value;

/// A route for paths under `prefix` through the chain "buffered": one `json_fields` filter
/// with these settings, a filter that needs whole bodies, so the gateway buffers them.
fn buffered_route(json_fields: &str, prefix: &str) -> String {
    format!(
        r#"
[chains.buffered]
filters = [{{ type = "json_fields", {json_fields} }}]

[[routes]]
id = "buffered"
upstream = "core"
chain = "buffered"
[routes.match]
path_prefix = "{prefix}"
"#
    )
}

/// GET /test/echo/edge through the gateway with these headers; returns what the core saw.
async fn echo_with(gw: &Gateway, headers: &[(&str, &str)]) -> Value {
    let resp = with_headers(client().get(gw.url("/test/echo/edge")), headers)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", gw.stderr());
    resp.json().await.unwrap()
}

/// One header as the core saw it (`None` when absent).
fn seen<'a>(echo: &'a Value, name: &str) -> Option<&'a Value> {
    echo["headers"].get(name)
}

/// The body of a problem names no backend: neither its address nor its port.
fn assert_names_no_backend(body: &str, backend: SocketAddr) {
    assert!(!body.contains(&backend.to_string()), "{body}");
    assert!(!body.contains(&backend.port().to_string()), "{body}");
    assert!(!body.contains("127.0.0.1"), "{body}");
}

/// Hop-by-hop headers a client may send, and one it names in Connection.
const HOP_BY_HOP: [(&str, &str); 6] = [
    ("connection", "keep-alive, x-secret-hop"),
    ("keep-alive", "timeout=5, max=100"),
    ("te", "trailers"),
    ("upgrade", "websocket"),
    ("proxy-authorization", "Basic cHJveHk6c2VjcmV0"),
    ("x-secret-hop", "only-for-the-next-hop"),
];

/// Asserts that none of [`HOP_BY_HOP`] is in what the core saw, and that `x-kept` is.
fn assert_no_hop_by_hop(echo: &Value) {
    for (name, _) in &HOP_BY_HOP[1..] {
        assert!(
            seen(echo, name).is_none(),
            "{name} reached the core: {echo}"
        );
    }
    // The gateway may speak its own Connection header to the core, never the client's.
    if let Some(connection) = seen(echo, "connection") {
        let text = connection.to_string().to_ascii_lowercase();
        assert!(!text.contains("x-secret-hop"), "{echo}");
    }
    assert_eq!(seen(echo, "x-kept").unwrap(), "end-to-end", "{echo}");
}

#[tokio::test(flavor = "multi_thread")]
async fn hop_by_hop_headers_never_reach_the_backend() {
    let core = demo_core("core-1").await;
    let mut headers = HOP_BY_HOP.to_vec();
    headers.push(("x-kept", "end-to-end"));

    // Sent straight to the core, they all arrive: the client really sends them.
    let direct = with_headers(
        client().get(format!("http://{core}/test/echo/edge")),
        &headers,
    );
    let direct: Value = direct.send().await.unwrap().json().await.unwrap();
    for (name, _) in &headers {
        assert!(seen(&direct, name).is_some(), "{name}: {direct}");
    }

    // Streaming route.
    let gw = Gateway::start(&core_config(&[core], "", "", CATCH_ALL));
    assert_no_hop_by_hop(&echo_with(&gw, &headers).await);

    // Buffered route (a filter needs whole bodies): the gateway builds the upstream request
    // itself there.
    let buffered = buffered_route(r#"remove_from_request = ["internal"]"#, "/");
    let gw = Gateway::start(&core_config(&[core], "", "", &buffered));
    assert_no_hop_by_hop(&echo_with(&gw, &headers).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarded_headers_are_set_from_the_real_peer() {
    let core = demo_core("core-1").await;
    let gw = Gateway::start(&core_config(&[core], "", "", CATCH_ALL));
    let echo = echo_with(&gw, &[]).await;
    assert_eq!(
        seen(&echo, "x-forwarded-for").unwrap(),
        "127.0.0.1",
        "{echo}"
    );
    assert_eq!(seen(&echo, "x-forwarded-proto").unwrap(), "http", "{echo}");
    assert_eq!(
        seen(&echo, "x-forwarded-host").unwrap().as_str(),
        Some(format!("127.0.0.1:{}", gw.port).as_str()),
        "{echo}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn client_forwarded_headers_are_replaced_when_the_peer_is_not_trusted() {
    let core = demo_core("core-1").await;
    let gw = Gateway::start(&core_config(&[core], "", "", CATCH_ALL));
    let echo = echo_with(
        &gw,
        &[
            ("x-forwarded-for", "203.0.113.7"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "bank.example"),
            ("forwarded", "for=203.0.113.7;proto=https"),
        ],
    )
    .await;
    assert_eq!(
        seen(&echo, "x-forwarded-for").unwrap(),
        "127.0.0.1",
        "{echo}"
    );
    assert_eq!(seen(&echo, "x-forwarded-proto").unwrap(), "http", "{echo}");
    assert_eq!(
        seen(&echo, "x-forwarded-host").unwrap().as_str(),
        Some(format!("127.0.0.1:{}", gw.port).as_str()),
        "{echo}"
    );
    assert!(seen(&echo, "forwarded").is_none(), "{echo}");

    let log = gw.settled_access_log().await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["client_ip"], "127.0.0.1", "{log:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn client_forwarded_for_is_appended_to_when_the_peer_is_a_trusted_proxy() {
    let core = demo_core("core-1").await;
    let gw = Gateway::start(&core_config(
        &[core],
        r#"trusted_proxies = ["127.0.0.1/32"]"#,
        "",
        CATCH_ALL,
    ));
    let echo = echo_with(
        &gw,
        &[
            ("x-forwarded-for", "203.0.113.7"),
            ("x-forwarded-proto", "https"),
        ],
    )
    .await;
    assert_eq!(
        seen(&echo, "x-forwarded-for").unwrap(),
        "203.0.113.7, 127.0.0.1",
        "{echo}"
    );
    // A trusted proxy's word on the original scheme is kept.
    assert_eq!(seen(&echo, "x-forwarded-proto").unwrap(), "https", "{echo}");

    let log = gw.settled_access_log().await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["client_ip"], "203.0.113.7", "{log:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trusted_forwarded_for_sent_over_several_lines_is_appended_to_whole() {
    let core = demo_core("core-1").await;
    let gw = Gateway::start(&core_config(
        &[core],
        r#"trusted_proxies = ["127.0.0.1/32"]"#,
        "",
        CATCH_ALL,
    ));
    // Two field lines are one list (RFC 9110 §5.3): "203.0.113.7, 198.51.100.2".
    let echo = echo_with(
        &gw,
        &[
            ("x-forwarded-for", "203.0.113.7"),
            ("x-forwarded-for", "198.51.100.2"),
        ],
    )
    .await;
    assert_eq!(
        seen(&echo, "x-forwarded-for").unwrap(),
        "203.0.113.7, 198.51.100.2, 127.0.0.1",
        "{echo}"
    );

    let log = gw.settled_access_log().await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["client_ip"], "198.51.100.2", "{log:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn client_sent_internal_headers_are_stripped() {
    let core = demo_core("core-1").await;
    let gw = Gateway::start(&core_config(&[core], "", "", CATCH_ALL));
    let echo = echo_with(
        &gw,
        &[
            ("x-consumer-id", "partner-i-am-not"),
            ("X-Consumer-Groups", "admins"),
            ("x-corridor-anything", "forged"),
            ("X-Corridor-Verified", "true"),
            ("x-consumerish", "kept: prefix is x-consumer- with the dash"),
            ("x-kept", "yes"),
        ],
    )
    .await;
    for name in [
        "x-consumer-id",
        "x-consumer-groups",
        "x-corridor-anything",
        "x-corridor-verified",
    ] {
        assert!(
            seen(&echo, name).is_none(),
            "{name} reached the core: {echo}"
        );
    }
    assert!(seen(&echo, "x-consumerish").is_some(), "{echo}");
    assert_eq!(seen(&echo, "x-kept").unwrap(), "yes", "{echo}");
}

#[tokio::test(flavor = "multi_thread")]
async fn revealing_upstream_response_headers_are_removed() {
    let backend = serve(axum::Router::new().route(
        "/",
        get(|| async {
            let mut h = HeaderMap::new();
            h.insert("server", HeaderValue::from_static("Apache-Coyote/1.1"));
            h.insert(
                "x-powered-by",
                HeaderValue::from_static("Servlet/3.0 JSP/2.2"),
            );
            h.insert("x-aspnet-version", HeaderValue::from_static("4.0.30319"));
            h.insert(
                HeaderName::from_static("x-kept"),
                HeaderValue::from_static("yes"),
            );
            (StatusCode::OK, h, "hello")
        }),
    ))
    .await;
    // The backend really sends them: the test would prove nothing otherwise.
    let direct = client()
        .get(format!("http://{backend}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(direct.headers()["server"], "Apache-Coyote/1.1");
    assert_eq!(direct.headers()["x-powered-by"], "Servlet/3.0 JSP/2.2");

    // Streaming route, and a buffered one (a filter needs whole bodies). HTTP/1.1 and h2c
    // clients alike (h2c on buffered routes has a test of its own).
    let buffered = buffered_route(r#"remove_from_response = ["trace"]"#, "/");
    for (routes, h2c) in [(CATCH_ALL, true), (buffered.as_str(), false)] {
        let gw = Gateway::start(&core_config(&[backend], "", "", routes));
        let mut clients = vec![client()];
        if h2c {
            clients.push(h2c_client());
        }
        for c in clients {
            let resp = c.get(gw.url("/")).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            let h = resp.headers().clone();
            assert!(h.get("server").is_none(), "{h:?}");
            assert!(h.get("x-powered-by").is_none(), "{h:?}");
            assert!(h.get("x-aspnet-version").is_none(), "{h:?}");
            assert_eq!(h["x-kept"], "yes");
            assert_eq!(resp.text().await.unwrap(), "hello");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn too_many_request_headers_is_a_431_problem() {
    let core = demo_core("core-1").await;
    let gw = Gateway::start(&core_config(
        &[core],
        "max_header_count = 20",
        "",
        CATCH_ALL,
    ));

    // Within the limit: served.
    let mut ok = client().get(gw.url("/test/echo"));
    for i in 0..10 {
        ok = ok.header(format!("x-h-{i}"), "v");
    }
    assert_eq!(ok.send().await.unwrap().status(), 200);
    assert_eq!(hits(core).await, 1);

    let mut req = client().get(gw.url("/test/echo"));
    for i in 0..30 {
        req = req.header(format!("x-h-{i}"), "v");
    }
    let resp = req.send().await.unwrap();
    let (body, _) = assert_titled_problem(resp, 431, "headers-too-large").await;
    assert_names_no_backend(&body, core);
    assert_eq!(hits(core).await, 1, "a refused request reached the core");
}

#[tokio::test(flavor = "multi_thread")]
async fn too_large_request_headers_is_a_431_problem() {
    let core = demo_core("core-1").await;
    let gw = Gateway::start(&core_config(
        &[core],
        "max_header_bytes = 4096",
        "",
        CATCH_ALL,
    ));

    let small = "a".repeat(2 * 1024);
    let resp = client()
        .get(gw.url("/test/echo"))
        .header("x-big", small)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(hits(core).await, 1);

    let big = "a".repeat(8 * 1024);
    let resp = client()
        .get(gw.url("/test/echo"))
        .header("x-big", big)
        .send()
        .await
        .unwrap();
    assert_titled_problem(resp, 431, "headers-too-large").await;
    assert_eq!(hits(core).await, 1, "a refused request reached the core");
}

const BODY_LIMIT: &str = r#"
[chains.limited]
filters = [{ type = "body_limit", max_bytes = 1024 }]

[[routes]]
id = "limited"
upstream = "core"
chain = "limited"
[routes.match]
path_prefix = "/"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn body_limit_refuses_a_declared_content_length_over_the_limit() {
    let core = demo_core("core-1").await;
    let gw = Gateway::start(&core_config(&[core], "", "", BODY_LIMIT));

    let resp = client()
        .post(gw.url("/test/echo"))
        .body(vec![b'a'; 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let echo: Value = resp.json().await.unwrap();
    assert_eq!(echo["body_len"], 1024);
    assert_eq!(hits(core).await, 1);

    let resp = client()
        .post(gw.url("/test/echo"))
        .body(vec![b'a'; 2048])
        .send()
        .await
        .unwrap();
    let (_, problem) = assert_titled_problem(resp, 413, "body-too-large").await;
    assert_eq!(problem["detail"], "the limit is 1024 bytes", "{problem}");
    assert_eq!(hits(core).await, 1, "a refused request reached the core");
}

#[tokio::test(flavor = "multi_thread")]
async fn body_limit_refuses_a_chunked_body_over_the_limit() {
    let core = demo_core("core-1").await;
    let gw = Gateway::start(&core_config(&[core], "", "", BODY_LIMIT));

    // Under the limit in total: served whole.
    let req = chunked_post(&gw, "/test/echo", &[vec![b'a'; 400], vec![b'b'; 400]]);
    let resp = raw_exchange(gw.addr(), &req).await;
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    let echo: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(echo["body_len"], 800);

    // Each chunk is under the limit, their sum is not.
    let req = chunked_post(&gw, "/test/echo", &[vec![b'a'; 800], vec![b'b'; 800]]);
    let resp = raw_exchange(gw.addr(), &req).await;
    let body = String::from_utf8_lossy(&resp.body).into_owned();
    assert_eq!(resp.status, 413, "{body}");
    assert_eq!(
        resp.header("content-type"),
        Some("application/problem+json"),
        "{body}"
    );
    let problem: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["type"], "urn:corridor:problem:body-too-large");
    assert_eq!(problem["status"], 413);
    assert!(problem["request_id"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
}

#[tokio::test(flavor = "multi_thread")]
async fn serves_http1_and_h2c_with_prior_knowledge() {
    let core = demo_core("core-1").await;
    let gw = Gateway::start(&core_config(&[core], "", "", CATCH_ALL));

    let resp = client().get(gw.url("/test/echo/v")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    let echo: Value = resp.json().await.unwrap();
    assert_eq!(echo["path"], "/test/echo/v");

    let h2 = h2c_client();
    let resp = h2.get(gw.url("/test/echo/v?q=1")).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{}", gw.stderr());
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    let echo: Value = resp.json().await.unwrap();
    assert_eq!(echo["method"], "GET");
    assert_eq!(echo["path"], "/test/echo/v");
    assert_eq!(echo["query"], "q=1");

    let resp = h2
        .post(gw.url("/test/echo/v"))
        .body("hello over h2c")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    let echo: Value = resp.json().await.unwrap();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["body"], "hello over h2c");
}

#[tokio::test(flavor = "multi_thread")]
async fn h2c_requests_reach_an_http1_core_as_http1_on_streaming_and_buffered_routes() {
    let core = demo_core("core-1").await;
    let buffered = format!(
        "{}[routes.rewrite]\nstrip_prefix = \"/buffered\"\n",
        buffered_route(r#"remove_from_request = ["internal"]"#, "/buffered")
    );
    let gw = Gateway::start(&core_config(
        &[core],
        "",
        "",
        &format!("{buffered}\n{CATCH_ALL}"),
    ));
    let h2 = h2c_client();
    let authority = format!("127.0.0.1:{}", gw.port);
    // Every route is checked before the test fails, so one run shows every broken one.
    let mut wrong = Vec::new();
    for (path, sent_body) in [
        (
            "/test/echo/streaming",
            r#"{"internal": 1, "amount": "5.00"}"#,
        ),
        ("/buffered/test/echo", r#"{"amount": "5.00"}"#),
    ] {
        let resp = h2
            .post(gw.url(path))
            .header("content-type", "application/json")
            .body(r#"{"internal": 1, "amount": "5.00"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.version(), reqwest::Version::HTTP_2);
        let status = resp.status();
        let body = resp.text().await.unwrap();
        if status != 200 {
            wrong.push(format!("{path}: status {status}, body {body:?}"));
            continue;
        }
        let echo: Value = serde_json::from_str(&body).unwrap();
        // HTTP/2 has :authority where HTTP/1.1 has Host: the core needs a Host, and
        // X-Forwarded-Host says what the client asked for.
        for (what, got, want) in [
            ("version", echo.get("version"), "HTTP/1.1"),
            ("method", echo.get("method"), "POST"),
            ("host", seen(&echo, "host"), authority.as_str()),
            (
                "x-forwarded-host",
                seen(&echo, "x-forwarded-host"),
                authority.as_str(),
            ),
            ("body", echo.get("body"), sent_body),
        ] {
            if got.and_then(Value::as_str) != Some(want) {
                wrong.push(format!("{path}: {what} is {got:?}, expected {want:?}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn no_route_is_a_404_problem() {
    let core = demo_core("core-1").await;
    let gw = Gateway::start(&core_config(
        &[core],
        "",
        "",
        r#"
[[routes]]
id = "api"
upstream = "core"
[routes.match]
path_prefix = "/api"
"#,
    ));
    let resp = client().get(gw.url("/elsewhere")).send().await.unwrap();
    let (body, _) = assert_titled_problem(resp, 404, "no-route").await;
    assert_names_no_backend(&body, core);
    assert_eq!(hits(core).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_target_is_a_502_problem_then_an_ejected_one_a_503_problem() {
    let dead = closed_port();
    let gw = Gateway::start(&core_config(
        &[dead],
        "",
        r#"retries = 0
passive_health = { consecutive_failures = 1, ejection_time = "60s" }"#,
        CATCH_ALL,
    ));
    let resp = client().get(gw.url("/accounts")).send().await.unwrap();
    let (body, _) = assert_titled_problem(resp, 502, "upstream-failed").await;
    assert_names_no_backend(&body, dead);

    // That failure ejected the only target.
    let resp = client().get(gw.url("/accounts")).send().await.unwrap();
    let (body, _) = assert_titled_problem(resp, 503, "no-healthy-upstream").await;
    assert_names_no_backend(&body, dead);
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_upstream_is_a_504_problem() {
    let core = demo_core("core-1").await;
    let gw = Gateway::start(&core_config(
        &[core],
        "",
        r#"timeouts = { read = "300ms" }"#,
        CATCH_ALL,
    ));
    let resp = client()
        .get(gw.url("/test/slow?ms=3000"))
        .send()
        .await
        .unwrap();
    let (body, _) = assert_titled_problem(resp, 504, "upstream-timeout").await;
    assert_names_no_backend(&body, core);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_error_answer_passes_through_unchanged() {
    let core = demo_core("core-1").await;
    let gw = Gateway::start(&core_config(&[core], "", "", CATCH_ALL));
    let direct = client()
        .get(format!("http://{core}/accounts/ACC-9999"))
        .send()
        .await
        .unwrap();
    assert_eq!(direct.status(), 404);
    let direct_body = direct.bytes().await.unwrap();

    let resp = client()
        .get(gw.url("/accounts/ACC-9999"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body = resp.bytes().await.unwrap();
    assert_eq!(body, direct_body, "{}", String::from_utf8_lossy(&body));
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["code"], "ACC404");
    assert!(v.get("type").is_none(), "{v}");
}

/// Peak resident memory of a process, in KiB (VmHWM).
fn peak_rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/<pid>/status");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_50_mb_response_streams_through_without_being_buffered() {
    const SIZE: u64 = 50 * 1024 * 1024;
    let core = demo_core("core-1").await;
    let gw = Gateway::start(&core_config(&[core], "", "", CATCH_ALL));
    // Warm up, so one-time allocations (pools, first connection) are not counted.
    let warm = client()
        .get(gw.url("/test/bytes?n=65536"))
        .send()
        .await
        .unwrap();
    assert_eq!(warm.bytes().await.unwrap().len(), 65536);
    let before = peak_rss_kib(gw.pid());

    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let mut resp = c
        .get(gw.url(&format!("/test/bytes?n={SIZE}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut received = 0u64;
    let mut paused = false;
    while let Some(chunk) = resp.chunk().await.unwrap() {
        assert!(chunk.iter().all(|&b| b == b'x'));
        received += chunk.len() as u64;
        if !paused {
            // A slow reader: a gateway that does not apply backpressure would now pull the
            // whole answer from the fast core into its memory.
            paused = true;
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
    }
    assert_eq!(received, SIZE);

    let growth_kib = peak_rss_kib(gw.pid()).saturating_sub(before);
    assert!(
        growth_kib < 16 * 1024,
        "the gateway's peak RSS grew by {growth_kib} KiB while streaming {SIZE} bytes"
    );
}
