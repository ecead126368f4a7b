//! What one `rate_limit` check costs: one `on_request` call of the filter, with the local
//! GCRA store on one key and on a rotating set of 10,000 client IPs, and with the Redis store
//! (one round trip to the Redis on 127.0.0.1:6379, which must run).
//!
//! The limits are high enough never to refuse, so every call measured is an allowed request.
//! Each sample runs its iterations inside one `block_on` of a current-thread runtime, so the
//! runtime's cost is paid once per sample, not once per call.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use corridor_filters::{BuildContext, Filter, FilterConfig, Flow, RequestContext};
use criterion::{criterion_group, criterion_main, Criterion};
use tokio::runtime::Runtime;

/// Distinct client IPs of `local_keyed`.
const KEYS: usize = 10_000;

/// A limit no benchmark run comes near: a billion requests a second.
const NEVER_REFUSES: &str = r#"limits = [{ name = "bench", per = "1s", requests = 1000000000 }]"#;

fn build(src: &str) -> Arc<dyn Filter> {
    toml::from_str::<FilterConfig>(src)
        .unwrap()
        .build(&BuildContext::default())
        .unwrap()
}

fn request() -> http::request::Parts {
    http::Request::builder()
        .uri("/v1/accounts")
        .header("x-client", "bench")
        .body(())
        .unwrap()
        .into_parts()
        .0
}

fn context(ip: IpAddr) -> RequestContext {
    RequestContext::new("r-1".into(), "route".into(), Some(ip))
}

/// Runs `iters` calls of `f.on_request` in one `block_on`, setting the client IP of call `n`
/// to `ips[n % ips.len()]`, and returns the time they took. Panics on a refused call (for the
/// Redis store with `fail_closed`, also on a Redis failure), which would skew the figure.
fn run(
    rt: &Runtime,
    f: &dyn Filter,
    req: &mut http::request::Parts,
    ctx: &mut RequestContext,
    ips: &[IpAddr],
    next: &mut usize,
    iters: u64,
) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            ctx.client_ip = Some(ips[*next]);
            *next = if *next + 1 == ips.len() { 0 } else { *next + 1 };
            allowed(black_box(f.on_request(req, ctx).await));
        }
        start.elapsed()
    })
}

fn allowed(flow: Flow) {
    assert!(matches!(flow, Flow::Continue), "refused: {flow:?}");
}

fn local_single_key(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let f = build(&format!("type = \"rate_limit\"\n{NEVER_REFUSES}"));
    let ips = [IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))];
    let mut req = request();
    let mut ctx = context(ips[0]);
    allowed(rt.block_on(f.on_request(&mut req, &mut ctx)));

    let mut group = c.benchmark_group("local_single_key");
    let mut next = 0;
    group.bench_function("on_request", |b| {
        b.iter_custom(|iters| run(&rt, &*f, &mut req, &mut ctx, &ips, &mut next, iters))
    });
    group.finish();
    allowed(rt.block_on(f.on_request(&mut req, &mut ctx)));
}

fn local_keyed(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The default max_keys (100,000) holds every key: no eviction while measuring.
    let f = build(&format!(
        "type = \"rate_limit\"\nkey = \"client_ip\"\n{NEVER_REFUSES}"
    ));
    let ips: Vec<IpAddr> = (0..KEYS)
        .map(|i| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i as u32)))
        .collect();
    let mut req = request();
    let mut ctx = context(ips[0]);
    // Every key tracked before measuring: the calls measured update known keys.
    for &ip in &ips {
        ctx.client_ip = Some(ip);
        allowed(rt.block_on(f.on_request(&mut req, &mut ctx)));
    }

    let mut group = c.benchmark_group("local_keyed");
    let mut next = 0;
    group.bench_function("on_request_10000_client_ips", |b| {
        b.iter_custom(|iters| run(&rt, &*f, &mut req, &mut ctx, &ips, &mut next, iters))
    });
    group.finish();
}

fn redis_round_trip(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // A prefix of its own; the keys expire by themselves (their TTL is about 2 s).
    let prefix = format!("corridor-bench:rate_limit:{:016x}", fastrand::u64(..));
    // fail_closed: a Redis failure answers 503, which the checks below would catch.
    let f = build(&format!(
        "type = \"rate_limit\"\nstore = \"redis\"\n{NEVER_REFUSES}\n\
         redis = {{ url = \"redis://127.0.0.1:6379/0\", key_prefix = \"{prefix}\", \
         on_error = \"fail_closed\", timeout = \"1s\" }}"
    ));
    let ips = [IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))];
    let mut req = request();
    let mut ctx = context(ips[0]);
    let check = |req: &mut http::request::Parts, ctx: &mut RequestContext| {
        ctx.attributes.clear();
        allowed(rt.block_on(f.on_request(req, ctx)));
        assert_eq!(
            ctx.attributes.get("rate_limit.store").map(String::as_str),
            Some("redis"),
            "Redis on 127.0.0.1:6379 must run"
        );
    };
    // Connects, and loads the script.
    check(&mut req, &mut ctx);

    let mut group = c.benchmark_group("redis_round_trip");
    let mut next = 0;
    group.bench_function("on_request", |b| {
        b.iter_custom(|iters| run(&rt, &*f, &mut req, &mut ctx, &ips, &mut next, iters))
    });
    group.finish();
    check(&mut req, &mut ctx);
}

criterion_group!(benches, local_single_key, local_keyed, redis_round_trip);
criterion_main!(benches);
