//! The admin listener: liveness, readiness, metrics, the running config, and reload.
//! It runs on its own service threads, so a slow scrape never delays partners' requests.

use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use http::{header, Method, Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::metrics::Metrics;
use crate::reload::{Outcome, Reloader};
use crate::runtime::Runtime;
use crate::upstream::now_ms;

pub struct AdminApp {
    runtime: Arc<ArcSwap<Runtime>>,
    metrics: Arc<Metrics>,
    reloader: Arc<Reloader>,
}

impl AdminApp {
    pub fn new(
        runtime: Arc<ArcSwap<Runtime>>,
        metrics: Arc<Metrics>,
        reloader: Arc<Reloader>,
    ) -> Self {
        AdminApp {
            runtime,
            metrics,
            reloader,
        }
    }

    fn authorized(&self, session: &ServerSession) -> bool {
        let runtime = self.runtime.load();
        let Some(expected) = runtime.admin.as_ref().and_then(|a| a.token_sha256) else {
            return true;
        };
        let presented = session
            .req_header()
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            // The scheme name is case-insensitive (RFC 9110 §11.1).
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token)
            .unwrap_or("");
        // Compare digests in constant time: timing says nothing about the token.
        let digest: [u8; 32] = Sha256::digest(presented.trim().as_bytes()).into();
        digest.ct_eq(&expected).into()
    }

    fn readiness(&self) -> (StatusCode, serde_json::Value) {
        let runtime = self.runtime.load();
        let mut reasons = Vec::new();
        for (name, upstream) in &runtime.upstreams {
            let used_by: Vec<&str> = runtime
                .router
                .routes()
                .iter()
                .filter(|r| Arc::ptr_eq(&r.upstream, upstream))
                .map(|r| r.id.as_ref())
                .collect();
            if !used_by.is_empty() && !upstream.has_available_target() {
                reasons.push(format!(
                    "upstream \"{name}\" has no healthy target (routes: {})",
                    used_by.join(", ")
                ));
            }
        }
        let ready = reasons.is_empty();
        let status = if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        (
            status,
            json!({ "ready": ready, "version": runtime.version, "reasons": reasons }),
        )
    }

    fn running_config(&self) -> serde_json::Value {
        let runtime = self.runtime.load();
        let now = now_ms();
        let routes: Vec<_> = runtime
            .router
            .routes()
            .iter()
            .map(|r| json!({ "id": &*r.id, "priority": r.priority, "upstream": &*r.upstream.name, "filters": r.chain.len() }))
            .collect();
        let upstreams: Vec<_> = runtime
            .upstreams
            .values()
            .map(|u| {
                let targets: Vec<_> = u
                    .targets
                    .iter()
                    .map(|t| json!({ "address": &*t.label, "healthy": t.health.is_healthy(), "available": t.health.is_available(now), "in_flight": t.health.in_flight() }))
                    .collect();
                json!({ "name": &*u.name, "balance": format!("{:?}", u.balancer), "targets": targets })
            })
            .collect();
        // Built from the runtime, never from the raw files: no token or key can appear here.
        json!({
            "status": *self.reloader.status(),
            "listeners": runtime.listeners.iter().map(|l| l.address.to_string()).collect::<Vec<_>>(),
            "routes": routes,
            "upstreams": upstreams,
        })
    }

    fn update_health_gauges(&self) {
        let runtime = self.runtime.load();
        let now = now_ms();
        for upstream in runtime.upstreams.values() {
            for target in &upstream.targets {
                self.metrics
                    .target_healthy
                    .with_label_values(&[&upstream.name, &target.label])
                    .set(target.health.is_available(now) as i64);
            }
        }
    }
}

fn respond(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONTENT_LENGTH, body.len())
        .header(header::CACHE_CONTROL, "no-store")
        .body(body)
        .expect("static response parts are valid")
}

fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<Vec<u8>> {
    respond(
        status,
        "application/json",
        serde_json::to_vec(value).unwrap_or_default(),
    )
}

fn problem(status: StatusCode, kind: &'static str, title: &'static str) -> Response<Vec<u8>> {
    let problem = corridor_filters::Problem::new(status, kind, title);
    respond(status, "application/problem+json", problem.to_json("admin"))
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let method = session.req_header().method.clone();
        let path = session.req_header().uri.path().to_owned();
        if path != "/healthz" && !self.authorized(session) {
            let mut resp = problem(
                StatusCode::UNAUTHORIZED,
                "admin-unauthorized",
                "Admin token required",
            );
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            return resp;
        }
        match (method, path.as_str()) {
            (Method::GET, "/healthz") => {
                json_response(StatusCode::OK, &json!({ "status": "alive" }))
            }
            (Method::GET, "/readyz") => {
                let (status, body) = self.readiness();
                json_response(status, &body)
            }
            (Method::GET, "/metrics") => {
                self.update_health_gauges();
                respond(
                    StatusCode::OK,
                    "text/plain; version=0.0.4",
                    self.metrics.render(),
                )
            }
            (Method::GET, "/config") => json_response(StatusCode::OK, &self.running_config()),
            (Method::POST, "/reload") => {
                let reloader = self.reloader.clone();
                let outcome = tokio::task::spawn_blocking(move || reloader.reload("admin"))
                    .await
                    .unwrap_or_else(|_| Outcome::Rejected {
                        version: String::new(),
                        errors: vec!["reload task failed".into()],
                    });
                let status = match outcome {
                    Outcome::Rejected { .. } => StatusCode::UNPROCESSABLE_ENTITY,
                    _ => StatusCode::OK,
                };
                json_response(status, &serde_json::to_value(&outcome).unwrap_or_default())
            }
            (_, "/healthz" | "/readyz" | "/metrics" | "/config" | "/reload") => problem(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            _ => problem(StatusCode::NOT_FOUND, "not-found", "No such admin endpoint"),
        }
    }
}
