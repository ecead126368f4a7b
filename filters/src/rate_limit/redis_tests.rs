//! The Redis store against the real Redis on 127.0.0.1:6379 (`redis-server` must run: these
//! tests fail, not skip, without it). Each test uses its own key prefix.

use super::filter::{RateLimitFilter, STORE};
use super::*;
use crate::{Flow, Reply, RequestContext};
use http::StatusCode;
use std::time::Instant;

const REDIS: &str = "redis://127.0.0.1:6379/0";

/// A key prefix no other test (or run) uses.
fn prefix(test: &str) -> String {
    format!("corridor-test:{test}:{:016x}", fastrand::u64(..))
}

fn compile(src: &str) -> Result<RateLimitFilter, String> {
    let config: RateLimitConfig = toml::from_str(src).map_err(|e| e.to_string())?;
    config.compile(&BuildContext::default()).map_err(|e| e.0)
}

/// A filter keyed by `x-partner` with `limits` and `redis = { url, key_prefix, extra }`.
fn filter(url: &str, test: &str, limits: &str, extra: &str) -> RateLimitFilter {
    let prefix = prefix(test);
    compile(&format!(
        "key = \"header:x-partner\"\nstore = \"redis\"\nlimits = [{limits}]\n\
         redis = {{ url = \"{url}\", key_prefix = \"{prefix}\" {extra} }}"
    ))
    .unwrap()
}

async fn connection() -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(REDIS).unwrap();
    let mut connection = tokio::time::timeout(
        Duration::from_secs(5),
        client.get_multiplexed_async_connection(),
    )
    .await
    .expect("Redis on 127.0.0.1:6379 answers in time")
    .expect("Redis runs on 127.0.0.1:6379 (start redis-server)");
    let pong: String = redis::cmd("PING")
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(pong, "PONG");
    connection
}

/// One request as `partner`: the outcome, and the `rate_limit.store` attribute.
async fn call(f: &RateLimitFilter, partner: &str) -> (Result<http::HeaderMap, Reply>, String) {
    let mut req = http::Request::builder()
        .header("x-partner", partner)
        .body(())
        .unwrap()
        .into_parts()
        .0;
    let mut ctx = RequestContext::new("r-1".into(), "route".into(), Some([10, 0, 0, 1].into()));
    let outcome = match f.on_request(&mut req, &mut ctx).await {
        Flow::Continue => {
            let (mut resp, _) = http::Response::new(()).into_parts();
            f.on_response(&req, &mut resp, &mut ctx).await;
            Ok(resp.headers)
        }
        Flow::Respond(reply) => Err(reply),
    };
    // A fallback is also reported as an event, which the gateway counts in its metrics.
    let fell_back = ctx.attributes.get(STORE).is_some_and(|s| s == "fallback");
    assert_eq!(
        ctx.events.contains(&"rate_limit_redis_unavailable"),
        fell_back
    );
    (
        outcome,
        ctx.attributes.get(STORE).cloned().unwrap_or_default(),
    )
}

fn text<'a>(h: &'a http::HeaderMap, name: &str) -> &'a str {
    h.get(name).unwrap().to_str().unwrap()
}

#[tokio::test]
async fn exact_allowance_then_429_with_the_local_headers() {
    connection().await;
    let f = filter(
        REDIS,
        "exact",
        r#"{ name = "hour", per = "1h", requests = 5 }"#,
        "",
    );
    for left in (0..5).rev() {
        let (outcome, store) = call(&f, "p").await;
        let headers = outcome.unwrap_or_else(|r| panic!("refused: {:?}", r.headers));
        assert_eq!(store, "redis");
        assert_eq!(text(&headers, "ratelimit-policy"), "\"hour\";q=5;w=3600");
        assert_eq!(
            text(&headers, "ratelimit"),
            format!("\"hour\";r={left};t=720")
        );
    }
    let (outcome, store) = call(&f, "p").await;
    let reply = outcome.unwrap_err();
    assert_eq!(store, "redis");
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(reply.problem.as_ref().unwrap().kind, "rate-limited");
    let wait: u64 = text(&reply.headers, "retry-after").parse().unwrap();
    assert!((719..=720).contains(&wait), "{wait}");
    assert_eq!(
        text(&reply.headers, "ratelimit"),
        format!("\"hour\";r=0;t={wait}")
    );
    // Another key has its own allowance.
    assert!(call(&f, "q").await.0.is_ok());
}

