//! A simulated legacy core-banking backend.
//!
//! It plays the "old core" behind Corridor in the README demo and in the
//! gateway's integration tests: a few accounts and their cards, idempotent
//! payments, and a set of `/test/...` helpers (echo, slow, status, streaming,
//! hit counter) that let the tests observe exactly what the gateway forwarded.
//! The same accounts are also offered as a SOAP service (`/soap/accounts`),
//! and [`serve_iso8583`] runs a card host speaking ISO 8583 on its own port.
//! Errors come in the legacy style, internal stack trace included, so the
//! gateway has something to hide. All state lives in memory and dies with the
//! process.
#![forbid(unsafe_code)]

mod accounts;
mod cards;
mod iso8583;
mod ledger;
mod money;
mod payments;
mod soap;
mod testing;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

pub use accounts::{luhn_valid, Account};
pub use cards::Card;
pub use iso8583::serve_iso8583;
pub use ledger::Ledger;
pub use money::Amount;
pub use payments::{iban_valid, Payment, PaymentError, PaymentRequest};

/// Response header naming the instance that answered, so load-balancing tests
/// can tell upstreams apart without parsing bodies.
pub const INSTANCE_HEADER: &str = "x-core-instance";

/// Shared state of one instance.
pub(crate) struct AppState {
    pub(crate) instance: String,
    /// Requests served, except the `/test/hits` endpoints themselves, so a
    /// test can read the counter without disturbing it.
    pub(crate) hits: AtomicU64,
    /// One lock over accounts, payments and idempotency keys: debit, record and
    /// key registration then happen atomically, so no race can double a payment.
    /// It is never held across an `.await`.
    ledger: Mutex<Ledger>,
    /// The cards never change: no lock.
    cards: Vec<cards::Card>,
}

impl AppState {
    pub(crate) fn ledger(&self) -> MutexGuard<'_, Ledger> {
        // A panic while holding the lock cannot leave the ledger half-updated
        // (every mutation is checked before it is applied), so poisoning is moot.
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub(crate) type Shared = Arc<AppState>;

/// Builds the full application for one instance, with freshly seeded accounts.
pub fn router(instance: &str) -> Router {
    let state: Shared = Arc::new(AppState {
        instance: instance.to_owned(),
        hits: AtomicU64::new(0),
        ledger: Mutex::new(Ledger::seeded()),
        cards: cards::seed(),
    });
    Router::new()
        .route("/health", get(health))
        .merge(accounts::routes())
        .merge(cards::routes())
        .merge(payments::routes())
        .merge(soap::routes())
        .merge(testing::routes())
        .fallback(no_route)
        .layer(middleware::from_fn_with_state(state.clone(), count_and_tag))
        .with_state(state)
}

/// Serves [`router`] on an already-bound listener (tests bind port 0 and read
/// the address first). Sets TCP_NODELAY so small responses are not delayed by
/// Nagle's algorithm, and records peers so `/test/echo` can report them.
pub async fn serve(listener: tokio::net::TcpListener, instance: String) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let app = router(&instance).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app).await
}

async fn health(State(st): State<Shared>) -> Json<serde_json::Value> {
    Json(json!({"status": "ok", "instance": st.instance}))
}

async fn no_route() -> Response {
    legacy_error(
        StatusCode::NOT_FOUND,
        "no handler found for request",
        "GEN404",
        "at org.springframework.web.servlet.DispatcherServlet.noHandlerFound(DispatcherServlet.java:1278)",
    )
}

/// Counts the request and stamps the answering instance on the response.
async fn count_and_tag(State(st): State<Shared>, req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with("/test/hits") {
        st.hits.fetch_add(1, Ordering::Relaxed);
    }
    let mut resp = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&st.instance) {
        resp.headers_mut()
            .insert(HeaderName::from_static(INSTANCE_HEADER), v);
    }
    resp
}

/// The legacy core's error body: message, code and a leaked internal trace.
pub(crate) fn legacy_error(status: StatusCode, error: &str, code: &str, trace: &str) -> Response {
    let body = json!({"error": error, "code": code, "trace": trace});
    (status, Json(body)).into_response()
}

#[cfg(test)]
pub(crate) mod test_util {
    use axum::body::{to_bytes, Body};
    use axum::http::{Request, StatusCode};
    use axum::Router;
    use tower::ServiceExt;

    /// Sends one request through the router and returns status, headers and body.
    pub async fn call(
        app: &Router,
        req: Request<Body>,
    ) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = to_bytes(resp.into_body(), usize::MAX).await.unwrap();
        (status, headers, body.to_vec())
    }

    pub async fn call_json(app: &Router, req: Request<Body>) -> (StatusCode, serde_json::Value) {
        let (status, _, body) = call(app, req).await;
        (status, serde_json::from_slice(&body).unwrap())
    }

    pub fn get_req(uri: &str) -> Request<Body> {
        Request::get(uri).body(Body::empty()).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::*;
    use super::*;

    #[tokio::test]
    async fn health_names_instance() {
        let app = router("core-7");
        let (status, headers, body) = call(&app, get_req("/health")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[INSTANCE_HEADER], "core-7");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v, json!({"status": "ok", "instance": "core-7"}));
    }

    #[tokio::test]
    async fn unknown_route_is_legacy_404() {
        let (status, v) = call_json(&router("c"), get_req("/nope")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(v["code"], "GEN404");
        assert!(v["trace"].as_str().unwrap().starts_with("at "));
    }

    /// The real server over TCP: `/test/bytes` must go out chunked.
    #[tokio::test]
    async fn serve_streams_chunked() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve(listener, "tcp".into()));
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /test/bytes?n=100000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.unwrap();
        let text = String::from_utf8_lossy(&raw).to_ascii_lowercase();
        let head = text.split("\r\n\r\n").next().unwrap();
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(head.contains("transfer-encoding: chunked"), "{head}");
        assert!(!head.contains("content-length"), "{head}");
        let body_at = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let xs = raw[body_at..].iter().filter(|&&b| b == b'x').count();
        assert_eq!(xs, 100_000);
        server.abort();
    }
}
