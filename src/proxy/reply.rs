//! Writing an answer the gateway or a filter made, through the response phase of the filters
//! that ran before it.

use bytes::Bytes;
use corridor_filters::Reply;
use http::header;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;

use super::failure::Failure;
use super::heads;
use super::state::RequestState;

const PROBLEM_JSON: &str = "application/problem+json";

/// Sends a problem for a gateway failure (no filter saw the request, or all should see it).
pub async fn send_failure(
    session: &mut Session,
    state: &mut RequestState,
    failure: Failure,
    upto: usize,
) -> Result<()> {
    state.failure = Some(failure);
    let mut reply = Reply::problem(failure.problem());
    if let Some(seconds) = state.retry_after {
        reply.headers.insert(header::RETRY_AFTER, seconds.into());
    }
    send_reply(session, state, reply, upto).await
}

/// Sends `reply`, after the response phase of the first `upto` filters of the route's chain
/// (in reverse), so CORS and request-id headers reach rejected calls too.
pub async fn send_reply(
    session: &mut Session,
    state: &mut RequestState,
    reply: Reply,
    upto: usize,
) -> Result<()> {
    if state.answered_by.is_some() {
        state.rejection = reply.problem.as_ref().map(|p| p.kind);
    }
    let (mut head, mut body) = render(reply, &state.filters.request_id)?;
    if let Some(route) = state.route.clone() {
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
            // A response filter objected to the reply itself: its answer stands, unfiltered.
            state.answered_by = Some(stopped.by);
            (head, body) = render(stopped.reply, &state.filters.request_id)?;
        }
    }
    if !session.is_body_done() {
        // The request body was not read: the connection cannot be reused safely.
        session.set_keepalive(None);
    }
    write_whole(session, state, head, body).await
}

/// Sends a complete answer whose body is known: exact Content-Length, no chunking.
pub async fn write_whole(
    session: &mut Session,
    state: &mut RequestState,
    mut head: ResponseHeader,
    body: Bytes,
) -> Result<()> {
    head.remove_header(&header::TRANSFER_ENCODING);
    head.insert_header(header::CONTENT_LENGTH, body.len())?;
    state.status = head.status.as_u16();
    state.bytes_out = body.len() as u64;
    state.response_started = true;
    session
        .write_response_header(Box::new(head), body.is_empty())
        .await?;
    if !body.is_empty() {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}

/// The head and body of a reply; a problem is rendered as problem+json with the request id.
pub fn render(reply: Reply, request_id: &str) -> Result<(ResponseHeader, Bytes)> {
    let mut head = ResponseHeader::build(reply.status, Some(reply.headers.len() + 3))?;
    for (name, value) in &reply.headers {
        head.append_header(name.clone(), value.clone())?;
    }
    let body = match &reply.problem {
        Some(problem) => {
            head.insert_header(header::CONTENT_TYPE, PROBLEM_JSON)?;
            head.insert_header(header::CACHE_CONTROL, "no-store")?;
            Bytes::from(problem.to_json(request_id))
        }
        None => reply.body,
    };
    Ok((head, body))
}
