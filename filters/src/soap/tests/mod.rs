//! Tests of the `soap` filter through the `Filter` trait, as the gateway calls it.

mod config;
mod faults;
mod fuzz;
mod limits;
mod request;
mod response;

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::StatusCode;

use crate::{BuildContext, Filter, FilterConfig, Flow, Problem, RequestContext};

const ACC: &str = "urn:corridor:democore:accounts:1";
const SOAP11: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const SOAP12: &str = "http://www.w3.org/2003/05/soap-envelope";

/// The filter of this config (the `type` line is added).
fn filter(options: &str) -> Arc<dyn Filter> {
    try_filter(options).unwrap_or_else(|e| panic!("{e}"))
}

/// The filter, or its build error's text.
fn try_filter(options: &str) -> Result<Arc<dyn Filter>, String> {
    let config: FilterConfig = toml::from_str(&format!("type = \"soap\"\n{options}"))
        .map_err(|e| format!("parse: {e}"))?;
    config.build(&BuildContext::default()).map_err(|e| e.0)
}

/// The options every test config shares: SOAP 1.1, the demo core's namespace as `acc`.
fn base(rest: &str) -> String {
    format!(
        "action = \"urn:corridor:democore:accounts:1#GetBalance\"\npath = \"/soap/accounts\"\n\
         namespaces = {{ acc = \"{ACC}\" }}\n{rest}"
    )
}

fn ctx() -> RequestContext {
    RequestContext::new("r-1".into(), "balance".into(), None)
}

/// The future's output; the filter never waits, so one poll finishes it.
fn now<T>(future: impl Future<Output = T>) -> T {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the soap filter waited"),
    }
}

/// The request as the core gets it (head and envelope), or the problem answered instead.
fn send_with(
    f: &Arc<dyn Filter>,
    ctx: &mut RequestContext,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(http::request::Parts, String), Problem> {
    let mut builder = http::Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let (mut req, _) = builder.body(()).unwrap().into_parts();
    let mut body = Bytes::copy_from_slice(body);
    match now(f.on_request_body(&mut req, &mut body, ctx)) {
        Flow::Continue => Ok((req, String::from_utf8(body.to_vec()).unwrap())),
        Flow::Respond(reply) => Err(reply.problem.expect("a problem reply")),
    }
}

fn send(
    f: &Arc<dyn Filter>,
    uri: &str,
    body: &str,
) -> Result<(http::request::Parts, String), Problem> {
    send_with(f, &mut ctx(), "GET", uri, &[], body.as_bytes())
}

/// The answer as the client gets it (head and JSON), or the problem answered instead.
fn answer_with(
    f: &Arc<dyn Filter>,
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(http::response::Parts, serde_json::Value), Problem> {
    let mut builder = http::Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let (mut resp, _) = builder.body(()).unwrap().into_parts();
    let mut body = Bytes::copy_from_slice(body);
    match now(f.on_response_body(&mut resp, &mut body, &mut ctx())) {
        Flow::Continue => {
            let json = serde_json::from_slice(&body)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&body)));
            Ok((resp, json))
        }
        Flow::Respond(reply) => Err(reply.problem.expect("a problem reply")),
    }
}

/// The JSON of a 200 answer with this body.
fn answer(f: &Arc<dyn Filter>, body: &str) -> serde_json::Value {
    answer_with(f, 200, &[("content-type", "text/xml")], body.as_bytes())
        .unwrap_or_else(|p| panic!("{p:?}"))
        .1
}

/// The problem answered for this body under this status.
fn refused(f: &Arc<dyn Filter>, status: u16, body: &[u8]) -> Problem {
    match answer_with(f, status, &[("content-type", "text/xml")], body) {
        Ok((_, json)) => panic!("translated: {json}"),
        Err(problem) => problem,
    }
}

fn assert_problem(problem: &Problem, status: u16, kind: &str) {
    assert_eq!(
        (problem.status, problem.kind),
        (StatusCode::from_u16(status).unwrap(), kind),
        "{problem:?}"
    );
}

/// A SOAP 1.1 envelope around `body`, declaring `acc` as `prefix`.
fn envelope11(prefix: &str, body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="{SOAP11}" xmlns:{prefix}="{ACC}"><s:Body>{body}</s:Body></s:Envelope>"#
    )
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}
