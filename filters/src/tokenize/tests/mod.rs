//! Tests of the `tokenize` and `detokenize` filters, through the `Filter` trait as the gateway
//! calls them, with keys written to a temporary directory at test time.

mod config;
mod detokenize;
mod tokenize;

use std::sync::Arc;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::HeaderMap;

use crate::{
    BuildContext, BuildError, Consumer, Filter, FilterConfig, Flow, Problem, RequestContext,
};

/// Test keys of versions 1 and 2 (random, for these tests only).
const KEYS: [&str; 2] = [
    "0f6c2b3a9d8e7f6051423324155a6b7c8d9eafb0c1d2e3f405162738495a6b7c",
    "9a8b7c6d5e4f30211203f4e5d6c7b8a99a8b7c6d5e4f30211203f4e5d6c7b8a9",
];

/// Real values the tests protect: Luhn-valid test cards and valid IBANs.
const PAN: &str = "4111111111111111";
const PAN_2: &str = "5555555555554444";
const IBAN: &str = "DE89370400440532013000";

/// An ff1 engine for PANs with key versions 1 and 2, `active` making new tokens.
fn ff1_pan(active: u32) -> String {
    format!(
        r#"{{ type = "ff1", kind = "pan", tweak = "acme", keys = {{ active = {active}, versions = [{{ version = 1, file = "v1.key" }}, {{ version = 2, file = "v2.key" }}] }} }}"#
    )
}

/// An ff1 engine for IBANs (one key version: IBAN tokens carry none).
const FF1_IBAN: &str = r#"{ type = "ff1", kind = "iban", tweak = "acme", keys = { active = 1, versions = [{ version = 1, file = "v1.key" }] } }"#;

/// A vault engine for PANs in the redb database of the test directory.
const VAULT_PAN: &str = r#"{ type = "vault", kind = "pan", data_dir = "vault", keys = { active = 1, versions = [{ version = 1, file = "v1.key" }] } }"#;

/// A vault engine whose Redis does not answer: every call is unavailable.
const VAULT_DOWN: &str = r#"{ type = "vault", kind = "pan", store = "redis", keys = { active = 1, versions = [{ version = 1, file = "v1.key" }] }, redis = { url = "redis://127.0.0.1:1/0", timeout = "200ms" } }"#;

/// A directory holding `v1.key` and `v2.key`; filters are built against it.
struct Keys(tempfile::TempDir);

impl Keys {
    fn new() -> Keys {
        let dir = tempfile::tempdir().unwrap();
        for (i, key) in KEYS.iter().enumerate() {
            std::fs::write(dir.path().join(format!("v{}.key", i + 1)), key).unwrap();
        }
        Keys(dir)
    }

    /// The filter of this TOML (a chain entry, with its `type`), or its build error.
    fn try_filter(&self, text: &str) -> Result<Arc<dyn Filter>, BuildError> {
        let config: FilterConfig = toml::from_str(text).unwrap_or_else(|e| panic!("{e}"));
        config.build(&BuildContext::new(self.0.path()))
    }

    fn filter(&self, text: &str) -> Arc<dyn Filter> {
        self.try_filter(text).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// A request context, with `consumer` as set by an authentication filter.
fn ctx(consumer: Option<&str>) -> RequestContext {
    let mut ctx = RequestContext::new("r-1".into(), "route".into(), None);
    ctx.consumer = consumer.map(|id| Consumer {
        id: id.into(),
        metadata: Default::default(),
    });
    ctx
}

fn json_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, "application/json".parse().unwrap());
    headers
}

/// The problem of a flow that answered, panicking on one that went on.
fn problem(flow: Flow) -> Problem {
    match flow {
        Flow::Respond(reply) => reply.problem.expect("a problem"),
        Flow::Continue => panic!("the flow went on"),
    }
}

/// Runs the response body phase of `f` on `body` with `headers`: the body after it, or the
/// problem it answered with.
async fn respond_with(
    f: &Arc<dyn Filter>,
    headers: HeaderMap,
    body: &str,
    ctx: &mut RequestContext,
) -> Result<String, Problem> {
    let (mut resp, _) = http::Response::new(()).into_parts();
    resp.headers = headers;
    let mut body = Bytes::copy_from_slice(body.as_bytes());
    match f.on_response_body(&mut resp, &mut body, ctx).await {
        Flow::Continue => Ok(String::from_utf8(body.to_vec()).unwrap()),
        answer => Err(problem(answer)),
    }
}

/// [`respond_with`] a JSON body.
async fn respond(f: &Arc<dyn Filter>, body: &str) -> Result<String, Problem> {
    respond_with(f, json_headers(), body, &mut ctx(None)).await
}

/// A request as the detokenize filter left it: its target, headers and body.
#[derive(Debug)]
struct Sent {
    uri: String,
    headers: HeaderMap,
    body: String,
}

/// Runs the request phases of `f` on `uri`, `headers` and `body`, for `ctx`: the request
/// as it goes upstream, or the problem it was answered with.
async fn send_with(
    f: &Arc<dyn Filter>,
    uri: &str,
    headers: HeaderMap,
    body: &str,
    ctx: &mut RequestContext,
) -> Result<Sent, Problem> {
    let (mut req, _) = http::Request::post(uri).body(()).unwrap().into_parts();
    req.headers = headers;
    if let answer @ Flow::Respond(_) = f.on_request(&mut req, ctx).await {
        return Err(problem(answer));
    }
    let mut body = Bytes::copy_from_slice(body.as_bytes());
    if f.wants_request_body() {
        if let answer @ Flow::Respond(_) = f.on_request_body(&mut req, &mut body, ctx).await {
            return Err(problem(answer));
        }
    }
    Ok(Sent {
        uri: req.uri.to_string(),
        headers: req.headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
    })
}
