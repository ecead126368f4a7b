use super::*;
use crate::{Consumer, FilterConfig, Flow, Reply, RequestContext};
use http::StatusCode;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Instant;

fn compile(src: &str) -> Result<RateLimitFilter, String> {
    let config: RateLimitConfig = toml::from_str(src).map_err(|e| e.to_string())?;
    config.compile(&BuildContext::default()).map_err(|e| e.0)
}

fn filter(src: &str) -> RateLimitFilter {
    compile(src).unwrap()
}

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
}

fn ctx(client: IpAddr) -> RequestContext {
    RequestContext::new("r-1".into(), "route".into(), Some(client))
}

fn request(headers: &[(&str, &str)]) -> http::request::Parts {
    let mut b = http::Request::builder();
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap().into_parts().0
}

/// What the client gets for one request: the allowed response's headers, or the 429.
enum Answer {
    Allowed(http::HeaderMap),
    Refused(Reply),
}

impl Answer {
    fn allowed(self) -> http::HeaderMap {
        match self {
            Answer::Allowed(h) => h,
            Answer::Refused(r) => panic!("refused: {:?}", r.headers),
        }
    }

    fn refused(self) -> Reply {
        match self {
            Answer::Refused(r) => r,
            Answer::Allowed(h) => panic!("allowed: {h:?}"),
        }
    }

    fn is_allowed(&self) -> bool {
        matches!(self, Answer::Allowed(_))
    }
}

async fn call_with(f: &RateLimitFilter, headers: &[(&str, &str)], mut c: RequestContext) -> Answer {
    let mut req = request(headers);
    match f.on_request(&mut req, &mut c).await {
        Flow::Continue => {
            let (mut resp, _) = http::Response::new(()).into_parts();
            f.on_response(&req, &mut resp, &mut c).await;
            assert!(c.take_kept::<super::filter::Allowed>(f.id).is_none());
            Answer::Allowed(resp.headers)
        }
        Flow::Respond(reply) => Answer::Refused(reply),
    }
}

async fn call(f: &RateLimitFilter, client: IpAddr, headers: &[(&str, &str)]) -> Answer {
    call_with(f, headers, ctx(client)).await
}

