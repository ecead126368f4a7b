//! Process lifecycle: SIGTERM drains in-flight requests, then the process exits cleanly and
//! stops listening.

mod common;
use common::*;

use std::net::SocketAddr;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::task::JoinHandle;

/// `simple_config` with a grace period long enough for a 1 s request to finish in it.
fn config(core: SocketAddr) -> String {
    let text = simple_config(&[core], "", "");
    assert!(text.contains("grace_period = \"1s\""), "{text}");
    text.replace("grace_period = \"1s\"", "grace_period = \"3s\"")
}

/// [`Gateway::terminate`] on a blocking thread (it waits for the exit); the gateway comes back
/// with its exit status.
fn terminate_in_background(mut gw: Gateway) -> JoinHandle<(Gateway, ExitStatus)> {
    tokio::task::spawn_blocking(move || {
        let status = gw.terminate();
        (gw, status)
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_an_in_flight_request_finish_then_exits_cleanly() {
    let core = demo_core("core-1").await;
    let gw = Gateway::start(&config(core));
    let addr = gw.addr();

    let url = gw.url("/test/slow?ms=1000");
    let in_flight = tokio::spawn(async move {
        let resp = client().get(url).send().await?;
        let status = resp.status();
        let body: Value = resp.json().await?;
        Ok::<_, reqwest::Error>((status, body))
    });

    // The core counts a request when it starts on it: from then on it is in flight.
    let deadline = Instant::now() + Duration::from_secs(10);
    while hits(core).await == 0 {
        assert!(
            Instant::now() < deadline,
            "the slow request never reached the core"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!in_flight.is_finished(), "the slow request ended too soon");

    // terminate() blocks until the process exits.
    let stopping = terminate_in_background(gw);

    let (status, body) = in_flight
        .await
        .unwrap()
        .expect("the in-flight request completes during the drain");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["slept_ms"], 1000, "{body}");

    let (gw, exit) = stopping.await.unwrap();
    assert!(exit.success(), "exit status {exit}: {}", gw.stderr());

    let refused = std::net::TcpStream::connect(addr);
    assert!(
        refused.is_err(),
        "the listener still accepts connections after exit"
    );
    assert_eq!(
        refused.unwrap_err().kind(),
        std::io::ErrorKind::ConnectionRefused
    );

    // The drained request was logged before the process went away.
    let log = gw.access_log();
    assert!(
        log.iter()
            .any(|l| l["path"] == "/test/slow" && l["status"] == 200),
        "{log:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_on_an_idle_gateway_exits_cleanly() {
    let core = demo_core("core-1").await;
    let gw = Gateway::start(&config(core));
    let addr = gw.addr();
    let resp = client().get(gw.url("/test/echo")).send().await.unwrap();
    assert_eq!(resp.status(), 200);

    let (gw, exit) = terminate_in_background(gw).await.unwrap();
    assert!(exit.success(), "exit status {exit}: {}", gw.stderr());
    assert_eq!(
        std::net::TcpStream::connect(addr).unwrap_err().kind(),
        std::io::ErrorKind::ConnectionRefused
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn new_connections_are_refused_once_the_drain_has_started() {
    let core = demo_core("core-1").await;
    let gw = Gateway::start(&config(core));
    let addr = gw.addr();
    let resp = client().get(gw.url("/test/echo")).send().await.unwrap();
    assert_eq!(resp.status(), 200);

    let stopping = terminate_in_background(gw);
    // The drain lasts the 3 s grace period; the listener must close at its start, not at exit.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match std::net::TcpStream::connect(addr) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
            _ => {
                assert!(Instant::now() < deadline, "the listener never closed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    assert!(
        !stopping.is_finished(),
        "connections were refused only once the process had exited, not during the drain"
    );
    let (gw, exit) = stopping.await.unwrap();
    assert!(exit.success(), "exit status {exit}: {}", gw.stderr());
}
