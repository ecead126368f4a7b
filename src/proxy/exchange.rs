//! The buffered path, for routes whose chain needs whole bodies: read the request body,
//! filter it, call the upstream ourselves, read its whole answer, filter it, then answer with
//! exact Content-Length both ways. Streaming routes never come here.
//!
//! Why not pingora's proxy loop: it sends the upstream request head before the body is read
//! (so a changed body could not get its Content-Length) and the response head before the body
//! arrives (so a filter could not turn a bad body into a clean error).

use bytes::{Bytes, BytesMut};
use http::header;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::http::client::HttpSession;
use pingora::proxy::{ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorSource, Result};

use super::failure::Failure;
use super::state::RequestState;
use super::{heads, hygiene, reply, Gateway};

pub async fn run(gateway: &Gateway, session: &mut Session, state: &mut RequestState) -> Result<()> {
    let route = state.route.clone().expect("routed before the exchange");
    let upto = route.chain.len();
    let Some(body) = filtered_request_body(session, state).await? else {
        return Ok(());
    };

    let mut upstream_req = session.req_header().clone();
    // Before the rewrite, which keeps only the path.
    as_http1_request(&mut upstream_req)?;
    gateway
        .upstream_request_filter(session, &mut upstream_req, state)
        .await?;
    upstream_req.remove_header(&header::TRANSFER_ENCODING);
    upstream_req.insert_header(header::CONTENT_LENGTH, body.len())?;

    let (mut head, response_body) = loop {
        let peer = match gateway.choose_target(session, state) {
            Ok(peer) => peer,
            Err(failure) => return reply::send_failure(session, state, failure, upto).await,
        };
        match attempt(
            gateway,
            &peer,
            &upstream_req,
            &body,
            state.runtime.settings.max_buffered_body_bytes,
        )
        .await
        {
            Ok(Some(answer)) => {
                let failed = matches!(answer.0.status.as_u16(), 502..=504)
                    .then_some(Failure::UpstreamFailed);
                Gateway::record_target_outcome(state, failed);
                state.failure = None;
                break answer;
            }
            Ok(None) => {
                Gateway::record_target_outcome(state, Some(Failure::UpstreamTooLarge));
                return reply::send_failure(session, state, Failure::UpstreamTooLarge, upto).await;
            }
            Err((sent, e)) => {
                let failure = Failure::from_error(&e).unwrap_or(Failure::UpstreamFailed);
                Gateway::record_target_outcome(state, Some(failure));
                state.failure = Some(failure);
                if !gateway.may_retry(session, state, !sent, &e) {
                    let failure = state.failure.unwrap_or(Failure::UpstreamFailed);
                    return reply::send_failure(session, state, failure, upto).await;
                }
            }
        }
    };
    if let Some(first) = state.first_attempt {
        state.upstream_elapsed = Some(first.elapsed());
    }

    hygiene::clean_response(&mut head);
    filter_and_answer(session, state, head, response_body).await
}

/// The whole request body, through the chain's body phase when a filter wants it. `None`
/// when the gateway or a filter has answered already (body too large, refused).
pub(super) async fn filtered_request_body(
    session: &mut Session,
    state: &mut RequestState,
) -> Result<Option<Bytes>> {
    let route = state.route.clone().expect("routed before the exchange");
    let cap = state
        .runtime
        .settings
        .max_buffered_body_bytes
        .min(state.body_limit.unwrap_or(u64::MAX));
    let upto = route.chain.len();
    let Some(mut body) = read_request_body(session, cap).await? else {
        reply::send_failure(session, state, Failure::BodyTooLarge, upto).await?;
        return Ok(None);
    };
    state.body_bytes = body.len() as u64;
    if route.chain.wants_request_body() {
        let outcome = route
            .chain
            .on_request_body(
                &mut heads::Request(session.req_header_mut()),
                &mut body,
                &mut state.filters,
            )
            .await;
        if let Err(stopped) = outcome {
            state.answered_by = Some(stopped.by);
            reply::send_reply(session, state, stopped.reply, stopped.upto).await?;
            return Ok(None);
        }
    }
    Ok(Some(body))
}

