//! The `soap` filter: the request becomes an envelope for the core, the core's answer JSON
//! or a problem.

use std::collections::BTreeMap;

use async_trait::async_trait;
use bytes::Bytes;
use http::header::{ACCEPT, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, ETAG};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use serde_json::Value;

use super::config::SoapHeaders;
use super::fault::{self, Fault, FaultClass};
use super::mapping::{MapError, Mapping};
use super::template::{Input, Template};
use super::xml::{self, ReadError};
use crate::json_fields::is_encoded;
use crate::{Filter, Flow, Problem, RequestContext, RequestHead, ResponseHead};

const SOAP_ACTION: HeaderName = HeaderName::from_static("soapaction");
/// The content codings the filter can undo.
const DECODABLE: HeaderValue = HeaderValue::from_static("gzip, deflate");
const JSON: HeaderValue = HeaderValue::from_static("application/json");
/// The most of a core's faultstring shown, with `expose_fault_string`.
const MAX_REASON_CHARS: usize = 200;

pub(crate) struct SoapFilter {
    pub method: Method,
    pub target: PathAndQuery,
    pub headers: SoapHeaders,
    pub template: Template,
    pub mapping: Mapping,
    /// By fault code (local name).
    pub faults: BTreeMap<String, FaultAnswer>,
    /// For Client/Sender faults `faults` does not map.
    pub client_status: StatusCode,
    pub expose_fault_string: bool,
    pub max_response_bytes: u64,
}

/// What a mapped fault code answers.
#[derive(Debug)]
pub(crate) struct FaultAnswer {
    pub status: StatusCode,
    pub detail: Option<String>,
}

/// Why the core's answer gives no JSON.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// Not a readable SOAP envelope, or not what the mapping expects: the reason, for logs.
    Unreadable(String),
    TooLarge,
    Fault(Fault),
    /// An envelope without a Fault, under a status other than 2xx.
    NotSuccess(StatusCode),
}

#[async_trait]
impl Filter for SoapFilter {
    fn name(&self) -> &'static str {
        "soap"
    }

    fn wants_request_body(&self) -> bool {
        true
    }

    fn wants_response_body(&self) -> bool {
        true
    }

    async fn on_request_body(
        &self,
        req: &mut dyn RequestHead,
        body: &mut Bytes,
        ctx: &mut RequestContext,
    ) -> Flow {
        match self.envelope(req, body, ctx) {
            Ok(envelope) => {
                *body = Bytes::from(envelope);
                self.address(req);
                Flow::Continue
            }
            Err(problem) => Flow::reject(problem),
        }
    }

    async fn on_response_body(
        &self,
        resp: &mut dyn ResponseHead,
        body: &mut Bytes,
        ctx: &mut RequestContext,
    ) -> Flow {
        match self.translate(resp.status(), resp.headers(), body) {
            Ok(json) => {
                *body = Bytes::from(json);
                resp.remove_header(&CONTENT_ENCODING);
                // The core's validator was for its XML.
                resp.remove_header(&ETAG);
                resp.set_header(CONTENT_TYPE, JSON);
                Flow::Continue
            }
            Err(refusal) => Flow::reject(self.problem(refusal, ctx)),
        }
    }
}

impl SoapFilter {
    /// The envelope for this request, or the 400 that says what it lacks.
    fn envelope(
        &self,
        req: &dyn RequestHead,
        body: &[u8],
        ctx: &RequestContext,
    ) -> Result<String, Problem> {
        let parsed: Value;
        let json = if self.template.reads_json() && !body.is_empty() {
            if is_encoded(req.headers()) {
                return Err(invalid_json("a compressed body cannot be read"));
            }
            let text = std::str::from_utf8(body).map_err(|e| {
                invalid_json(format!("the body is not UTF-8 (byte {})", e.valid_up_to()))
            })?;
            parsed = serde_json::from_str(text).map_err(|e| {
                let what = if e.is_eof() {
                    "the body ends early"
                } else {
                    "syntax error"
                };
                invalid_json(format!("{what} at line {} column {}", e.line(), e.column()))
            })?;
            Some((text, &parsed))
        } else {
            None
        };
        let input = Input {
            json,
            uri: req.uri(),
            headers: req.headers(),
            ctx,
        };
        self.template.render(&input).map_err(|e| {
            Problem::new(StatusCode::BAD_REQUEST, "bad-request", "Bad request")
                .with_detail(e.to_string())
        })
    }