fn text<'a>(h: &'a http::HeaderMap, name: &str) -> &'a str {
    h.get(name)
        .unwrap_or_else(|| panic!("no {name} in {h:?}"))
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn exact_allowance_then_429_with_headers() {
    let f = filter(r#"limits = [{ name = "minute", per = "1m", requests = 5 }]"#);
    for left in (0..5).rev() {
        let h = call(&f, ip(1), &[]).await.allowed();
        assert_eq!(text(&h, "ratelimit"), format!("\"minute\";r={left};t=12"));
        assert_eq!(text(&h, "ratelimit-policy"), "\"minute\";q=5;w=60");
    }
    let reply = call(&f, ip(1), &[]).await.refused();
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    let problem = reply.problem.as_ref().unwrap();
    assert_eq!(problem.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(problem.kind, "rate-limited");
    assert_eq!(problem.title, "Too many requests");
    assert_eq!(
        problem.detail.as_deref(),
        Some("over the \"minute\" limit of 5 requests per 1m")
    );
    let retry: u64 = text(&reply.headers, "retry-after").parse().unwrap();
    assert!((11..=12).contains(&retry), "{retry}");
    assert_eq!(
        text(&reply.headers, "ratelimit"),
        format!("\"minute\";r=0;t={retry}")
    );
    assert_eq!(
        text(&reply.headers, "ratelimit-policy"),
        "\"minute\";q=5;w=60"
    );
    // Refused requests do not push the wait further.
    let again = call(&f, ip(1), &[]).await.refused();
    assert!(text(&again.headers, "retry-after").parse::<u64>().unwrap() <= retry);
}

#[tokio::test]
async fn headers_refused_keeps_the_headers_for_the_429s() {
    let f = filter(
        r#"headers = "refused"
limits = [{ name = "minute", per = "1m", requests = 2 }]"#,
    );
    for _ in 0..2 {
        let h = call(&f, ip(1), &[]).await.allowed();
        assert!(h.get("ratelimit").is_none() && h.get("ratelimit-policy").is_none());
    }
    let reply = call(&f, ip(1), &[]).await.refused();
    assert_eq!(
        text(&reply.headers, "ratelimit-policy"),
        "\"minute\";q=2;w=60"
    );
    assert!(reply.headers.get("ratelimit").is_some());
}

#[tokio::test]
async fn burst_allows_more_at_once_and_shows_in_the_policy() {
    let f = filter(r#"limits = [{ name = "burst", per = "1m", requests = 20, burst = 40 }]"#);
    for _ in 0..40 {
        let h = call(&f, ip(1), &[]).await.allowed();
        assert_eq!(text(&h, "ratelimit-policy"), "\"burst\";q=40;w=120");
    }
    call(&f, ip(1), &[]).await.refused();

    // Smoothing: 10 a second sustained, but never more than 2 at once.
    let f = filter(r#"limits = [{ name = "smooth", per = "1m", requests = 600, burst = 2 }]"#);
    let h = call(&f, ip(1), &[]).await.allowed();
    assert_eq!(text(&h, "ratelimit-policy"), "\"smooth\";q=2;w=1");
    assert_eq!(text(&h, "ratelimit"), "\"smooth\";r=1;t=1");
}

#[tokio::test]
async fn allowance_comes_back_over_time() {
    let f = filter(r#"limits = [{ name = "fast", per = "200ms", requests = 2 }]"#);
    let start = Instant::now();
    let mut allowed = 0;
    let reply = loop {
        match call(&f, ip(1), &[]).await {
            Answer::Allowed(_) => allowed += 1,
            Answer::Refused(reply) => break reply,
        }
    };
    // One request comes back every 100 ms: a slow machine may see a third.
    assert!(
        allowed >= 2 && allowed <= 2 + start.elapsed().as_millis() / 100,
        "{allowed}"
    );
    // Less than a second to wait is still announced as 1.
    assert_eq!(text(&reply.headers, "retry-after"), "1");
    let refused_at = Instant::now();
    loop {
        if call(&f, ip(1), &[]).await.is_allowed() {
            break;
        }
        assert!(
            refused_at.elapsed() < Duration::from_secs(5),
            "never allowed again"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn keys_have_their_own_allowance() {
    let f = filter(r#"limits = [{ name = "minute", per = "1m", requests = 2 }]"#);
    for _ in 0..2 {
        call(&f, ip(1), &[]).await.allowed();
    }
    call(&f, ip(1), &[]).await.refused();
    for _ in 0..2 {
        call(&f, ip(2), &[]).await.allowed();
    }
    call(&f, ip(2), &[]).await.refused();
    // An IPv4-mapped IPv6 address is the same client.
    let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped());
    call(&f, mapped, &[]).await.refused();
}

#[tokio::test]
async fn header_key_with_overrides_and_client_ip_fallback() {
    let f = filter(
        r#"key = "header:X-Partner"
limits = [{ name = "minute", per = "1m", requests = 1 }]
overrides = { gold = [{ name = "gold", per = "1m", requests = 3 }] }"#,
    );
    for left in (0..3).rev() {
        let h = call(&f, ip(1), &[("x-partner", "gold")]).await.allowed();
        assert_eq!(text(&h, "ratelimit"), format!("\"gold\";r={left};t=20"));
        assert_eq!(text(&h, "ratelimit-policy"), "\"gold\";q=3;w=60");
    }
    let reply = call(&f, ip(1), &[("x-partner", "gold")]).await.refused();
    assert_eq!(
        text(&reply.headers, "ratelimit-policy"),
        "\"gold\";q=3;w=60"
    );

    // Another partner, from the same address, has the default limits of its own.
    call(&f, ip(1), &[("x-partner", "silver")]).await.allowed();
    call(&f, ip(1), &[("x-partner", "silver")]).await.refused();

    // No header (or an ambiguous one): counted by client IP, apart from the header values.
    call(&f, ip(1), &[]).await.allowed();
    call(&f, ip(1), &[]).await.refused();
    call(&f, ip(1), &[("x-partner", "a"), ("x-partner", "b")])
        .await
        .refused();
    let long = "x".repeat(MAX_KEY_BYTES + 1);
    call(&f, ip(1), &[("x-partner", &long)]).await.refused();
    call(&f, ip(2), &[]).await.allowed();
    // A header value that reads like an IP is not that IP.
    call(&f, ip(3), &[]).await.allowed();
    call(&f, ip(3), &[("x-partner", "10.0.0.3")])
        .await
        .allowed();
}

#[tokio::test]
async fn consumer_key_counts_unauthenticated_calls_by_client_ip() {
    let f = filter(
        r#"key = "consumer"
limits = [{ name = "minute", per = "1m", requests = 1 }]
overrides = { "10.0.0.9" = [{ name = "big", per = "1m", requests = 100 }] }"#,
    );
    let as_consumer = |id: &str, client: IpAddr| {
        let mut c = ctx(client);
        c.consumer = Some(Consumer {
            id: id.into(),
            metadata: Default::default(),
        });
        c
    };
    call_with(&f, &[], as_consumer("p-1", ip(1)))
        .await
        .allowed();
    // The same consumer from elsewhere shares its allowance.
    call_with(&f, &[], as_consumer("p-1", ip(2)))
        .await
        .refused();
    // Unauthenticated calls from the consumer's address are counted apart.
    call(&f, ip(1), &[]).await.allowed();
    call(&f, ip(1), &[]).await.refused();
    // The override names a consumer id: an unauthenticated client at that address has the
    // default limits.
    call(&f, ip(9), &[]).await.allowed();
    call(&f, ip(9), &[]).await.refused();
    for _ in 0..5 {
        call_with(&f, &[], as_consumer("10.0.0.9", ip(9)))
            .await
            .allowed();
    }
}

#[tokio::test]
async fn attribute_key_and_client_ip_overrides() {
    let f = filter(
        r#"key = "attribute:tenant"
limits = [{ name = "minute", per = "1m", requests = 1 }]"#,
    );
    let tenant = || {
        let mut c = ctx(ip(1));
        c.attributes.insert("tenant".into(), "t-1".into());
        c
    };
    call_with(&f, &[], tenant()).await.allowed();
    call_with(&f, &[], tenant()).await.refused();
    call(&f, ip(1), &[]).await.allowed();

    let f = filter(
        r#"limits = [{ name = "minute", per = "1m", requests = 1 }]
overrides = { "::ffff:10.0.0.7" = [{ name = "office", per = "1m", requests = 2 }] }"#,
    );
    for _ in 0..2 {
        call(&f, ip(7), &[]).await.allowed();
    }
    call(&f, ip(7), &[]).await.refused();
    call(&f, ip(8), &[]).await.allowed();
    call(&f, ip(8), &[]).await.refused();

    // Without a client IP, every such request shares one key.
    let none = || RequestContext::new("r".into(), "route".into(), None);
    call_with(&f, &[], none()).await.allowed();
    call_with(&f, &[], none()).await.refused();
}

#[tokio::test]
async fn every_limit_must_pass_and_the_tightest_is_shown() {
    let f = filter(
        r#"limits = [
  { name = "second", per = "1s", requests = 10 },
  { name = "minute", per = "1m", requests = 3 },
]"#,
    );
    for left in (0..3).rev() {
        let h = call(&f, ip(1), &[]).await.allowed();
        assert_eq!(text(&h, "ratelimit"), format!("\"minute\";r={left};t=20"));
        assert_eq!(
            text(&h, "ratelimit-policy"),
            "\"second\";q=10;w=1, \"minute\";q=3;w=60"
        );
    }
    let reply = call(&f, ip(1), &[]).await.refused();
    let retry: u64 = text(&reply.headers, "retry-after").parse().unwrap();
    assert!((19..=20).contains(&retry), "{retry}");
    assert_eq!(
        text(&reply.headers, "ratelimit"),
        format!("\"minute\";r=0;t={retry}")
    );

    // The short window refuses first; the longer one is then not charged.
    let f = filter(
        r#"limits = [
  { name = "hour", per = "1h", requests = 4 },
  { name = "second", per = "10s", requests = 2 },
]"#,
    );
    for _ in 0..2 {
        call(&f, ip(1), &[]).await.allowed();
    }
    for _ in 0..5 {
        let reply = call(&f, ip(1), &[]).await.refused();
        assert!(text(&reply.headers, "ratelimit").starts_with("\"second\";r=0;"));
    }
    let key = Key::Ip(ip(1));
    let hour = f.sets[0].limits[0].limiter.check_key(&key).unwrap();
    assert_eq!(
        hour.remaining_burst_capacity(),
        1,
        "refused calls were charged"
    );
}

#[test]
fn tracked_keys_stay_bounded_under_a_flood_of_new_keys() {
    let f = filter(
        r#"max_keys = 10000
limits = [{ name = "minute", per = "1m", requests = 5 }]"#,
    );
    let set = &f.sets[0];
    // A caller that spent its allowance before the flood.
    let heavy = Key::Ip(ip(1));
    for _ in 0..5 {
        set.decide(&heavy).unwrap();
    }
    set.decide(&heavy).unwrap_err();

    let mut peak = 0;
    for i in 1..=1_000_000u128 {
        let key = Key::Ip(IpAddr::V6(Ipv6Addr::from(i)));
        set.decide(&key).unwrap();
        if i % 1000 == 0 {
            peak = peak.max(f.tracked_keys());
        }
    }
    assert!(peak <= 10_001, "{peak} keys tracked");
    assert!(f.tracked_keys() >= 7_500, "{}", f.tracked_keys());
    // The flood evicted fresh keys, not the one that had spent its allowance.
    set.decide(&heavy).unwrap_err();
}

#[test]
fn concurrent_callers_keep_the_bound() {
    let f = Arc::new(filter(
        r#"max_keys = 1000
limits = [{ name = "minute", per = "1m", requests = 5 }]"#,
    ));
    let threads: Vec<_> = (0..4u128)
        .map(|t| {
            let f = f.clone();
            std::thread::spawn(move || {
                let mut peak = 0;
                for i in 0..50_000u128 {
                    let key = Key::Ip(IpAddr::V6(Ipv6Addr::from((t << 64) | i)));
                    f.sets[0].decide(&key).unwrap();
                    if i % 100 == 0 {
                        peak = peak.max(f.tracked_keys());
                    }
                }
                peak
            })
        })
        .collect();
    for t in threads {
        // Callers insert while one sweeps, so the peak depends on the scheduler; a quarter
        // of the keys would mean the sweeps fell far behind.
        let peak = t.join().unwrap();
        assert!(peak <= 50_000, "{peak} keys tracked");
    }
    // The count the bound is checked against is exact once the callers are done, and the
    // next call brings the keys back under the bound.
    let store = &f.sets[0].limits[0].store;
    assert_eq!(store.tracked.load(Ordering::Relaxed), store.map.len());
    f.sets[0].decide(&Key::Unknown).unwrap();
    assert!(f.tracked_keys() <= 1_001, "{}", f.tracked_keys());
}

#[test]
fn config_parses_with_defaults() {
    let config: FilterConfig = toml::from_str(
        r#"type = "rate_limit"
limits = [{ name = "burst", per = "1s", requests = 20, burst = 40 }, { name = "daily", per = "1day", requests = 10000 }]"#,
    )
    .unwrap();
    assert_eq!(config.type_name(), "rate_limit");
    let FilterConfig::rate_limit(c) = &config else {
        panic!("{config:?}")
    };
    assert_eq!(c.store, RateLimitStore::Local);
    assert_eq!(c.key, "client_ip");
    assert_eq!(c.max_keys, 100_000);
    assert_eq!(c.limits[1].per, Duration::from_secs(86_400));
    assert_eq!(c.limits[1].burst, None);
    let f = config.build(&BuildContext::default()).unwrap();
    assert_eq!(f.name(), "rate_limit");
    // The same config is equal, so a reload keeps the instance and its counters.
    assert_eq!(config, config.clone());

    let f = filter(r#"limits = [{ name = "daily", per = "1day", requests = 10000 }]"#);
    assert_eq!(
        f.sets[0].policy.to_str().unwrap(),
        "\"daily\";q=10000;w=86400"
    );
    assert_eq!(f.sets[0].limits[0].next_in, 9);

    for bad in [
        "type = \"rate_limit\"\nlimits = []\nlimit = 1",
        "type = \"rate_limit\"\nstore = \"memcached\"\nlimits = []",
        "type = \"rate_limit\"\nlimits = [{ name = \"a\", per = \"1s\", requests = 1, window = 1 }]",
        "type = \"rate_limit\"\nlimits = [{ name = \"a\", per = \"soon\", requests = 1 }]",
        "type = \"rate_limit\"\nlimits = [{ name = \"a\", per = \"1s\", requests = -1 }]",
        "type = \"rate_limit\"",
    ] {
        assert!(toml::from_str::<FilterConfig>(bad).is_err(), "{bad}");
    }
}

#[test]
fn invalid_configs_are_build_errors() {
    let one = r#"limits = [{ name = "a", per = "1s", requests = 1 }]"#;
    for (src, expected) in [
        ("limits = []".to_owned(), "limits must list at least one limit"),
        (
            r#"limits = [{ name = "a", per = "1s", requests = 0 }]"#.to_owned(),
            "requests must be more than 0",
        ),
        (
            r#"limits = [{ name = "a", per = "0s", requests = 1 }]"#.to_owned(),
            "per must be more than 0",
        ),
        (
            r#"limits = [{ name = "a", per = "400days", requests = 1 }]"#.to_owned(),
            "at most 366 days",
        ),
        (
            r#"limits = [{ name = "a", per = "1s", requests = 1, burst = 0 }]"#.to_owned(),
            "burst must be at least 1",
        ),
        (
            r#"limits = [{ name = "a", per = "1day", requests = 1, burst = 1000 }]"#
                .to_owned(),
            "more than 366 days",
        ),
        (
            r#"limits = [{ name = "a", per = "1ns", requests = 2 }]"#.to_owned(),
            "nanoseconds",
        ),
        (
            r#"limits = [{ name = "a", per = "1s", requests = 1 }, { name = "a", per = "1m", requests = 5 }]"#
                .to_owned(),
            "the name \"a\" is used twice",
        ),
        (
            r#"limits = [{ name = "has space", per = "1s", requests = 1 }]"#.to_owned(),
            "must be 1 to 64 of",
        ),
        (
            r#"limits = [{ name = "", per = "1s", requests = 1 }]"#.to_owned(),
            "must be 1 to 64 of",
        ),
        (format!("key = \"ip\"\n{one}"), "key must be"),
        (format!("key = \"header:bad name\"\n{one}"), "invalid header name"),
        (format!("key = \"header:\"\n{one}"), "invalid header name"),
        (format!("key = \"attribute:\"\n{one}"), "attribute name is empty"),
        (format!("max_keys = 0\n{one}"), "max_keys must be more than 0"),
        (
            format!("key = \"consumer\"\n{one}\noverrides = {{ p = [] }}"),
            "overrides.\"p\" must list at least one limit",
        ),
        (
            format!("key = \"consumer\"\n{one}\noverrides = {{ p = [{{ name = \"a\", per = \"1s\", requests = 0 }}] }}"),
            "overrides.\"p\": limit \"a\": requests must be more than 0",
        ),
        (
            format!("{one}\noverrides = {{ \"partner\" = [{{ name = \"a\", per = \"1s\", requests = 1 }}] }}"),
            "keyed by IP address",
        ),
        (
            format!("{one}\noverrides = {{ \"10.0.0.1\" = [{{ name = \"a\", per = \"1s\", requests = 1 }}], \"::ffff:10.0.0.1\" = [{{ name = \"a\", per = \"1s\", requests = 1 }}] }}"),
            "listed twice",
        ),
        (
            format!("key = \"consumer\"\n{one}\noverrides = {{ \"\" = [{{ name = \"a\", per = \"1s\", requests = 1 }}] }}"),
            "a key value is 1 to 256 bytes",
        ),
    ] {
        let err = compile(&src).err().unwrap_or_else(|| panic!("accepted: {src}"));
        assert!(err.starts_with("rate_limit: "), "{err}");
        assert!(err.contains(expected), "{src}: {err}");
    }
    assert!(compile(&format!("key = \"header:X-Partner\"\n{one}")).is_ok());
}
