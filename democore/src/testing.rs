//! `/test/...` helpers for the gateway's integration tests.
//!
//! They let a test see what the gateway really forwarded (`echo`), provoke
//! timeouts (`slow`), upstream errors (`status`), large streamed bodies
//! (`bytes`), tell instances apart (`whoami`) and count upstream attempts
//! (`hits`). Errors here are plain JSON `{"error": ...}`: the legacy trace is
//! kept for the banking endpoints.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use crate::Shared;

/// Largest body `/test/echo` reads (bigger ones get 413).
const ECHO_LIMIT: usize = 64 * 1024 * 1024;
/// Upper bound for `/test/slow`, so a typo cannot park a connection for hours.
const SLOW_MAX_MS: u64 = 120_000;
/// Chunk size of `/test/bytes`.
const CHUNK: usize = 64 * 1024;
static XS: [u8; CHUNK] = [b'x'; CHUNK];

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/test/echo", any(echo))
        .route("/test/echo/", any(echo))
        .route("/test/echo/{*rest}", any(echo))
        .route("/test/slow", get(slow))
        .route("/test/status/{code}", any(status))
        .route("/test/bytes", get(bytes))
        .route("/test/whoami", get(whoami))
        .route("/test/hits", get(hits))
        .route("/test/hits/reset", post(hits_reset))
}

fn bad_request(msg: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": msg}))).into_response()
}

/// Reads a numeric query parameter; absent means `default`.
fn num_param(q: &HashMap<String, String>, name: &str, default: u64) -> Result<u64, String> {
    let Some(v) = q.get(name) else {
        return Ok(default);
    };
    v.parse()
        .map_err(|_| format!("{name} must be a non-negative integer"))
}

/// Headers as a JSON object; a name sent more than once maps to an array.
fn headers_json(headers: &HeaderMap) -> Value {
    let mut out = Map::new();
    for name in headers.keys() {
        let mut values: Vec<Value> = headers
            .get_all(name)
            .iter()
            .map(|v| Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let v = if values.len() == 1 {
            values.remove(0)
        } else {
            Value::Array(values)
        };
        out.insert(name.as_str().to_owned(), v);
    }
    Value::Object(out)
}

/// Mirrors the request back: what the gateway sent is what the test sees.
/// `query` is the raw query string (null when there is none); `body` is the
/// body decoded as UTF-8 (lossily), `body_len` its exact byte length.
async fn echo(State(st): State<Shared>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string());
    let body = match axum::body::to_bytes(body, ECHO_LIMIT).await {
        Ok(b) => b,
        Err(e) => {
            let msg = format!("cannot read body: {e}");
            return (StatusCode::PAYLOAD_TOO_LARGE, Json(json!({"error": msg}))).into_response();
        }
    };
    Json(json!({
        "instance": st.instance,
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "version": format!("{:?}", parts.version),
        "remote_addr": peer,
        "headers": headers_json(&parts.headers),
        "body": String::from_utf8_lossy(&body),
        "body_len": body.len(),
    }))
    .into_response()
}

/// `?ms=N`: answers after N milliseconds, to trip the gateway's timeouts.
async fn slow(State(st): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let ms = match num_param(&q, "ms", 0) {
        Ok(ms) => ms.min(SLOW_MAX_MS),
        Err(m) => return bad_request(m),
    };
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Json(json!({"instance": st.instance, "slept_ms": ms})).into_response()
}

/// Answers with the status in the path (200-599), for error-handling tests.
async fn status(State(st): State<Shared>, Path(code): Path<String>) -> Response {
    let Some(code) = code
        .parse::<u16>()
        .ok()
        .filter(|c| (200..=599).contains(c))
        .and_then(|c| StatusCode::from_u16(c).ok())
    else {
        return bad_request(format!("status must be 200-599, got {code:?}"));
    };
    // These statuses must not carry a body.
    if matches!(code.as_u16(), 204 | 205 | 304) {
        return code.into_response();
    }
    let body = json!({
        "instance": st.instance,
        "status": code.as_u16(),
        "reason": code.canonical_reason(),
    });
    (code, Json(body)).into_response()
}