    /// Method, path and headers for the core.
    fn address(&self, req: &mut dyn RequestHead) {
        req.set_method(self.method.clone());
        // Scheme and authority (an HTTP/2 request's) stay: the gateway makes Host from them.
        let mut parts = req.uri().clone().into_parts();
        parts.path_and_query = Some(self.target.clone());
        let uri = Uri::from_parts(parts).unwrap_or_else(|_| Uri::from(self.target.clone()));
        req.set_uri(uri);
        req.set_header(CONTENT_TYPE, self.headers.content_type.clone());
        match &self.headers.soap_action {
            Some(action) => req.set_header(SOAP_ACTION, action.clone()),
            None => req.remove_header(&SOAP_ACTION),
        }
        req.set_header(ACCEPT, self.headers.accept.clone());
        req.set_header(ACCEPT_ENCODING, DECODABLE);
        // The body is ours now, never encoded.
        req.remove_header(&CONTENT_ENCODING);
    }

    /// The JSON for the core's answer, or why there is none.
    pub(crate) fn translate(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Vec<u8>, Refusal> {
        let unreadable = |e: ReadError| match e {
            ReadError::TooLarge(_) => Refusal::TooLarge,
            e => Refusal::Unreadable(e.to_string()),
        };
        let decoded = xml::decode(headers, body, self.max_response_bytes).map_err(unreadable)?;
        let text = xml::text(&decoded).map_err(unreadable)?;
        let doc = xml::parse(&text).map_err(unreadable)?;
        let (version, soap_body) = xml::envelope(&doc).map_err(unreadable)?;
        if let Some(fault) = fault::find(soap_body, version) {
            return Err(Refusal::Fault(fault));
        }
        if !status.is_success() {
            return Err(Refusal::NotSuccess(status));
        }
        let limit = usize::try_from(self.max_response_bytes).unwrap_or(usize::MAX);
        self.mapping.to_json(soap_body, limit).map_err(|e| match e {
            MapError::TooLarge(_) => Refusal::TooLarge,
            e => Refusal::Unreadable(e.to_string()),
        })
    }

    /// The answer for a refusal, logged and counted. Nothing of the core's answer goes out
    /// but what config allows.
    fn problem(&self, refusal: Refusal, ctx: &mut RequestContext) -> Problem {
        let route = &*ctx.route_id;
        match refusal {
            Refusal::Unreadable(reason) => {
                tracing::warn!(route, %reason, "soap: the core's answer cannot be translated");
                ctx.events.push("soap_upstream_malformed");
                Problem::new(
                    StatusCode::BAD_GATEWAY,
                    "upstream-malformed",
                    "The core's answer could not be read",
                )
            }
            Refusal::TooLarge => {
                tracing::warn!(
                    route,
                    limit = self.max_response_bytes,
                    "soap: answer too large"
                );
                ctx.events.push("soap_upstream_too_large");
                Problem::new(
                    StatusCode::BAD_GATEWAY,
                    "upstream-response-too-large",
                    "Upstream response too large",
                )
            }
            Refusal::NotSuccess(status) => {
                tracing::warn!(
                    route,
                    status = status.as_u16(),
                    "soap: error status without a Fault"
                );
                upstream_failed()
            }
            Refusal::Fault(fault) => {
                let problem = self.fault_problem(&fault);
                tracing::info!(
                    route,
                    class = ?fault.class,
                    code = fault.codes.first().map(String::as_str),
                    status = problem.status.as_u16(),
                    "soap: fault from the core"
                );
                ctx.events.push("soap_fault");
                problem
            }
        }
    }

    fn fault_problem(&self, fault: &Fault) -> Problem {
        let mapped = fault.codes.iter().find_map(|code| self.faults.get(code));
        let (status, detail) = match (mapped, fault.class) {
            (Some(answer), _) => (answer.status, answer.detail.clone()),
            (None, FaultClass::Caller) => (self.client_status, None),
            (None, FaultClass::Core) => return upstream_failed(),
        };
        if status.is_server_error() {
            let problem = Problem::new(status, "upstream-failed", "Upstream failed");
            return match detail {
                Some(detail) => problem.with_detail(detail),
                None => problem,
            };
        }
        let detail = detail.or_else(|| {
            self.expose_fault_string
                .then(|| fault.reason.as_deref().map(shown_reason))
                .flatten()
                .filter(|reason| !reason.is_empty())
        });
        let problem = Problem::new(status, "soap-fault", "The core refused the request");
        match detail {
            Some(detail) => problem.with_detail(detail),
            None => problem,
        }
    }
}

fn upstream_failed() -> Problem {
    Problem::new(
        StatusCode::BAD_GATEWAY,
        "upstream-failed",
        "Upstream failed",
    )
}

fn invalid_json(detail: impl Into<String>) -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "invalid-json",
        "Request body is not valid JSON",
    )
    .with_detail(detail)
}

/// A faultstring as shown: one line, trimmed, at most [`MAX_REASON_CHARS`] characters.
fn shown_reason(reason: &str) -> String {
    let one_line: String = reason
        .split(char::is_control)
        .filter(|piece| !piece.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    one_line.trim().chars().take(MAX_REASON_CHARS).collect()
}
