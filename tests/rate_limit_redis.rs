//! The rate_limit filter with `store = "redis"` through real gateways and the real Redis on
//! 127.0.0.1:6379: one limit shared by two gateway processes, and what a gateway answers when
//! its Redis is down. These tests need Redis running: they fail, not skip, without it.

mod common;
use common::*;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const REDIS: &str = "127.0.0.1:6379";

/// Panics unless Redis answers PING: CI starts it, and a test without it proves nothing.
fn require_redis() {
    let mut stream = TcpStream::connect_timeout(&REDIS.parse().unwrap(), Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("Redis is not reachable on {REDIS} ({e}): start redis-server"));
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    stream.write_all(b"PING\r\n").unwrap();
    let mut answer = [0; 7];
    stream.read_exact(&mut answer).unwrap();
    assert_eq!(
        &answer, b"+PONG\r\n",
        "Redis on {REDIS} did not answer PING"
    );
}

/// A key prefix of this run alone, so parallel and repeated runs never share counters.
fn unique_prefix(test: &str) -> String {
    format!("corridor-it:{test}:{:016x}", fastrand::u64(..))
}

/// One upstream "core" and the route /accounts through a rate_limit keyed by x-partner with
/// `limits` (the TOML array's contents) in Redis, with `redis` (the inline table's contents).
fn config(core: SocketAddr, limits: &str, redis: &str) -> String {
    core_config(
        &[core],
        "access_log = \"off\"\nconfig_rescan = \"1h\"",
        "",
        &format!(
            r#"
[chains.partner]
filters = [{{ type = "rate_limit", key = "header:x-partner", store = "redis", limits = [{limits}], redis = {{ {redis} }} }}]

[[routes]]
id = "accounts"
upstream = "core"
chain = "partner"
[routes.match]
path_prefix = "/accounts"
"#
        ),
    )
}

async fn accounts(gw: &Gateway, partner: &str) -> reqwest::Response {
    client()
        .get(gw.url("/accounts"))
        .header("x-partner", partner)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_gateways_share_one_limit_through_redis() {
    require_redis();
    let core = demo_core("core-1").await;
    let prefix = unique_prefix("shared");
    // 50 at once, then one more every 1.2 s: the 100 requests below take far less.
    let text = config(
        core,
        r#"{ name = "minute", per = "1m", requests = 50 }"#,
        &format!(r#"key_prefix = "{prefix}", on_error = "fail_closed", timeout = "500ms""#),
    );
    let gateways = [Gateway::start(&text), Gateway::start(&text)];

    let mut allowed = [0u32; 2];
    let mut refused = [0u32; 2];
    for i in 0..100 {
        let gw = &gateways[i % 2];
        let resp = accounts(gw, "partner-a").await;
        match resp.status().as_u16() {
            200 => {
                allowed[i % 2] += 1;
                assert_eq!(
                    header(&resp, "ratelimit-policy"),
                    Some("\"minute\";q=50;w=60")
                );
            }
            429 => {
                refused[i % 2] += 1;
                assert_problem(resp, 429, "rate-limited").await;
            }
            status => panic!("{status}: {}", gw.stderr()),
        }
    }
    let total = allowed[0] + allowed[1];
    assert!(
        (48..=52).contains(&total),
        "{allowed:?} allowed, {refused:?} refused: one limit of 50 across both gateways"
    );
    // Each gateway served about half, and refused the rest once the shared allowance was
    // spent: neither counted on its own.
    assert!(
        allowed.iter().all(|&n| (20..=30).contains(&n)),
        "{allowed:?}"
    );
    assert!(refused.iter().all(|&n| n >= 20), "{refused:?}");
    // Another partner has an allowance of its own, on either gateway.
    assert_eq!(accounts(&gateways[1], "partner-b").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gateway_without_its_redis_fails_closed_or_counts_locally() {
    require_redis();
    let core = demo_core("core-1").await;
    let down = closed_port();
    let limits = r#"{ name = "hour", per = "1h", requests = 10 }"#;
    let redis = |on_error: &str| {
        format!(
            r#"url = "redis://{down}/0", key_prefix = "{}", on_error = "{on_error}", timeout = "100ms""#,
            unique_prefix("down")
        )
    };

    let closed = Gateway::start(&config(core, limits, &redis("fail_closed")));
    for _ in 0..5 {
        let resp = accounts(&closed, "p").await;
        assert_eq!(header(&resp, "retry-after"), Some("5"));
        let (_, problem) = assert_titled_problem(resp, 503, "rate-limit-unavailable").await;
        assert_eq!(problem["title"], "Rate limiting unavailable");
    }

    // 10 an hour at the default local share of 0.5: 5 through this instance, then 429s.
    let local = Gateway::start(&config(core, limits, &redis("local")));
    for _ in 0..5 {
        let resp = accounts(&local, "p").await;
        assert_eq!(resp.status(), 200, "{}", local.stderr());
    }
    for _ in 0..3 {
        assert_problem(accounts(&local, "p").await, 429, "rate-limited").await;
    }
    assert_eq!(accounts(&local, "q").await.status(), 200);
}