/// `?n=N`: streams N bytes of `x` in 64 KiB chunks. The stream has no known
/// length, so hyper sends it chunked; chunks are slices of one static buffer,
/// so memory stays flat whatever N is.
async fn bytes(Query(q): Query<HashMap<String, String>>) -> Response {
    let n = match num_param(&q, "n", 0) {
        Ok(n) => n,
        Err(m) => return bad_request(m),
    };
    let stream = futures_util::stream::unfold(n, |left| async move {
        if left == 0 {
            return None;
        }
        let len = left.min(CHUNK as u64);
        // `len` <= CHUNK, so the cast cannot truncate.
        let chunk = Bytes::from_static(&XS[..len as usize]);
        Some((Ok::<_, Infallible>(chunk), left - len))
    });
    (
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn whoami(State(st): State<Shared>) -> String {
    st.instance.clone()
}

async fn hits(State(st): State<Shared>) -> Json<Value> {
    let hits = st.hits.load(Ordering::Relaxed);
    Json(json!({"instance": st.instance, "hits": hits}))
}

async fn hits_reset(State(st): State<Shared>) -> Json<Value> {
    let previous = st.hits.swap(0, Ordering::Relaxed);
    Json(json!({"instance": st.instance, "hits": 0, "previous": previous}))
}

#[cfg(test)]
mod tests {
    use crate::router;
    use crate::test_util::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use serde_json::json;

    #[tokio::test]
    async fn echo_reports_request() {
        let app = router("core-2");
        let req = Request::put("/test/echo/a/b?x=1&y=%20")
            .header("x-one", "1")
            .header("x-many", "a")
            .header("x-many", "b")
            .body(Body::from("héllo"))
            .unwrap();
        let (status, v) = call_json(&app, req).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v["instance"], "core-2");
        assert_eq!(v["method"], "PUT");
        assert_eq!(v["path"], "/test/echo/a/b");
        assert_eq!(v["query"], "x=1&y=%20");
        assert_eq!(v["headers"]["x-one"], "1");
        assert_eq!(v["headers"]["x-many"], json!(["a", "b"]));
        assert_eq!(v["body"], "héllo");
        assert_eq!(v["body_len"], 6);

        for (m, uri) in [
            ("GET", "/test/echo"),
            ("DELETE", "/test/echo/"),
            ("PATCH", "/test/echo/z"),
        ] {
            let req = Request::builder()
                .method(m)
                .uri(uri)
                .body(Body::empty())
                .unwrap();
            let (status, v) = call_json(&app, req).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(v["method"], m);
            assert_eq!(v["path"], uri);
            assert!(v["query"].is_null());
            assert_eq!(v["body_len"], 0);
        }
    }

    #[tokio::test]
    async fn status_slow_whoami() {
        let app = router("core-3");
        let (status, v) = call_json(&app, get_req("/test/status/503")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(v["status"], 503);
        let (status, _, body) = call(&app, get_req("/test/status/204")).await;
        assert_eq!((status.as_u16(), body.len()), (204, 0));
        for bad in ["/test/status/99", "/test/status/600", "/test/status/abc"] {
            let (status, _, _) = call(&app, get_req(bad)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        }

        let t = std::time::Instant::now();
        let (status, v) = call_json(&app, get_req("/test/slow?ms=50")).await;
        assert!(t.elapsed().as_millis() >= 50);
        assert_eq!(
            (status, v["instance"].as_str()),
            (StatusCode::OK, Some("core-3"))
        );
        let (status, _, _) = call(&app, get_req("/test/slow?ms=-1")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);

        let (status, headers, body) = call(&app, get_req("/test/whoami")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"));
        assert_eq!(body, b"core-3");
    }

    #[tokio::test]
    async fn bytes_streams_exact_length() {
        let app = router("c");
        for n in [0usize, 1, 65_536, 200_001] {
            let (status, headers, body) = call(&app, get_req(&format!("/test/bytes?n={n}"))).await;
            assert_eq!(status, StatusCode::OK);
            assert!(headers.get("content-length").is_none());
            assert_eq!(body.len(), n);
            assert!(body.iter().all(|&b| b == b'x'));
        }
    }

    #[tokio::test]
    async fn hits_count_everything_but_themselves() {
        let app = router("c");
        for uri in ["/health", "/test/whoami", "/nope"] {
            call(&app, get_req(uri)).await;
        }
        let (_, v) = call_json(&app, get_req("/test/hits")).await;
        assert_eq!(v["hits"], 3);
        let reset = Request::post("/test/hits/reset")
            .body(Body::empty())
            .unwrap();
        let (_, v) = call_json(&app, reset).await;
        assert_eq!(
            (v["hits"].as_u64(), v["previous"].as_u64()),
            (Some(0), Some(3))
        );
        call(&app, get_req("/health")).await;
        let (_, v) = call_json(&app, get_req("/test/hits")).await;
        assert_eq!(v["hits"], 1);
    }
}
