//! Routes to a card host: the JSON request becomes an ISO 8583 message through the route's
//! operation, goes over one of the host's links, and the host's answer comes back as JSON
//! (or as a problem when declined). The chain runs around it as on any buffered route, so
//! filters (auth, detokenize before, tokenize after) compose with translation.

use bytes::Bytes;
use corridor_filters::{Problem, Reply};
use http::{header, StatusCode};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;

use super::exchange::{filter_and_answer, filtered_request_body};
use super::failure::Failure;
use super::reply;
use super::state::RequestState;
use crate::iso8583::MappingContext;
use crate::upstream::iso8583::{CallError, CardHost};

pub async fn run(session: &mut Session, state: &mut RequestState, host: &CardHost) -> Result<()> {
    let route = state.route.clone().expect("routed before the exchange");
    let upto = route.chain.len();
    let operation = route
        .operation
        .as_deref()
        .and_then(|name| host.spec().operation(name))
        .expect("routes to a card host name one of its operations (checked at build)");
    let Some(body) = filtered_request_body(session, state).await? else {
        return Ok(());
    };
    let request = match request_json(&body) {
        Ok(json) => operation.request(&json, &MappingContext::from(&state.filters)),
        Err(problem) => return answer_problem(session, state, problem, upto).await,
    };
    let request = match request {
        Ok(message) => message,
        Err(e) => {
            let problem = bad_request(e.to_string());
            return answer_problem(session, state, problem, upto).await;
        }
    };

    let upstream = route.upstream.clone();
    let started = std::time::Instant::now();
    state.first_attempt = Some(started);
    let answer = host
        .call(request, operation.generated(), host.request_timeout())
        .await;
    state.upstream_elapsed = Some(started.elapsed());
    let answer = match answer {
        Ok(answer) => answer,
        Err(e) => {
            let failure = match e {
                CallError::Unavailable => Failure::NoHealthyTarget,
                CallError::Busy => Failure::UpstreamSaturated,
                CallError::Timeout => Failure::UpstreamTimeout,
                CallError::LinkLost => Failure::UpstreamLinkLost,
                CallError::Malformed => Failure::UpstreamMalformed,
                CallError::Encode(_) | CallError::TooLarge => {
                    let problem = bad_request(e.to_string());
                    return answer_problem(session, state, problem, upto).await;
                }
            };
            if failure.is_target_fault() {
                if failure == Failure::UpstreamTimeout {
                    upstream.metrics.timeout.inc();
                } else {
                    upstream.metrics.failed.inc();
                }
                if let Some(breaker) = &upstream.breaker {
                    breaker.record(false);
                }
            }
            return reply::send_failure(session, state, failure, upto).await;
        }
    };
    if let Some(breaker) = &upstream.breaker {
        breaker.record(true);
    }
    match operation.response(&answer) {
        Ok(json) => {
            let body = Bytes::from(serde_json::to_vec(&json).expect("JSON values serialize"));
            let mut head = ResponseHeader::build(StatusCode::OK, Some(2))?;
            head.insert_header(header::CONTENT_TYPE, "application/json")?;
            filter_and_answer(session, state, head, body).await
        }
        Err(declined) => answer_problem(session, state, declined.problem(), upto).await,
    }
}

/// The request body as JSON; an empty body is an empty object (a GET needs no body).
fn request_json(body: &[u8]) -> std::result::Result<serde_json::Value, Problem> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Value::Object(Default::default()));
    }
    match serde_json::from_slice(body) {
        Ok(json @ serde_json::Value::Object(_)) => Ok(json),
        _ => Err(bad_request("the body must be a JSON object")),
    }
}

fn bad_request(detail: impl Into<String>) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, "bad-request", "Bad request").with_detail(detail)
}

async fn answer_problem(
    session: &mut Session,
    state: &mut RequestState,
    problem: Problem,
    upto: usize,
) -> Result<()> {
    reply::send_reply(session, state, Reply::problem(problem), upto).await
}
