//! Upstream guards: the concurrency cap with its queue, and the circuit breaker, against
//! real backends.
mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use common::*;

/// A slow core that records the most requests it ever had in flight at once.
#[derive(Default)]
struct Occupancy {
    now: AtomicUsize,
    peak: AtomicUsize,
    served: AtomicUsize,
}

async fn slow_core(delay: Duration) -> (SocketAddr, Arc<Occupancy>) {
    let occupancy = Arc::new(Occupancy::default());
    let seen = occupancy.clone();
    let router = axum::Router::new().route(
        "/slow",
        get(move || {
            let seen = seen.clone();
            async move {
                let now = seen.now.fetch_add(1, Ordering::SeqCst) + 1;
                seen.peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                seen.now.fetch_sub(1, Ordering::SeqCst);
                seen.served.fetch_add(1, Ordering::SeqCst);
                "done"
            }
        }),
    );
    (serve(router).await, occupancy)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_core_never_sees_more_than_the_cap() {
    let (core, occupancy) = slow_core(Duration::from_millis(50)).await;
    let guard = "[upstreams.core.concurrency]\nmax = 5\nqueue = 500\nqueue_timeout = \"20s\"";
    let gw = Gateway::start(&simple_config(&[core], guard, ""));
    let client = client();
    let calls: Vec<_> = (0..200)
        .map(|_| {
            let (client, url) = (client.clone(), gw.url("/slow"));
            tokio::spawn(async move { client.get(url).send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap(), 200);
    }
    assert_eq!(occupancy.served.load(Ordering::SeqCst), 200);
    let peak = occupancy.peak.load(Ordering::SeqCst);
    assert!(
        peak <= 5,
        "the core saw {peak} requests at once, the cap is 5"
    );
    assert!(
        peak >= 2,
        "the cap should still let requests run side by side (peak {peak})"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_queue_is_refused_at_once_with_retry_after() {
    let (core, occupancy) = slow_core(Duration::from_millis(800)).await;
    let guard = "[upstreams.core.concurrency]\nmax = 1\nqueue = 2\nqueue_timeout = \"10s\"";
    let gw = Gateway::start(&simple_config(&[core], guard, ""));
    let client = client();
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let (client, url) = (client.clone(), gw.url("/slow"));
            tokio::spawn(async move { client.get(url).send().await.unwrap() })
        })
        .collect();
    let mut ok = 0;
    let mut refused = 0;
    for call in calls {
        let resp = call.await.unwrap();
        if resp.status() == 200 {
            ok += 1;
        } else {
            assert_eq!(header(&resp, "retry-after"), Some("1"));
            assert_problem(resp, 503, "upstream-saturated").await;
            refused += 1;
        }
    }
    // One in flight and two waiting are served; the other five are refused.
    assert_eq!((ok, refused), (3, 5));
    assert_eq!(occupancy.peak.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_breaker_opens_fails_fast_and_closes_again() {
    let (core, backend) = switchable("core").await;
    let breaker =
        "[upstreams.core.circuit_breaker]\nconsecutive_failures = 3\nopen_for = \"700ms\"";
    let gw = Gateway::start(&simple_config(
        &[core],
        &format!("retries = 0\n{breaker}"),
        "",
    ));
    let client = client();
    backend.broken.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        let resp = client.get(gw.url("/who")).send().await.unwrap();
        assert_eq!(resp.status(), 502, "the core's own 502 passes through");
    }
    let hits_when_opened = backend.hits.load(Ordering::SeqCst);
    for _ in 0..5 {
        let resp = client.get(gw.url("/who")).send().await.unwrap();
        let retry_after: u64 = header(&resp, "retry-after").unwrap().parse().unwrap();
        assert_eq!(retry_after, 1, "the open period is under a second");
        assert_problem(resp, 503, "circuit-open").await;
    }
    assert_eq!(
        backend.hits.load(Ordering::SeqCst),
        hits_when_opened,
        "an open circuit never calls the core"
    );

    // The core recovers; after the open period one probe goes through and closes the circuit.
    backend.broken.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(900)).await;
    for _ in 0..5 {
        let resp = client.get(gw.url("/who")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
    }
    assert_eq!(backend.hits.load(Ordering::SeqCst), hits_when_opened + 5);
}

/// A core that is fast up to 8 concurrent requests and slows down sharply past them, like a
/// legacy host with a fixed pool of sessions.
async fn degrading_core() -> (
    SocketAddr,
    Arc<Occupancy>,
    Arc<std::sync::Mutex<Vec<usize>>>,
) {
    let occupancy = Arc::new(Occupancy::default());
    let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (seen, log) = (occupancy.clone(), samples.clone());
    let router = axum::Router::new().route(
        "/work",
        get(move || {
            let (seen, log) = (seen.clone(), log.clone());
            async move {
                let now = seen.now.fetch_add(1, Ordering::SeqCst) + 1;
                seen.peak.fetch_max(now, Ordering::SeqCst);
                log.lock().unwrap().push(now);
                let overload = now.saturating_sub(8) as u64;
                tokio::time::sleep(Duration::from_millis(10 + 15 * overload)).await;
                seen.now.fetch_sub(1, Ordering::SeqCst);
                "done"
            }
        }),
    );
    (serve(router).await, occupancy, samples)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_adaptive_limit_settles_below_the_point_where_the_core_degrades() {
    let (core, _occupancy, samples) = degrading_core().await;
    let guard = "[upstreams.core.concurrency]\nmax = 64\nqueue = 1000\nqueue_timeout = \"30s\"\n\
                 adaptive = { latency_target = \"40ms\", min = 2 }";
    let gw = Gateway::start(&simple_config(&[core], guard, ""));
    let client = client();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
    let workers: Vec<_> = (0..40)
        .map(|_| {
            let (client, url) = (client.clone(), gw.url("/work"));
            tokio::spawn(async move {
                while tokio::time::Instant::now() < deadline {
                    let status = client.get(&url).send().await.unwrap().status();
                    assert_eq!(status, 200);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    // Judge the second half, once the limit has had time to find the knee. Without the
    // adaptive limit the core would see all 40 clients at once.
    let samples = samples.lock().unwrap();
    let settled = &samples[samples.len() / 2..];
    let mean = settled.iter().sum::<usize>() as f64 / settled.len() as f64;
    assert!(
        mean <= 14.0,
        "the core saw {mean:.1} concurrent requests on average; it degrades past 8"
    );
}
