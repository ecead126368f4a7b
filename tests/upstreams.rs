//! Upstream behaviour through the real gateway: balancing, active and passive health,
//! timeouts, failures as problems, and retries.

mod common;
use common::*;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use serde_json::Value;

/// A time limit for a polling loop.
struct Deadline {
    end: Instant,
    what: &'static str,
}

impl Deadline {
    fn new(limit: Duration, what: &'static str) -> Self {
        Deadline {
            end: Instant::now() + limit,
            what,
        }
    }

    fn check(&self) {
        assert!(
            Instant::now() < self.end,
            "timed out waiting for: {}",
            self.what
        );
    }
}

/// GET `path` on the gateway; returns status and body text.
async fn get_text(c: &reqwest::Client, gw: &Gateway, path: &str) -> (u16, String) {
    let resp = c.get(gw.url(path)).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

/// Which demo core answered `/test/whoami` (asserts a 200).
async fn whoami(c: &reqwest::Client, gw: &Gateway) -> String {
    let (status, body) = get_text(c, gw, "/test/whoami").await;
    assert_eq!(status, 200, "{body}\n{}", gw.stderr());
    body
}

/// Which demo core answered `/test/whoami` sent with one extra header (asserts a 200).
async fn whoami_with(c: &reqwest::Client, gw: &Gateway, name: &str, value: &str) -> String {
    let resp = c
        .get(gw.url("/test/whoami"))
        .header(name, value)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", gw.stderr());
    resp.text().await.unwrap()
}

fn tally(names: impl IntoIterator<Item = String>) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for name in names {
        *out.entry(name).or_insert(0) += 1;
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn round_robin_spreads_evenly_over_three_targets() {
    let targets = [
        demo_core("a").await,
        demo_core("b").await,
        demo_core("c").await,
    ];
    let gw = Gateway::start(&simple_config(&targets, "", ""));
    let c = client();
    let mut seen = Vec::new();
    for _ in 0..30 {
        seen.push(whoami(&c, &gw).await);
    }
    let counts = tally(seen);
    assert_eq!(counts.len(), 3, "{counts:?}");
    for (name, n) in &counts {
        assert!((9..=11).contains(n), "{name} got {n}: {counts:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn round_robin_follows_weights() {
    let heavy = demo_core("heavy").await;
    let light = demo_core("light").await;
    let weighted = format!(r#"{{ address = "{heavy}", weight = 3 }}, "{light}""#);
    let gw = Gateway::start(&gateway_config(
        "",
        &format!("{}{CATCH_ALL}", core_upstream(&weighted, "")),
    ));
    let c = client();
    let mut seen = Vec::new();
    for _ in 0..40 {
        seen.push(whoami(&c, &gw).await);
    }
    let counts = tally(seen);
    let (h, l) = (
        counts.get("heavy").copied().unwrap_or(0),
        counts.get("light").copied().unwrap_or(0),
    );
    assert_eq!(h + l, 40, "{counts:?}");
    assert!(
        (28..=32).contains(&h) && (8..=12).contains(&l),
        "want ~30:10, got {counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn least_connections_prefers_the_target_with_fewer_requests_in_flight() {
    // "slow" holds every request it gets; "fast" answers at once.
    let slow_arrivals = Arc::new(AtomicUsize::new(0));
    let arrivals = slow_arrivals.clone();
    let slow = serve(axum::Router::new().route(
        "/work",
        get(move || {
            let arrivals = arrivals.clone();
            async move {
                arrivals.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(60)).await;
                "slow"
            }
        }),
    ))
    .await;
    let fast = serve(axum::Router::new().route("/work", get(|| async { "fast" }))).await;
    let gw = Arc::new(Gateway::start(&simple_config(
        &[slow, fast],
        "balance = \"least_connections\"",
        "",
    )));

    let fast_answers = Arc::new(AtomicUsize::new(0));
    let total = 20;
    let mut tasks = Vec::new();
    for i in 0..total {
        let (gw, answers) = (gw.clone(), fast_answers.clone());
        tasks.push(tokio::spawn(async move {
            let (status, body) = get_text(&client(), &gw, "/work").await;
            assert_eq!((status, body.as_str()), (200, "fast"));
            answers.fetch_add(1, Ordering::SeqCst);
        }));
        // One request at a time reaches a target: the next is sent once this one is either
        // answered by "fast" or parked on "slow".
        let deadline = Deadline::new(Duration::from_secs(10), "the request to reach a target");
        while slow_arrivals.load(Ordering::SeqCst) + fast_answers.load(Ordering::SeqCst) <= i {
            deadline.check();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let (to_slow, to_fast) = (
        slow_arrivals.load(Ordering::SeqCst),
        fast_answers.load(Ordering::SeqCst),
    );
    assert_eq!(to_slow + to_fast, total);
    // Round-robin would send half to "slow"; least-connections only the first (or a few, if
    // a finished request's count had not dropped yet when the next was routed).
    assert!(
        (1..=4).contains(&to_slow),
        "slow got {to_slow}, fast {to_fast}"
    );
    for task in tasks {
        task.abort();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn consistent_hash_on_a_header_is_sticky_and_spreads_keys() {
    let targets = [
        demo_core("a").await,
        demo_core("b").await,
        demo_core("c").await,
    ];
    let gw = Gateway::start(&simple_config(
        &targets,
        "balance = \"consistent_hash\"\nhash_on = \"header:x-account\"",
        "",
    ));
    let c = client();
    for key in ["acct-1", "acct-2", "acct-3", "DE89370400440532013000"] {
        let first = whoami_with(&c, &gw, "x-account", key).await;
        for _ in 0..19 {
            assert_eq!(
                whoami_with(&c, &gw, "x-account", key).await,
                first,
                "key {key} moved"
            );
        }
    }
    let mut by_key = Vec::new();
    for k in 0..60 {
        by_key.push(whoami_with(&c, &gw, "x-account", &format!("account-{k}")).await);
    }
    let counts = tally(by_key);
    assert_eq!(
        counts.len(),
        3,
        "60 keys should reach all 3 targets: {counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn consistent_hash_on_client_ip_is_sticky() {
    let targets = [
        demo_core("a").await,
        demo_core("b").await,
        demo_core("c").await,
    ];
    let upstream = "balance = \"consistent_hash\"\nhash_on = \"client_ip\"";

    // The peer is not a trusted proxy: X-Forwarded-For is ignored, every request is 127.0.0.1.
    let gw = Gateway::start(&simple_config(&targets, upstream, ""));
    let mut seen = Vec::new();
    for i in 0..20 {
        // A new client each time: a new connection and source port.
        let resp = client()
            .get(gw.url("/test/whoami"))
            .header("x-forwarded-for", format!("10.1.{i}.7"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        seen.push(resp.text().await.unwrap());
    }
    let counts = tally(seen);
    assert_eq!(
        counts.len(),
        1,
        "one client IP must stay on one target: {counts:?}"
    );
    drop(gw);

    // Behind a trusted proxy the client IP comes from X-Forwarded-For: each stays put, and
    // different ones spread.
    let gw = Gateway::start(&core_config(
        &targets,
        "trusted_proxies = [\"127.0.0.1\"]",
        upstream,
        CATCH_ALL,
    ));
    for ip in ["203.0.113.9", "198.51.100.20"] {
        let first = whoami_with(&client(), &gw, "x-forwarded-for", ip).await;
        for _ in 0..19 {
            assert_eq!(
                whoami_with(&client(), &gw, "x-forwarded-for", ip).await,
                first,
                "client {ip} moved"
            );
        }
    }
    let mut by_ip = Vec::new();
    for k in 0..60 {
        by_ip.push(whoami_with(&client(), &gw, "x-forwarded-for", &format!("10.2.{k}.1")).await);
    }
    let counts = tally(by_ip);
    assert_eq!(
        counts.len(),
        3,
        "60 client IPs should reach all 3 targets: {counts:?}"
    );
}

const ACTIVE_CHECKS: &str = r#"
[upstreams.core.health_check]
path = "/health"
interval = "200ms"
timeout = "200ms"
healthy_threshold = 1
unhealthy_threshold = 1
"#;

#[tokio::test(flavor = "multi_thread")]
async fn active_health_checks_take_a_target_out_and_bring_it_back() {
    let (a_addr, a) = switchable("a").await;
    let (b_addr, _b) = switchable("b").await;
    let gw = Gateway::start(&simple_config(&[a_addr, b_addr], ACTIVE_CHECKS, ""));
    let c = client();

    // Both take traffic at first.
    let mut seen = Vec::new();
    for _ in 0..6 {
        seen.push(who(&c, &gw).await);
    }
    assert_eq!(tally(seen).len(), 2);

    a.healthy.store(false, Ordering::SeqCst);
    // Once a check has failed, "a" gets nothing: wait for 10 "b" in a row.
    let deadline = Deadline::new(Duration::from_secs(10), "\"a\" to be taken out");
    let mut streak = 0;
    while streak < 10 {
        deadline.check();
        streak = if who(&c, &gw).await == "b" {
            streak + 1
        } else {
            0
        };
    }
    let a_hits = a.hits.load(Ordering::SeqCst);
    for _ in 0..20 {
        assert_eq!(who(&c, &gw).await, "b");
    }
    assert_eq!(
        a.hits.load(Ordering::SeqCst),
        a_hits,
        "an unhealthy target got traffic"
    );
    assert!(a.checks.load(Ordering::SeqCst) > 0);

    a.healthy.store(true, Ordering::SeqCst);
    let deadline = Deadline::new(Duration::from_secs(10), "\"a\" to get traffic again");
    while who(&c, &gw).await != "a" {
        deadline.check();
    }
}

/// GET `/who` on a switchable backend through the gateway (asserts a 200).
async fn who(c: &reqwest::Client, gw: &Gateway) -> String {
    let (status, body) = get_text(c, gw, "/who").await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn all_targets_unhealthy_is_a_503_problem() {
    let (a_addr, a) = switchable("a").await;
    let (b_addr, b) = switchable("b").await;
    a.healthy.store(false, Ordering::SeqCst);
    b.healthy.store(false, Ordering::SeqCst);
    let gw = Gateway::start(&simple_config(&[a_addr, b_addr], ACTIVE_CHECKS, ""));
    let c = client();
    let deadline = Deadline::new(Duration::from_secs(10), "a 503");
    let resp = loop {
        deadline.check();
        let resp = c.get(gw.url("/who")).send().await.unwrap();
        if resp.status() == 503 {
            break resp;
        }
    };
    assert_problem(resp, 503, "no-healthy-upstream").await;
    let hits = a.hits.load(Ordering::SeqCst) + b.hits.load(Ordering::SeqCst);
    for _ in 0..5 {
        assert_problem(
            c.get(gw.url("/who")).send().await.unwrap(),
            503,
            "no-healthy-upstream",
        )
        .await;
    }
    assert_eq!(
        a.hits.load(Ordering::SeqCst) + b.hits.load(Ordering::SeqCst),
        hits
    );

    b.healthy.store(true, Ordering::SeqCst);
    let deadline = Deadline::new(Duration::from_secs(10), "\"b\" to come back");
    while get_text(&c, &gw, "/who").await != (200, "b".to_string()) {
        deadline.check();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn passive_ejection_takes_a_failing_target_out_for_a_while() {
    let (a_addr, a) = switchable("a").await;
    let (b_addr, b) = switchable("b").await;
    a.broken.store(true, Ordering::SeqCst);
    let ejection = Duration::from_secs(1);
    let gw = Gateway::start(&simple_config(
        &[a_addr, b_addr],
        "[upstreams.core.passive_health]\nconsecutive_failures = 2\nejection_time = \"1s\"",
        "",
    ));
    let c = client();

    // Until "a" has answered 502 twice in a row it still gets its turn.
    let mut ejected_at = None;
    for _ in 0..10 {
        let sent = Instant::now();
        let (status, body) = get_text(&c, &gw, "/who").await;
        match body.as_str() {
            "a" => assert_eq!(status, 502),
            "b" => assert_eq!(status, 200),
            other => panic!("{status} {other}"),
        }
        if a.hits.load(Ordering::SeqCst) == 2 {
            ejected_at = Some(sent);
            break;
        }
    }
    // The second failure's request was sent no later than the ejection began.
    let ejected_at = ejected_at.expect("\"a\" got two requests");
    a.broken.store(false, Ordering::SeqCst);

    // While ejected, everything goes to "b"; afterwards "a" (healed) gets traffic again.
    let mut during = 0;
    let b_before = b.hits.load(Ordering::SeqCst);
    let deadline = Deadline::new(
        Duration::from_secs(10),
        "\"a\" to get traffic after its ejection",
    );
    loop {
        deadline.check();
        let sent = Instant::now();
        let (status, body) = get_text(&c, &gw, "/who").await;
        assert_eq!(status, 200, "{body}");
        let into = sent.duration_since(ejected_at);
        if body == "a" {
            assert!(
                into >= ejection - Duration::from_millis(100),
                "\"a\" got traffic {into:?} into a {ejection:?} ejection"
            );
            break;
        }
        if into < ejection - Duration::from_millis(100) {
            during += 1;
        }
    }
    assert!(
        during >= 3,
        "only {during} requests fell inside the ejection window"
    );
    assert!(b.hits.load(Ordering::SeqCst) >= b_before + during);
}

#[tokio::test(flavor = "multi_thread")]
async fn read_timeout_is_a_504_problem_and_is_not_retried() {
    let (a, b) = (demo_core("a").await, demo_core("b").await);
    let gw = Gateway::start(&simple_config(
        &[a, b],
        "[upstreams.core.timeouts]\nread = \"300ms\"",
        "",
    ));
    let c = client();
    let resp = c.get(gw.url("/test/slow?ms=2000")).send().await.unwrap();
    assert_problem(resp, 504, "upstream-timeout").await;
    // A slow core is not gone: only one of the two targets was asked.
    assert_eq!(hits(a).await + hits(b).await, 1);
    // Fast requests still go through.
    let (status, _) = get_text(&c, &gw, "/test/slow?ms=10").await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_target_alone_is_a_502_problem() {
    let gw = Gateway::start(&simple_config(&[closed_port()], "", ""));
    let c = client();
    for _ in 0..3 {
        let resp = c.get(gw.url("/test/whoami")).send().await.unwrap();
        assert_problem(resp, 502, "upstream-failed").await;
    }
}

/// Access log lines once there are at least `n`.
async fn access_log(gw: &Gateway, n: usize) -> Vec<Value> {
    let deadline = Deadline::new(Duration::from_secs(5), "access log lines");
    loop {
        let log = gw.access_log();
        if log.len() >= n {
            return log;
        }
        deadline.check();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_connections_are_retried_for_any_method() {
    let b = demo_core("b").await;
    let gw = Gateway::start(&simple_config(
        &[closed_port(), b],
        "[upstreams.core.passive_health]\nconsecutive_failures = 0",
        "",
    ));
    let c = client();
    for i in 0..4 {
        assert_eq!(whoami(&c, &gw).await, "b");
        let body = format!("payment-{i}");
        let resp = c
            .post(gw.url("/test/echo/pay"))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let echo: Value = resp.json().await.unwrap();
        assert_eq!(
            (echo["method"].as_str(), echo["body"].as_str()),
            (Some("POST"), Some(body.as_str()))
        );
    }
    assert_eq!(hits(b).await, 8, "each request reached \"b\" exactly once");
    let log = access_log(&gw, 8).await;
    for method in ["GET", "POST"] {
        assert!(
            log.iter()
                .any(|l| l["method"] == method && l["attempts"] == 2 && l["status"] == 200),
            "no retried {method} in {log:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_target_that_hangs_up_gets_get_retried_but_not_post() {
    let (raw, accepted) = hang_up_backend().await;
    let b = demo_core("b").await;
    let gw = Gateway::start(&simple_config(
        &[raw, b],
        "[upstreams.core.passive_health]\nconsecutive_failures = 0",
        "",
    ));
    let c = client();

    // GET: keep asking until one request went to the hang-up target first.
    let mut retried = false;
    for _ in 0..4 {
        let (raw_before, b_before) = (accepted.load(Ordering::SeqCst), hits(b).await);
        assert_eq!(whoami(&c, &gw).await, "b");
        let raw_after = accepted.load(Ordering::SeqCst);
        assert_eq!(hits(b).await, b_before + 1);
        if raw_after > raw_before {
            assert_eq!(
                raw_after,
                raw_before + 1,
                "the hang-up target was tried more than once"
            );
            retried = true;
            break;
        }
    }
    assert!(retried, "no GET was sent to the hang-up target");

    // POST: the request reached the target, which may have acted on it: no retry.
    let mut refused = false;
    for i in 0..4 {
        let (raw_before, b_before) = (accepted.load(Ordering::SeqCst), hits(b).await);
        let resp = c
            .post(gw.url("/test/echo/pay"))
            .body(format!("payment-{i}"))
            .send()
            .await
            .unwrap();
        let raw_after = accepted.load(Ordering::SeqCst);
        if raw_after > raw_before {
            assert_eq!(raw_after, raw_before + 1);
            assert_problem(resp, 502, "upstream-failed").await;
            assert_eq!(hits(b).await, b_before, "the POST was retried on \"b\"");
            refused = true;
            break;
        }
        assert_eq!(resp.status(), 200);
    }
    assert!(refused, "no POST was sent to the hang-up target");
}

#[tokio::test(flavor = "multi_thread")]
async fn zero_retries_means_one_attempt() {
    let no_ejection = "retries = 0\n[upstreams.core.passive_health]\nconsecutive_failures = 0";
    let c = client();

    // A refused connection is not retried either.
    let b = demo_core("b").await;
    let gw = Gateway::start(&simple_config(&[closed_port(), b], no_ejection, ""));
    let mut failed = 0;
    for _ in 0..4 {
        let resp = c.get(gw.url("/test/whoami")).send().await.unwrap();
        if resp.status() == 200 {
            assert_eq!(resp.text().await.unwrap(), "b");
        } else {
            assert_problem(resp, 502, "upstream-failed").await;
            failed += 1;
        }
    }
    assert!(failed >= 1, "no request went to the dead target");
    assert_eq!(hits(b).await, 4 - failed as u64);
    drop(gw);

    // Nor is a GET whose target hung up.
    let (raw, accepted) = hang_up_backend().await;
    let b = demo_core("b").await;
    let gw = Gateway::start(&simple_config(&[raw, b], no_ejection, ""));
    let mut failed = 0;
    for _ in 0..4 {
        let (raw_before, b_before) = (accepted.load(Ordering::SeqCst), hits(b).await);
        let resp = c.get(gw.url("/test/whoami")).send().await.unwrap();
        if accepted.load(Ordering::SeqCst) > raw_before {
            assert_problem(resp, 502, "upstream-failed").await;
            assert_eq!(hits(b).await, b_before, "retried despite retries = 0");
            failed += 1;
        } else {
            assert_eq!(resp.status(), 200);
        }
    }
    assert!(failed >= 1, "no request went to the hang-up target");
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_bound_the_number_of_attempts() {
    let no_ejection = "[upstreams.core.passive_health]\nconsecutive_failures = 0";
    let b = demo_core("b").await;
    let targets = [closed_port(), closed_port(), b];
    let c = client();

    // Two dead targets before "b": one retry is not always enough...
    let gw = Gateway::start(&simple_config(
        &targets,
        &format!("retries = 1\n{no_ejection}"),
        "",
    ));
    let mut failed = 0;
    for _ in 0..6 {
        let resp = c.get(gw.url("/test/whoami")).send().await.unwrap();
        if resp.status() != 200 {
            assert_problem(resp, 502, "upstream-failed").await;
            failed += 1;
        }
    }
    assert!(failed >= 1, "two dead targets and one retry never failed");
    let log = access_log(&gw, 6).await;
    assert!(
        log.iter().all(|l| l["attempts"].as_u64().unwrap() <= 2),
        "{log:?}"
    );
    drop(gw);

    // ...two always are.
    let gw = Gateway::start(&simple_config(
        &targets,
        &format!("retries = 2\n{no_ejection}"),
        "",
    ));
    for _ in 0..6 {
        assert_eq!(whoami(&c, &gw).await, "b");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn gateway_error_answers_keep_their_connection_promise() {
    // A connection the gateway answers on without "Connection: close" is persistent
    // (RFC 9112 9.3): clients pool it and send the next request on it. If the gateway closes
    // it anyway, pooled clients get resets on the next request.
    let slow = demo_core("slow").await;
    let (sick_addr, sick) = switchable("sick").await;
    sick.healthy.store(false, Ordering::SeqCst);
    let dead = Gateway::start(&simple_config(&[closed_port()], "", ""));
    let timing_out = Gateway::start(&simple_config(
        &[slow],
        "[upstreams.core.timeouts]\nread = \"300ms\"",
        "",
    ));
    let unhealthy = Gateway::start(&simple_config(&[sick_addr], ACTIVE_CHECKS, ""));
    // Wait for the active check to take "sick" out.
    let deadline = Deadline::new(Duration::from_secs(10), "a 503 from the unhealthy upstream");
    while get_text(&client(), &unhealthy, "/who").await.0 != 503 {
        deadline.check();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (gw, path, status) in [
        (&dead, "/test/whoami", "502"),
        (&timing_out, "/test/slow?ms=2000", "504"),
        (&unhealthy, "/who", "503"),
    ] {
        let mut stream = tokio::net::TcpStream::connect(gw.addr()).await.unwrap();
        let head = raw_get(&mut stream, path).await.unwrap();
        assert!(head.starts_with(&format!("http/1.1 {status}")), "{head}");
        if head.contains("connection: close") {
            continue; // announced: the client will not reuse it
        }
        let again = raw_get(&mut stream, path).await;
        assert!(
            again.as_ref().is_ok_and(|h| h.starts_with(&format!("http/1.1 {status}"))),
            "after a {status} answered with\n{head}the gateway dropped the connection it kept open: {again:?}"
        );
    }
}