/// Sends the upstream's whole answer through the chain's response phases (in reverse), then
/// to the client with an exact Content-Length.
pub(super) async fn filter_and_answer(
    session: &mut Session,
    state: &mut RequestState,
    mut head: ResponseHeader,
    mut body: Bytes,
) -> Result<()> {
    let route = state.route.clone().expect("routed before the exchange");
    let upto = route.chain.len();
    let replaced = route
        .chain
        .on_response(
            &heads::Request(session.req_header_mut()),
            &mut heads::Response(&mut head),
            &mut state.filters,
            upto,
        )
        .await;
    if let Some(stopped) = replaced {
        state.answered_by = Some(stopped.by);
        return reply::send_reply(session, state, stopped.reply, stopped.upto).await;
    }
    if route.chain.wants_response_body() {
        let outcome = route
            .chain
            .on_response_body(
                &mut heads::Response(&mut head),
                &mut body,
                &mut state.filters,
            )
            .await;
        if let Err(stopped) = outcome {
            state.answered_by = Some(stopped.by);
            return reply::send_reply(session, state, stopped.reply, stopped.upto).await;
        }
    }
    reply::write_whole(session, state, head, body).await
}

/// The core speaks HTTP/1.1 whatever the client spoke: an h2 request's `:authority` becomes
/// the Host header and its target the origin form.
fn as_http1_request(req: &mut RequestHeader) -> Result<()> {
    req.set_version(http::Version::HTTP_11);
    if !req.headers.contains_key(header::HOST) {
        if let Some(authority) = req.uri.authority().map(|a| a.as_str().to_owned()) {
            req.insert_header(header::HOST, authority)?;
        }
    }
    if req.uri.scheme().is_some() {
        let target = req
            .uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_owned();
        req.set_uri(target.parse().map_err(|_| {
            Error::explain(pingora::ErrorType::InvalidHTTPHeader, "bad request target")
        })?);
    }
    Ok(())
}

/// The whole request body, or None when it is larger than `cap`.
async fn read_request_body(session: &mut Session, cap: u64) -> Result<Option<Bytes>> {
    let mut body = BytesMut::new();
    while let Some(chunk) = session.read_request_body().await? {
        if (body.len() + chunk.len()) as u64 > cap {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body.freeze()))
}

type Answer = (ResponseHeader, Bytes);

/// One try against one target. `Ok(None)`: the answer was larger than `cap`. `Err((sent, e))`:
/// `sent` says whether the request may have reached the target.
async fn attempt(
    gateway: &Gateway,
    peer: &HttpPeer,
    req: &RequestHeader,
    body: &Bytes,
    cap: u64,
) -> std::result::Result<Option<Answer>, (bool, Box<Error>)> {
    let (mut upstream, _reused) = gateway
        .connector
        .get_http_session(peer)
        .await
        .map_err(|e| (false, upstream_error(e)))?;
    upstream.set_read_timeout(peer.options.read_timeout);
    upstream.set_write_timeout(peer.options.write_timeout);
    let answer = exchange(&mut upstream, req, body, cap)
        .await
        .map_err(|e| (true, upstream_error(e)))?;
    if answer.is_some() && upstream.response_done() {
        gateway
            .connector
            .release_http_session(upstream, peer, peer.options.idle_timeout)
            .await;
    }
    Ok(answer)
}

async fn exchange(
    upstream: &mut HttpSession,
    req: &RequestHeader,
    body: &Bytes,
    cap: u64,
) -> Result<Option<Answer>> {
    upstream.write_request_header(Box::new(req.clone())).await?;
    if !body.is_empty() {
        upstream.write_request_body(body.clone(), true).await?;
    }
    upstream.finish_request_body().await?;
    upstream.read_response_header().await?;
    // Skip informational answers (100 Continue): the final head follows.
    while upstream
        .response_header()
        .is_some_and(|h| h.status.is_informational())
    {
        upstream.read_response_header().await?;
    }
    let head = upstream.response_header().cloned().ok_or_else(|| {
        Error::explain(pingora::ErrorType::InvalidHTTPHeader, "no response header")
    })?;
    let mut response_body = BytesMut::new();
    while let Some(chunk) = upstream.read_response_body().await? {
        if (response_body.len() + chunk.len()) as u64 > cap {
            return Ok(None);
        }
        response_body.extend_from_slice(&chunk);
    }
    Ok(Some((head, response_body.freeze())))
}

fn upstream_error(mut e: Box<Error>) -> Box<Error> {
    e.esource = ErrorSource::Upstream;
    e
}
