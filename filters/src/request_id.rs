//! `request_id`: sends the request id upstream (and back to the client), and continues or
//! starts a W3C trace context (<https://www.w3.org/TR/trace-context/>).
//!
//! ```toml
//! { type = "request_id", trust_incoming = false }
//! ```

use std::sync::Arc;

use async_trait::async_trait;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;

use crate::{BuildContext, BuildError, Filter, Flow, RequestContext, RequestHead, ResponseHead};

/// Config of the `request_id` filter.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RequestIdConfig {
    /// Header that carries the request id to the upstream and back to the client.
    pub header: String,
    /// Keep the client's id when it is 1 to 128 characters of `A-Z a-z 0-9 . _ : -`, instead
    /// of the gateway's. Off by default: a partner could otherwise choose (or collide) the ids
    /// in our logs and audit trail.
    pub trust_incoming: bool,
    /// Send the id back to the client in the response.
    pub echo: bool,
    /// Continue a valid incoming `traceparent` with a new span id for this hop, or start a new
    /// trace; `tracestate` is forwarded only with a valid incoming `traceparent`.
    pub traceparent: bool,
}

impl Default for RequestIdConfig {
    fn default() -> Self {
        RequestIdConfig {
            header: "x-request-id".to_owned(),
            trust_incoming: false,
            echo: true,
            traceparent: true,
        }
    }
}

impl RequestIdConfig {
    pub fn build(&self, _ctx: &BuildContext) -> Result<Arc<dyn Filter>, BuildError> {
        // The same name goes on requests and responses: refuse what either side protects.
        let header = crate::headers::config_header_name(&self.header, true, "request_id: header")?;
        if header == TRACEPARENT || header == TRACESTATE {
            return Err(BuildError(format!(
                "request_id: header {:?} is used for the trace context",
                self.header
            )));
        }
        Ok(Arc::new(RequestIdFilter {
            header,
            trust_incoming: self.trust_incoming,
            echo: self.echo,
            traceparent: self.traceparent,
        }))
    }
}

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
/// Key of the trace id in [`RequestContext::attributes`].
pub const TRACE_ID_ATTRIBUTE: &str = "trace_id";

struct RequestIdFilter {
    header: HeaderName,
    trust_incoming: bool,
    echo: bool,
    traceparent: bool,
}

/// The header's value when it appears exactly once: a repeated id or traceparent is ambiguous,
/// so it is treated as invalid.
fn single<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a HeaderValue> {
    let mut all = headers.get_all(name).iter();
    let first = all.next()?;
    all.next().is_none().then_some(first)
}

/// An id we accept from a client: short, and safe to log and to put in headers verbatim.
fn valid_id(id: &[u8]) -> bool {
    (1..=128).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// The kept parts of a valid version-00 `traceparent`: trace id and flags, as lowercase hex.
struct TraceParent {
    trace_id: [u8; 32],
    flags: [u8; 2],
}

fn is_lower_hex(s: &[u8]) -> bool {
    s.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Parses `00-<32 hex trace-id>-<16 hex parent-id>-<2 hex flags>`, lowercase, with neither id
/// all zeros.
fn parse_traceparent(v: &[u8]) -> Option<TraceParent> {
    if v.len() != 55 || &v[..3] != b"00-" || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let (trace, parent, flags) = (&v[3..35], &v[36..52], &v[53..55]);
    let nonzero = |s: &[u8]| s.iter().any(|&b| b != b'0');
    if !(is_lower_hex(trace) && is_lower_hex(parent) && is_lower_hex(flags)) {
        return None;
    }
    if !(nonzero(trace) && nonzero(parent)) {
        return None;
    }
    let mut out = TraceParent {
        trace_id: [0; 32],
        flags: [0; 2],
    };
    out.trace_id.copy_from_slice(trace);
    out.flags.copy_from_slice(flags);
    Some(out)
}

/// Writes `value` as `out.len()` lowercase hex digits.
fn write_hex(out: &mut [u8], mut value: u128) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for slot in out.iter_mut().rev() {
        *slot = HEX[(value & 0xf) as usize];
        value >>= 4;
    }
}

/// Fills `out` with random lowercase hex, never all zeros (W3C makes all-zero ids invalid).
fn random_hex(out: &mut [u8]) {
    let bits = out.len() as u32 * 4;
    let max = if bits >= 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    };
    write_hex(out, fastrand::u128(1..=max));
}