#[tokio::test]
async fn a_request_counts_only_when_every_limit_allows_it() {
    connection().await;
    let prefix = prefix("all-or-nothing");
    let build = |limits: &str| {
        compile(&format!(
            "key = \"header:x-partner\"\nstore = \"redis\"\nlimits = [{limits}]\n\
             redis = {{ key_prefix = \"{prefix}\" }}"
        ))
        .unwrap()
    };
    let b = r#"{ name = "b", per = "1h", requests = 4 }"#;
    // Two filters on the same counters: "a" and "b", and "b" alone.
    let both = build(&format!(
        r#"{{ name = "a", per = "1h", requests = 2 }}, {b}"#
    ));
    let only_b = build(b);
    for _ in 0..2 {
        let headers = call(&both, "p").await.0.unwrap();
        // The tightest limit is shown: "a" has fewer left.
        assert!(text(&headers, "ratelimit").starts_with("\"a\""));
    }
    for _ in 0..5 {
        let reply = call(&both, "p").await.0.unwrap_err();
        assert!(text(&reply.headers, "ratelimit").starts_with("\"a\";r=0"));
    }
    // The five refusals did not count against "b": two of its four are left.
    assert!(call(&only_b, "p").await.0.is_ok());
    assert!(call(&only_b, "p").await.0.is_ok());
    let reply = call(&only_b, "p").await.0.unwrap_err();
    assert!(text(&reply.headers, "ratelimit").starts_with("\"b\";r=0"));
}

#[tokio::test]
async fn keys_are_hashed_and_expire() {
    let mut redis = connection().await;
    let f = filter(
        REDIS,
        "ttl",
        r#"{ name = "min", per = "1m", requests = 10, burst = 20 }"#,
        "",
    );
    assert!(call(&f, "partner-secret-id").await.0.is_ok());
    let store = f.redis.as_ref().unwrap();
    let key = store.redis_key(0, 0, &keys::Key::Value("partner-secret-id".into()));
    let hashed = key.rsplit(':').next().unwrap();
    assert_eq!(hashed.len(), 32);
    assert!(hashed.bytes().all(|b| b.is_ascii_hexdigit()), "{key}");
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut redis)
        .await
        .unwrap();
    // The period (60 s) plus the burst's refill (20 × 6 s).
    assert!(ttl > 170_000 && ttl <= 180_000, "{ttl}");
}

