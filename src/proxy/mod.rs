//! The pingora proxy: each `ProxyHttp` phase reads the request's runtime snapshot and drives
//! the route's filter chain. Routes whose chain needs whole bodies go through
//! [`exchange`], which buffers; all others stream.

mod exchange;
mod failure;
mod heads;
mod hygiene;
mod iso_exchange;
mod reply;
mod state;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use pingora::connectors::http::Connector;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorSource, ErrorType, Result};

use crate::access_log::{AccessLog, AccessRecord, AuditRecord};
use crate::runtime::Route;
use crate::runtime::Runtime;
use crate::tls::PeerTls;
use crate::upstream::{HashOn, Refusal};
pub use failure::Failure;
use state::RequestState;

/// The gateway's proxy logic. Holds nothing per request: all of that is in [`RequestState`].
pub struct Gateway {
    runtime: Arc<ArcSwap<Runtime>>,
    access_log: AccessLog,
    audit_log: AccessLog,
    /// Upstream connections for the buffered path (the streaming path uses pingora's own).
    connector: Connector,
    no_route: Arc<str>,
}

impl Gateway {
    pub fn new(
        runtime: Arc<ArcSwap<Runtime>>,
        access_log: AccessLog,
        audit_log: AccessLog,
    ) -> Self {
        Gateway {
            runtime,
            access_log,
            audit_log,
            connector: Connector::new(None),
            no_route: Arc::from("-"),
        }
    }

    /// Picks the next target for this request and counts it in flight. `Err` carries the
    /// failure to answer with.
    fn choose_target(
        &self,
        session: &Session,
        state: &mut RequestState,
    ) -> std::result::Result<HttpPeer, Failure> {
        let route = state.route.clone().ok_or(Failure::Internal)?;
        let upstream = &route.upstream;
        let budget = state.upstream_budget_left().unwrap_or_default();
        if budget.is_zero() {
            return Err(Failure::UpstreamTimeout);
        }
        let key: &[u8] = match &upstream.hash_on {
            Some(HashOn::Header(name)) => session
                .req_header()
                .headers
                .get(name)
                .map_or(&[], |v| v.as_bytes()),
            _ => &[],
        };
        let ip_key;
        let key = match (&upstream.hash_on, state.filters.client_ip) {
            (Some(HashOn::ClientIp), Some(ip)) => {
                ip_key = ip.to_string();
                ip_key.as_bytes()
            }
            _ => key,
        };
        let Some(index) = upstream.select(key, &state.tried) else {
            // After a failed attempt, that failure is the answer: "no healthy target" would
            // hide that the core was reached and broke.
            return Err(if state.tried.is_empty() {
                Failure::NoHealthyTarget
            } else {
                state.failure.unwrap_or(Failure::UpstreamFailed)
            });
        };
        state
            .first_attempt
            .get_or_insert_with(std::time::Instant::now);
        state.tried.push(index);
        state.target = Some(index);
        let target = &upstream.targets[index];
        state.in_flight = Some(target.health.start_request());
        let mut peer = target.peer.clone();
        let read = peer.options.read_timeout.unwrap_or(budget).min(budget);
        peer.options.read_timeout = Some(read);
        Ok(peer)
    }

    /// May this request try another target after `e`?
    fn may_retry(
        &self,
        session: &Session,
        state: &RequestState,
        before_request_sent: bool,
        e: &Error,
    ) -> bool {
        let Some(route) = &state.route else {
            return false;
        };
        let attempts = state.tried.len() as u32;
        if state.response_started || attempts > route.upstream.retries {
            return false;
        }
        if state
            .upstream_budget_left()
            .is_none_or(|left| left.is_zero())
        {
            return false;
        }
        // A timed-out core is slow, not gone: asking it again only adds load.
        if matches!(
            e.etype(),
            ErrorType::ReadTimedout | ErrorType::WriteTimedout
        ) {
            return false;
        }
        before_request_sent
            || (session.req_header().method.is_idempotent()
                && !session.as_ref().retry_buffer_truncated())
    }