impl RequestIdFilter {
    fn trace_context<M: RequestHead + ?Sized>(&self, req: &mut M, ctx: &mut RequestContext) {
        // 00-<trace-id>-<span-id>-<flags>
        let mut tp = *b"00-00000000000000000000000000000000-0000000000000000-01";
        match single(req.headers(), &TRACEPARENT).and_then(|v| parse_traceparent(v.as_bytes())) {
            Some(incoming) => {
                tp[3..35].copy_from_slice(&incoming.trace_id);
                tp[53..55].copy_from_slice(&incoming.flags);
            }
            None => {
                random_hex(&mut tp[3..35]);
                // Vendor state belongs to the trace it came with, which we just dropped.
                if req.headers().contains_key(TRACESTATE) {
                    req.remove_header(&TRACESTATE);
                }
            }
        }
        random_hex(&mut tp[36..52]);
        if let Ok(value) = HeaderValue::from_bytes(&tp) {
            req.set_header(TRACEPARENT, value);
        }
        // Only ASCII hex digits were written.
        let trace_id = String::from_utf8_lossy(&tp[3..35]).into_owned();
        ctx.attributes
            .insert(TRACE_ID_ATTRIBUTE.to_owned(), trace_id);
    }
}

#[async_trait]
impl Filter for RequestIdFilter {
    fn name(&self) -> &'static str {
        "request_id"
    }

    async fn on_request(&self, req: &mut dyn RequestHead, ctx: &mut RequestContext) -> Flow {
        let mut kept = false;
        if self.trust_incoming {
            if let Some(id) = single(req.headers(), &self.header)
                .filter(|v| valid_id(v.as_bytes()))
                .and_then(|v| v.to_str().ok())
            {
                if id != ctx.request_id {
                    ctx.request_id = id.to_owned();
                }
                // The request already carries it, once.
                kept = true;
            }
        }
        if !kept {
            // Replaces any client-sent id, so the upstream sees the one in our logs.
            match HeaderValue::from_str(&ctx.request_id) {
                Ok(value) => req.set_header(self.header.clone(), value),
                Err(_) => req.remove_header(&self.header),
            }
        }
        if self.traceparent {
            self.trace_context(req, ctx);
        }
        Flow::Continue
    }

    async fn on_response(
        &self,
        _req: &dyn RequestHead,
        resp: &mut dyn ResponseHead,
        ctx: &mut RequestContext,
    ) -> Flow {
        if self.echo {
            if let Ok(value) = HeaderValue::from_str(&ctx.request_id) {
                resp.set_header(self.header.clone(), value);
            }
        }
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GATEWAY_ID: &str = "gw-0001";

    fn new_ctx() -> RequestContext {
        RequestContext::new(GATEWAY_ID.into(), "route".into(), None)
    }

    fn build(config: RequestIdConfig) -> Arc<dyn Filter> {
        config.build(&BuildContext::default()).unwrap()
    }

    fn request(headers: &[(&str, &str)]) -> http::request::Parts {
        let mut b = http::Request::builder();
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn get<'a>(req: &'a http::request::Parts, name: &str) -> &'a str {
        req.headers.get(name).unwrap().to_str().unwrap()
    }

    #[tokio::test]
    async fn untrusted_incoming_id_is_replaced_and_echoed() {
        let f = build(RequestIdConfig::default());
        let mut req = request(&[("x-request-id", "partner-chosen")]);
        let mut ctx = new_ctx();
        f.on_request(&mut req, &mut ctx).await;
        assert_eq!(ctx.request_id, GATEWAY_ID);
        assert_eq!(req.headers.get_all("x-request-id").iter().count(), 1);
        assert_eq!(get(&req, "x-request-id"), GATEWAY_ID);

        let (mut resp, _) = http::Response::new(()).into_parts();
        f.on_response(&req, &mut resp, &mut ctx).await;
        assert_eq!(resp.headers["x-request-id"], GATEWAY_ID);
    }

    #[tokio::test]
    async fn trusted_incoming_id_is_kept_only_when_valid() {
        let f = build(RequestIdConfig {
            header: "X-Correlation-ID".into(),
            trust_incoming: true,
            echo: false,
            ..Default::default()
        });
        let mut req = request(&[("x-correlation-id", "abc.DEF_1:2-3")]);
        let mut ctx = new_ctx();
        f.on_request(&mut req, &mut ctx).await;
        assert_eq!(ctx.request_id, "abc.DEF_1:2-3");
        assert_eq!(get(&req, "x-correlation-id"), "abc.DEF_1:2-3");

        let too_long = "a".repeat(129);
        let repeated = [("x-correlation-id", "one"), ("x-correlation-id", "two")];
        for headers in [
            &[("x-correlation-id", "has space")][..],
            &[("x-correlation-id", "")][..],
            &[("x-correlation-id", "é")][..],
            &[("x-correlation-id", too_long.as_str())][..],
            &repeated[..],
        ] {
            let mut req = request(headers);
            let mut ctx = new_ctx();
            f.on_request(&mut req, &mut ctx).await;
            assert_eq!(ctx.request_id, GATEWAY_ID, "{headers:?}");
            assert_eq!(req.headers.get_all("x-correlation-id").iter().count(), 1);
            assert_eq!(get(&req, "x-correlation-id"), GATEWAY_ID);
        }
        let max = "a".repeat(128);
        let mut req = request(&[("x-correlation-id", &max)]);
        let mut ctx = new_ctx();
        f.on_request(&mut req, &mut ctx).await;
        assert_eq!(ctx.request_id, max);

        // echo = false leaves the response alone.
        let (mut resp, _) = http::Response::new(()).into_parts();
        f.on_response(&req, &mut resp, &mut ctx).await;
        assert!(!resp.headers.contains_key("x-correlation-id"));
    }

    #[tokio::test]
    async fn valid_traceparent_keeps_trace_and_flags_with_a_new_span() {
        let f = build(RequestIdConfig::default());
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        let mut req = request(&[("traceparent", incoming), ("tracestate", "vendor=opaque")]);
        let mut ctx = new_ctx();
        f.on_request(&mut req, &mut ctx).await;
        let tp = get(&req, "traceparent");
        assert_eq!(tp.len(), 55);
        assert!(tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(tp.ends_with("-00"));
        assert_ne!(&tp[36..52], "00f067aa0ba902b7");
        assert!(parse_traceparent(tp.as_bytes()).is_some());
        assert_eq!(get(&req, "tracestate"), "vendor=opaque");
        assert_eq!(
            ctx.attributes[TRACE_ID_ATTRIBUTE],
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
    }

    #[tokio::test]
    async fn invalid_or_missing_traceparent_starts_a_new_trace() {
        let f = build(RequestIdConfig::default());
        let bad = [
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // version
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01", // zero trace
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", // zero parent
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", // uppercase
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",  // short flags
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", // trailing
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // separator
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01", // not hex
        ];
        for value in bad {
            let mut req = request(&[("traceparent", value), ("tracestate", "vendor=opaque")]);
            let mut ctx = new_ctx();
            f.on_request(&mut req, &mut ctx).await;
            let tp = get(&req, "traceparent");
            assert!(parse_traceparent(tp.as_bytes()).is_some(), "{tp}");
            assert!(!tp.contains("4bf92f3577b34da6a3ce929d0e0e4736"), "{value}");
            assert!(tp.ends_with("-01"));
            assert!(!req.headers.contains_key("tracestate"), "{value}");
            assert_eq!(ctx.attributes[TRACE_ID_ATTRIBUTE], tp[3..35]);
        }
        let mut req = request(&[]);
        let mut ctx = new_ctx();
        f.on_request(&mut req, &mut ctx).await;
        assert!(parse_traceparent(get(&req, "traceparent").as_bytes()).is_some());
        assert_eq!(ctx.attributes[TRACE_ID_ATTRIBUTE].len(), 32);
    }

    #[tokio::test]
    async fn traceparent_off_leaves_trace_headers_alone() {
        let f = build(RequestIdConfig {
            traceparent: false,
            ..Default::default()
        });
        let mut req = request(&[("traceparent", "garbage"), ("tracestate", "a=b")]);
        let mut ctx = new_ctx();
        f.on_request(&mut req, &mut ctx).await;
        assert_eq!(get(&req, "traceparent"), "garbage");
        assert_eq!(get(&req, "tracestate"), "a=b");
        assert!(!ctx.attributes.contains_key(TRACE_ID_ATTRIBUTE));
    }

    #[test]
    fn bad_header_names_are_build_errors() {
        for bad in ["x request id", "", "content-length", "host", "traceparent"] {
            let err = RequestIdConfig {
                header: bad.into(),
                ..Default::default()
            }
            .build(&BuildContext::default())
            .err()
            .unwrap_or_else(|| panic!("{bad:?} was accepted"));
            assert!(err.0.starts_with("request_id: header"), "{err}");
        }
    }

    #[test]
    fn random_ids_are_hex_and_nonzero() {
        for _ in 0..1000 {
            let mut span = [0u8; 16];
            random_hex(&mut span);
            assert!(is_lower_hex(&span));
            assert!(span.iter().any(|&b| b != b'0'));
        }
    }
}
