//! Servers for the gateway to proxy to: the demo core, any axum router, and backends whose
//! behaviour a test switches or counts.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use super::{fetch_json, read_head};

/// Serves the demo core (in this test's runtime) on an ephemeral port.
pub async fn demo_core(instance: &str) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let instance = instance.to_string();
    tokio::spawn(async move { corridor_democore::serve(listener, instance).await });
    addr
}

/// Requests a demo core has served so far (its `/test/hits` counter, asked directly).
pub async fn hits(core: SocketAddr) -> u64 {
    let v = fetch_json(&format!("http://{core}/test/hits")).await;
    v["hits"].as_u64().unwrap()
}

/// Serves any axum router on an ephemeral port.
pub async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

/// A backend whose health and errors the test switches.
pub struct Switchable {
    pub name: &'static str,
    /// `/health` answers 200 when set, 503 otherwise.
    pub healthy: AtomicBool,
    /// `/who` answers 502 when set.
    pub broken: AtomicBool,
    /// Requests to `/who`.
    pub hits: AtomicUsize,
    /// Requests to `/health`.
    pub checks: AtomicUsize,
}

/// Serves a healthy, working [`Switchable`] backend: `/who` answers its `name`.
pub async fn switchable(name: &'static str) -> (SocketAddr, Arc<Switchable>) {
    let state = Arc::new(Switchable {
        name,
        healthy: AtomicBool::new(true),
        broken: AtomicBool::new(false),
        hits: AtomicUsize::new(0),
        checks: AtomicUsize::new(0),
    });
    let router = axum::Router::new()
        .route(
            "/health",
            get(|State(s): State<Arc<Switchable>>| async move {
                s.checks.fetch_add(1, Ordering::SeqCst);
                if s.healthy.load(Ordering::SeqCst) {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                }
            }),
        )
        .route(
            "/who",
            get(|State(s): State<Arc<Switchable>>| async move {
                s.hits.fetch_add(1, Ordering::SeqCst);
                if s.broken.load(Ordering::SeqCst) {
                    (StatusCode::BAD_GATEWAY, s.name)
                } else {
                    (StatusCode::OK, s.name)
                }
            }),
        )
        .with_state(state.clone());
    (serve(router).await, state)
}

/// A raw TCP backend that reads a request head, then closes without answering. Counts the
/// connections it accepted.
pub async fn hang_up_backend() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                // Whether the head came whole or the client went away, the socket is closed.
                let _ = read_head(&mut socket, &mut Vec::new()).await;
                drop(socket);
            });
        }
    });
    (address, accepted)
}
