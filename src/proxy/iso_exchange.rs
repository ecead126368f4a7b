//! Routes to a card host: the JSON request becomes an ISO 8583 message through the route's
//! operation, goes over one of the host's links, and the host's answer comes back as JSON
//! (or as a problem when declined). The chain runs around it as on any buffered route, so
//! filters (auth, detokenize before, tokenize after) compose with translation.

use std::sync::Arc;

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
use crate::iso8583::{Message, Operation};
use crate::upstream::iso8583::{CallError, CardHost, Unanswered};

pub async fn run(
    session: &mut Session,
    state: &mut RequestState,
    host: &Arc<CardHost>,
) -> Result<()> {
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
    let json_body = match request_json(&body) {
        Ok(json) => json,
        Err(problem) => return answer_problem(session, state, problem, upto).await,
    };
    let request = match operation.request(&json_body, &MappingContext::from(&state.filters)) {
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
        .call(
            request,
            operation.generated(),
            operation.response_mti(),
            host.request_timeout(),
        )
        .await;
    state.upstream_elapsed = Some(started.elapsed());
    let answer = match answer {
        Ok(answer) => answer,
        Err(Unanswered { error, sent }) => {
            let failure = match error {
                CallError::Unavailable => Failure::NoHealthyTarget,
                CallError::Busy => {
                    state.retry_after = Some(1);
                    Failure::UpstreamSaturated
                }
                CallError::Timeout => Failure::UpstreamTimeout,
                CallError::LinkLost => Failure::UpstreamLinkLost,
                CallError::Malformed => Failure::UpstreamMalformed,
                CallError::Encode(_) | CallError::TooLarge => {
                    let problem = bad_request(error.to_string());
                    return answer_problem(session, state, problem, upto).await;
                }
            };
            if failure == Failure::UpstreamTimeout {
                upstream.metrics.timeout.inc();
            } else if failure.is_target_fault() {
                upstream.metrics.failed.inc();
            }
            if failure.is_target_fault() {
                if let Some(breaker) = &upstream.breaker {
                    breaker.record(false);
                }
            }
            let mut problem = failure.problem();
            if let Some(sent) = sent {
                // The host may have acted on it: settle it rather than leave it open.
                let reversing = start_reversal(host, operation, &json_body, &sent, state);
                problem = problem.with_detail(if reversing {
                    "The outcome is unknown: the request is being reversed."
                } else {
                    "The outcome is unknown: check it before trying again."
                });
            }
            state.failure = Some(failure);
            if let Some(seconds) = state.retry_after {
                let mut reply = Reply::problem(problem);
                reply.headers.insert(header::RETRY_AFTER, seconds.into());
                return reply::send_reply(session, state, reply, upto).await;
            }
            return answer_problem(session, state, problem, upto).await;
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
        Err(declined) if operation.is_approved(&answer) => {
            // Approved, but the answer lacks what the partner must get: the money moved
            // and the partner cannot know it. Undo it rather than leave it standing.
            let reversing = start_reversal(host, operation, &json_body, &answer, state);
            let problem = declined.problem().with_detail(if reversing {
                "The card host's approval could not be read: the request is being reversed."
            } else {
                "The card host's approval could not be read: check the outcome before trying again."
            });
            answer_problem(session, state, problem, upto).await
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

/// Starts the reversal of a request whose outcome is unknown, when its operation names one:
/// the reversal is mapped from the same JSON body plus `original` (the request's MTI, and
/// the STAN, transmission time and RRN of `sent`: the request as it went out, or an answer
/// that copies them back). False when there is none to send.
fn start_reversal(
    host: &Arc<CardHost>,
    operation: &Operation,
    body: &serde_json::Value,
    sent: &Message,
    state: &RequestState,
) -> bool {
    let Some(reversal) = operation
        .reversed_by()
        .and_then(|name| host.spec().operation(name))
    else {
        return false;
    };
    let text = |field: u8| {
        sent.get(field)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    let mut body = body.clone();
    body["original"] = serde_json::json!({
        "mti": String::from_utf8_lossy(&operation.request_mti()),
        "stan": text(11),
        "transmission_time": text(7),
        "rrn": text(37),
    });
    match reversal.request(&body, &MappingContext::from(&state.filters)) {
        Ok(message) => {
            host.reverse(reversal.name(), message, state.filters.request_id.clone());
            true
        }
        Err(e) => {
            tracing::error!(request_id = %state.filters.request_id, error = %e, "cannot build the reversal of a request whose outcome is unknown: reconcile it with the card host");
            false
        }
    }
}