    /// Takes a slot at the route's upstream (breaker, concurrency cap), or the failure to
    /// answer with, `Retry-After` included.
    async fn admit(route: &Route, state: &mut RequestState) -> std::result::Result<(), Failure> {
        match route.upstream.admit().await {
            Ok(permit) => {
                state.permit = permit;
                Ok(())
            }
            Err(Refusal::Saturated) => {
                route.upstream.metrics.saturated.inc();
                state.retry_after = Some(1);
                Err(Failure::UpstreamSaturated)
            }
            Err(Refusal::CircuitOpen { retry_after_secs }) => {
                route.upstream.metrics.circuit_open.inc();
                state.retry_after = Some(retry_after_secs);
                Err(Failure::CircuitOpen)
            }
        }
    }

    /// Passive health and upstream error metrics for the attempt that just ended.
    fn record_target_outcome(state: &RequestState, failure: Option<Failure>) {
        let (Some(route), Some(index)) = (&state.route, state.target) else {
            return;
        };
        let upstream = &route.upstream;
        match failure {
            None => upstream.record_success(index),
            Some(failure) => {
                upstream.record_failure(index);
                match failure {
                    Failure::UpstreamTimeout => upstream.metrics.timeout.inc(),
                    _ => upstream.metrics.failed.inc(),
                }
            }
        }
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestState;

    fn new_ctx(&self) -> RequestState {
        RequestState::new(
            self.runtime.load_full(),
            state::new_request_id(),
            self.no_route.clone(),
        )
    }

    async fn request_filter(
        &self,
        session: &mut Session,
        state: &mut RequestState,
    ) -> Result<bool> {
        let runtime = state.runtime.clone();
        let settings = &runtime.settings;
        state.peer_ip = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        state.filters.client_ip =
            hygiene::client_ip(state.peer_ip, &session.req_header().headers, settings);
        state.over_tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        if let Some(peer_tls) = peer_tls(session) {
            if peer_tls.version_refused {
                reply::send_failure(session, state, Failure::TlsVersionRefused, 0).await?;
                return Ok(true);
            }
            state.filters.client_cert = peer_tls.client_cert.clone();
        }

        if !hygiene::headers_within_limits(&session.req_header().headers, settings) {
            reply::send_failure(session, state, Failure::HeadersTooLarge, 0).await?;
            return Ok(true);
        }
        let req = session.req_header();
        let host = req
            .uri
            .host()
            .or_else(|| {
                req.headers
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
            })
            .unwrap_or("");
        let Some(route) = runtime
            .router
            .find(&req.method, host, req.uri.path(), &req.headers)
            .cloned()
        else {
            reply::send_failure(session, state, Failure::NoRoute, 0).await?;
            return Ok(true);
        };
        state.filters.route_id = route.id.clone();
        route.metrics.in_flight.inc();
        state.body_limit = route.chain.request_body_limit();
        state.route = Some(route.clone());

        hygiene::strip_internal_headers(session.req_header_mut(), settings);
        if !route.chain.is_empty() {
            state.client_uri = Some(session.req_header().uri.clone());
            let outcome = route
                .chain
                .on_request(
                    &mut heads::Request(session.req_header_mut()),
                    &mut state.filters,
                )
                .await;
            if let Err(stopped) = outcome {
                state.answered_by = Some(stopped.by);
                reply::send_reply(session, state, stopped.reply, stopped.upto).await?;
                return Ok(true);
            }
        }
        // After the chain: a request the filters refuse never takes one of the core's slots.
        if let Err(refusal) = Self::admit(&route, state).await {
            reply::send_failure(session, state, refusal, route.chain.len()).await?;
            return Ok(true);
        }
        if let Some(host) = &route.upstream.card_host {
            iso_exchange::run(session, state, host).await?;
            return Ok(true);
        }
        if route.chain.wants_request_body() || route.chain.wants_response_body() {
            exchange::run(self, session, state).await?;
            return Ok(true);
        }
        Ok(false)
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        state: &mut RequestState,
    ) -> Result<()> {
        if let Some(chunk) = body {
            state.body_bytes += chunk.len() as u64;
            if state
                .body_limit
                .is_some_and(|limit| state.body_bytes > limit)
            {
                state.failure = Some(Failure::BodyTooLarge);
                return Error::e_explain(
                    ErrorType::HTTPStatus(413),
                    "request body over the route's limit",
                );
            }
        }
        Ok(())
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        state: &mut RequestState,
    ) -> Result<Box<HttpPeer>> {
        match self.choose_target(session, state) {
            Ok(peer) => Ok(Box::new(peer)),
            Err(failure) => {
                state.failure = Some(failure);
                Error::e_explain(
                    ErrorType::HTTPStatus(failure.problem().status.as_u16()),
                    "no upstream target",
                )
            }
        }
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        state: &mut RequestState,
    ) -> Result<()> {
        // HTTP/2 clients send `:authority` instead of Host.
        let client_req = session.req_header();
        let host = client_req
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| client_req.uri.authority().map(|a| a.as_str()))
            .map(str::to_owned);
        hygiene::forwarded_request(
            upstream,
            state.peer_ip,
            host.as_deref(),
            state.over_tls,
            &state.runtime.settings,
        );
        if let Some(route) = &state.route {
            if !route.rewrite.is_identity() {
                let path = route.rewrite.apply(upstream.uri.path());
                let uri = match upstream.uri.query() {
                    Some(query) => format!("{path}?{query}"),
                    None => path.into_owned(),
                };
                upstream.set_uri(uri.parse().map_err(|_| {
                    Error::explain(
                        ErrorType::InternalError,
                        "rewritten path is not a valid URI",
                    )
                })?);
            }
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream: &mut ResponseHeader,
        state: &mut RequestState,
    ) -> Result<()> {
        let failed =
            matches!(upstream.status.as_u16(), 502..=504).then_some(Failure::UpstreamFailed);
        Self::record_target_outcome(state, failed);
        state.failure = None;
        if let Some(first) = state.first_attempt {
            state.upstream_elapsed = Some(first.elapsed());
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        state: &mut RequestState,
    ) -> Result<()> {
        state.response_started = true;
        hygiene::clean_response(resp);
        if let Some(route) = state.route.clone() {
            if !route.chain.is_empty() {
                let replaced = route
                    .chain
                    .on_response(
                        &heads::Request(session.req_header_mut()),
                        &mut heads::Response(resp),
                        &mut state.filters,
                        route.chain.len(),
                    )
                    .await;
                if let Some(stopped) = replaced {
                    // The upstream's body is dropped and the filter's reply goes out instead.
                    state.answered_by = Some(stopped.by);
                    state.rejection = stopped.reply.problem.as_ref().map(|p| p.kind);
                    let (head, body) = reply::render(stopped.reply, &state.filters.request_id)?;
                    *resp = head;
                    resp.insert_header(http::header::CONTENT_LENGTH, body.len())?;
                    state.replacement_body = Some(body);
                }
            }
        }
        state.status = resp.status.as_u16();
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        state: &mut RequestState,
    ) -> Result<Option<Duration>> {
        if state.replacement_body.is_some() {
            *body = if end_of_stream {
                state.replacement_body.take()
            } else {
                None
            };
        }
        if let Some(chunk) = body {
            state.bytes_out += chunk.len() as u64;
        }
        Ok(None)
    }

    fn fail_to_connect(
        &self,
        session: &mut Session,
        _peer: &HttpPeer,
        state: &mut RequestState,
        mut e: Box<Error>,
    ) -> Box<Error> {
        let failure = Failure::from_error(&e).unwrap_or(Failure::UpstreamFailed);
        Self::record_target_outcome(state, Some(failure));
        state.failure = Some(failure);
        if self.may_retry(session, state, true, &e) {
            e.set_retry(true);
        }
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        state: &mut RequestState,
        _client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("target {}", peer._address));
        if e.esource() == &ErrorSource::Upstream {
            let failure = Failure::from_error(&e).unwrap_or(Failure::UpstreamFailed);
            Self::record_target_outcome(state, Some(failure));
            state.failure = Some(failure);
            let retry = self.may_retry(session, state, false, &e);
            e.set_retry(retry);
        } else {
            e.set_retry(false);
        }
        e
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        state: &mut RequestState,
    ) -> FailToProxy {
        let failure = state.failure.or_else(|| Failure::from_error(e));
        let Some(failure) = failure else {
            return FailToProxy {
                error_code: 0,
                can_reuse_downstream: false,
            };
        };
        if state.response_started {
            // Part of the answer is out already: all we can do is cut the connection.
            return FailToProxy {
                error_code: 0,
                can_reuse_downstream: false,
            };
        }
        let upto = state.route.as_ref().map_or(0, |r| r.chain.len());
        let code = failure.problem().status.as_u16();
        // pingora closes the connection after a failed proxy: say so, or a pooling client
        // sends its next request into a dead socket.
        session.set_keepalive(None);
        if let Err(write_error) = reply::send_failure(session, state, failure, upto).await {
            tracing::debug!(error = %write_error, "could not send the error answer");
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    fn suppress_error_log(
        &self,
        _session: &Session,
        _state: &RequestState,
        _error: &Error,
    ) -> bool {
        // Failures are in the access log with their problem type; pingora's own line would
        // repeat them with upstream details that belong in debug logs only.
        true
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, state: &mut RequestState) {
        state.in_flight = None;
        if let Some(slot) = state.permit.take() {
            // The adaptive limit learns from how long the core took, and whether it failed.
            if let Some(latency) = state.upstream_elapsed {
                let failed = state.failure.is_some_and(Failure::is_target_fault)
                    || matches!(state.status, 502..=504);
                slot.record(latency, !failed);
            }
        }
        let req = session.req_header();
        let status = if state.status != 0 {
            state.status
        } else {
            session.response_written().map_or(0, |r| r.status.as_u16())
        };
        let route = state.route.as_deref();
        if let Some(route) = route {
            route.metrics.in_flight.dec();
            route
                .metrics
                .observe(&req.method, status, state.started.elapsed().as_secs_f64());
            if let Some(elapsed) = state.upstream_elapsed {
                route
                    .upstream
                    .metrics
                    .duration
                    .observe(elapsed.as_secs_f64());
            }
            if state.failure == Some(Failure::NoHealthyTarget) {
                route.upstream.metrics.no_target.inc();
            }
            if let (Some(filter), Some(reason)) = (state.answered_by, state.rejection) {
                route.metrics.rejected(filter, reason);
            }
            for event in &state.filters.events {
                route.metrics.filter_event(event);
            }
        }
        let time = || humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        let consumer = state.filters.consumer.as_ref().map(|c| c.id.as_str());
        for entry in &state.filters.audit {
            self.audit_log.audit(&AuditRecord {
                kind: "audit",
                time: time(),
                request_id: &state.filters.request_id,
                route: &state.filters.route_id,
                consumer,
                action: entry.action,
                field: &entry.field,
                key_version: entry.key_version,
            });
        }
        if !self.access_log.enabled() {
            return;
        }
        let upstream = route.map(|r| r.upstream.as_ref());
        let target = upstream
            .zip(state.target)
            .map(|(u, i)| u.targets[i].label.as_ref());
        self.access_log.record(&AccessRecord {
            time: time(),
            request_id: &state.filters.request_id,
            route: &state.filters.route_id,
            method: req.method.as_str(),
            path: state.client_uri.as_ref().unwrap_or(&req.uri).path(),
            status,
            upstream: upstream.map(|u| u.name.as_ref()),
            target,
            attempts: state.tried.len(),
            duration_ms: state.started.elapsed().as_secs_f64() * 1000.0,
            upstream_ms: state.upstream_elapsed.map(|d| d.as_secs_f64() * 1000.0),
            bytes_in: session.body_bytes_read() as u64,
            bytes_out: state.bytes_out.max(session.body_bytes_sent() as u64),
            client_ip: state.filters.client_ip.map(|ip| ip.to_string()),
            consumer,
            answered_by: state.answered_by,
            problem: state.failure.map(|f| f.problem().kind),
        });
    }
}

/// What the TLS handshake of this request's connection established, on HTTPS listeners.
fn peer_tls(session: &Session) -> Option<&PeerTls> {
    session
        .digest()?
        .ssl_digest
        .as_ref()?
        .extension
        .get::<PeerTls>()
}
