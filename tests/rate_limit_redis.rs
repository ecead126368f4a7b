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

/// A TCP relay to the real Redis that the test can cut and restore: while down, it closes
/// every relayed connection and every new one at once.
struct RedisRelay {
    addr: SocketAddr,
    up: tokio::sync::watch::Sender<bool>,
}

impl RedisRelay {
    async fn start() -> RedisRelay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (up, _) = tokio::sync::watch::channel(true);
        let switch = up.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                // Subscribed before the check: a switch after it still reaches the relay.
                let mut state = switch.subscribe();
                if !*state.borrow_and_update() {
                    drop(client);
                    continue;
                }
                tokio::spawn(async move {
                    let Ok(mut redis) = tokio::net::TcpStream::connect(REDIS).await else {
                        return;
                    };
                    tokio::select! {
                        biased;
                        _ = state.wait_for(|up| !*up) => {}
                        _ = tokio::io::copy_bidirectional(&mut client, &mut redis) => {}
                    }
                    // Both sockets dropped here: the gateway sees its connection closed.
                });
            }
        });
        RedisRelay { addr, up }
    }

    fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }
}

async fn redis_unavailable_events(admin: u16) -> f64 {
    metric(
        &admin_metrics(admin).await,
        "corridor_filter_events_total",
        &[
            ("route", "accounts"),
            ("event", "rate_limit_redis_unavailable"),
        ],
    )
    .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gateway_recovers_when_its_redis_comes_back() {
    require_redis();
    let core = demo_core("core-1").await;
    let relay = RedisRelay::start().await;
    let admin = free_port();
    let timeout = Duration::from_millis(100);
    let text = format!(
        "{}\n{}",
        config(
            core,
            r#"{ name = "minute", per = "1m", requests = 100000 }"#,
            &format!(
                r#"url = "redis://{}/0", key_prefix = "{}", on_error = "fail_closed", timeout = "100ms", breaker_failures = 2, breaker_open = "500ms""#,
                relay.addr,
                unique_prefix("flap")
            ),
        ),
        admin_section(admin, "")
    );
    let gw = Gateway::start_with_admin(&text, admin);

    // Up: counted in Redis.
    for _ in 0..5 {
        let resp = accounts(&gw, "p").await;
        assert_eq!(resp.status(), 200, "{}", gw.stderr());
        assert!(header(&resp, "ratelimit-policy").is_some());
    }
    assert_eq!(redis_unavailable_events(admin).await, 0.0);

    // Down: every answer is the fail_closed 503, counted as a fallback.
    relay.set_up(false);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let down_requests = 4;
    for _ in 0..down_requests {
        let resp = accounts(&gw, "p").await;
        assert_eq!(header(&resp, "retry-after"), Some("1"));
        assert_problem(resp, 503, "rate-limit-unavailable").await;
    }
    // The breaker is open now: no request waits for Redis's timeout.
    let started = std::time::Instant::now();
    for _ in 0..10 {
        assert_problem(accounts(&gw, "p").await, 503, "rate-limit-unavailable").await;
    }
    let took = started.elapsed();
    assert!(
        took < timeout * 10 / 2,
        "10 requests with the breaker open took {took:?}"
    );
    let expected = f64::from(down_requests + 10);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut events = redis_unavailable_events(admin).await;
    while events < expected && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        events = redis_unavailable_events(admin).await;
    }
    assert_eq!(events, expected, "fallback events while Redis was down");

    // Up again: the half-open probe and the reconnect bring the Redis store back.
    relay.set_up(true);
    let started = std::time::Instant::now();
    let deadline = started + Duration::from_secs(5);
    loop {
        let resp = accounts(&gw, "p").await;
        let status = resp.status().as_u16();
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "{}", gw.stderr());
        let last = resp.text().await.unwrap();
        assert!(
            std::time::Instant::now() < deadline,
            "still no 200 {:?} after Redis came back: {last}\n{}",
            started.elapsed(),
            gw.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And it stays up: counted in Redis again, no more fallbacks.
    let events = redis_unavailable_events(admin).await;
    for _ in 0..5 {
        let resp = accounts(&gw, "p").await;
        assert_eq!(resp.status(), 200, "{}", gw.stderr());
    }
    assert_eq!(redis_unavailable_events(admin).await, events);
}