#[test]
fn redis_configs_are_checked_and_never_echo_a_password() {
    let one = r#"limits = [{ name = "a", per = "1s", requests = 1 }]"#;
    for (redis, expected) in [
        (
            r#"url = "redis://:s3cret@127.0.0.1:6379/0""#,
            "must not hold a password",
        ),
        (
            r#"url = "redis://user:s3cret@127.0.0.1/0""#,
            "must not hold a password",
        ),
        (
            r#"url = "http://127.0.0.1:6379""#,
            "url must start with redis://",
        ),
        (
            r#"password_env = "CORRIDOR_TEST_UNSET_VARIABLE""#,
            "is not set",
        ),
        (r#"password_file = "/nonexistent/s3cret""#, "cannot read"),
        (r#"timeout = "0s""#, "timeout must be"),
        (
            "breaker_failures = 0",
            "breaker_failures must be at least 1",
        ),
        (r#"breaker_open = "0s""#, "breaker_open must be"),
        ("local_share = 0.0", "local_share must be"),
        ("local_share = 1.5", "local_share must be"),
        (r#"key_prefix = "has space""#, "key_prefix must be"),
    ] {
        let src = format!("store = \"redis\"\n{one}\nredis = {{ {redis} }}");
        let err = compile(&src)
            .err()
            .unwrap_or_else(|| panic!("accepted: {src}"));
        assert!(err.starts_with("rate_limit: redis."), "{err}");
        assert!(err.contains(expected), "{src}: {err}");
        if !expected.contains("cannot read") {
            assert!(!err.contains("s3cret"), "{err}");
        }
    }
    let err = compile(&format!("{one}\nredis = {{}}")).err().unwrap();
    assert!(err.contains("store is \"local\""), "{err}");
    assert!(toml::from_str::<RateLimitConfig>(&format!("{one}\nredis = {{ port = 1 }}")).is_err());
    // Defaults throughout; building connects to nothing, even to a closed port.
    let f = compile(&format!("store = \"redis\"\n{one}")).unwrap();
    assert!(f.redis.is_some());
    assert!(compile(&format!(
        "store = \"redis\"\n{one}\nredis = {{ url = \"redis://127.0.0.1:1/0\" }}"
    ))
    .is_ok());
}

/// Requests as `p` through a filter on a Redis that is not there (a closed port).
fn unreachable(on_error: &str) -> RateLimitFilter {
    filter(
        "redis://127.0.0.1:1/0",
        "down",
        r#"{ name = "hour", per = "1h", requests = 10 }"#,
        &format!(", on_error = \"{on_error}\", timeout = \"200ms\""),
    )
}

#[tokio::test]
async fn an_unreachable_redis_fails_open_closed_or_local() {
    let open = unreachable("fail_open");
    for _ in 0..20 {
        let (outcome, store) = call(&open, "p").await;
        assert!(outcome.unwrap().get("ratelimit").is_none());
        assert_eq!(store, "fallback");
    }

    let closed = unreachable("fail_closed");
    let (outcome, store) = call(&closed, "p").await;
    let reply = outcome.unwrap_err();
    assert_eq!(store, "fallback");
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    let problem = reply.problem.as_ref().unwrap();
    assert_eq!(problem.kind, "rate-limit-unavailable");
    assert_eq!(problem.title, "Rate limiting unavailable");
    assert_eq!(text(&reply.headers, "retry-after"), "5");

    // 10 an hour at the default local share of 0.5: 5 allowed here, then 429s.
    let local = unreachable("local");
    for _ in 0..5 {
        let (outcome, store) = call(&local, "p").await;
        let headers = outcome.unwrap();
        assert_eq!(store, "fallback");
        assert_eq!(text(&headers, "ratelimit-policy"), "\"hour\";q=10;w=3600");
    }
    let (outcome, store) = call(&local, "p").await;
    assert_eq!(outcome.unwrap_err().status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(store, "fallback");
    assert!(call(&local, "q").await.0.is_ok());
}

#[tokio::test]
async fn an_open_breaker_keeps_requests_off_a_stalled_redis() {
    // A server that accepts connections and never answers: every call takes the timeout.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let accepting = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let timeout = Duration::from_millis(200);
    let f = filter(
        &format!("redis://{address}/0"),
        "stalled",
        r#"{ name = "hour", per = "1h", requests = 100 }"#,
        r#", on_error = "fail_open", timeout = "200ms", breaker_failures = 3, breaker_open = "1h""#,
    );
    let start = Instant::now();
    for _ in 0..3 {
        assert_eq!(call(&f, "p").await.1, "fallback");
    }
    // Three timeouts opened the breaker.
    assert!(start.elapsed() >= timeout * 3, "{:?}", start.elapsed());
    assert!(f.redis.as_ref().unwrap().breaker.is_open());
    let start = Instant::now();
    for _ in 0..20 {
        assert_eq!(call(&f, "p").await.1, "fallback");
    }
    // 20 calls to Redis would take 4 s; skipping Redis takes next to nothing.
    assert!(start.elapsed() < timeout * 2, "{:?}", start.elapsed());
    accepting.abort();
}
