//! `body_limit`: caps the request body size. A declared Content-Length over the cap is
//! refused before anything is read; the gateway enforces the same cap while the body streams
//! (chunked bodies, lying clients) through [`Filter::request_body_limit`].
//!
//! ```toml
//! { type = "body_limit", max_bytes = 1048576 }
//! ```

use std::sync::Arc;

use async_trait::async_trait;
use http::{header, StatusCode};
use serde::Deserialize;

use crate::{BuildContext, BuildError, Filter, Flow, Problem, RequestContext, RequestHead};

/// Config of the `body_limit` filter.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BodyLimitConfig {
    /// Largest request body allowed, in bytes; required, and more than zero.
    pub max_bytes: u64,
}

impl BodyLimitConfig {
    pub fn build(&self, _ctx: &BuildContext) -> Result<Arc<dyn Filter>, BuildError> {
        if self.max_bytes == 0 {
            return Err(BuildError(
                "body_limit: max_bytes must be more than 0 (got 0)".to_owned(),
            ));
        }
        Ok(Arc::new(BodyLimitFilter {
            max_bytes: self.max_bytes,
            detail: format!("the limit is {} bytes", self.max_bytes),
        }))
    }
}

struct BodyLimitFilter {
    max_bytes: u64,
    /// The 413 detail, made once.
    detail: String,
}

/// What the Content-Length header(s) of a request say.
#[derive(Debug, PartialEq, Eq)]
enum Declared {
    Absent,
    /// A valid length; `None` when it is all digits but past `u64` (certainly too large).
    Length(Option<u64>),
    Malformed,
}

/// Reads Content-Length per RFC 9110 §8.6: digits only; several values (repeated headers or a
/// comma list) are accepted only when they are all the same.
fn declared_length(headers: &http::HeaderMap) -> Declared {
    let mut found: Option<&[u8]> = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        for item in value.as_bytes().split(|&b| b == b',') {
            let item = item.trim_ascii();
            if item.is_empty() || !item.iter().all(u8::is_ascii_digit) {
                return Declared::Malformed;
            }
            match found {
                Some(seen) if seen != item => return Declared::Malformed,
                _ => found = Some(item),
            }
        }
    }
    match found {
        None => Declared::Absent,
        // All ASCII digits, so from_utf8 cannot fail and parse fails only on overflow.
        Some(digits) => Declared::Length(
            std::str::from_utf8(digits)
                .ok()
                .and_then(|s| s.parse().ok()),
        ),
    }
}

#[async_trait]
impl Filter for BodyLimitFilter {
    fn name(&self) -> &'static str {
        "body_limit"
    }

    fn request_body_limit(&self) -> Option<u64> {
        Some(self.max_bytes)
    }

    async fn on_request(&self, req: &mut dyn RequestHead, _ctx: &mut RequestContext) -> Flow {
        match declared_length(req.headers()) {
            Declared::Absent => Flow::Continue,
            Declared::Length(Some(n)) if n <= self.max_bytes => Flow::Continue,
            Declared::Length(_) => Flow::reject(
                Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body-too-large",
                    "Request body too large",
                )
                .with_detail(self.detail.clone()),
            ),
            Declared::Malformed => Flow::reject(
                Problem::new(StatusCode::BAD_REQUEST, "bad-request", "Bad request")
                    .with_detail("malformed Content-Length header"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FilterConfig;

    fn filter(max_bytes: u64) -> Arc<dyn Filter> {
        BodyLimitConfig { max_bytes }
            .build(&BuildContext::default())
            .unwrap()
    }

    async fn run(f: &Arc<dyn Filter>, lengths: &[&str]) -> Option<Problem> {
        let mut b = http::Request::builder().method("POST");
        for l in lengths {
            b = b.header("content-length", *l);
        }
        let (mut req, _) = b.body(()).unwrap().into_parts();
        let mut ctx = RequestContext::new("r".into(), "route".into(), None);
        match f.on_request(&mut req, &mut ctx).await {
            Flow::Continue => None,
            Flow::Respond(reply) => {
                assert_eq!(Some(reply.status), reply.problem.as_ref().map(|p| p.status));
                reply.problem
            }
        }
    }

    #[tokio::test]
    async fn within_limit_or_absent_continues() {
        let f = filter(1024);
        assert_eq!(f.request_body_limit(), Some(1024));
        assert!(run(&f, &[]).await.is_none());
        assert!(run(&f, &["0"]).await.is_none());
        assert!(run(&f, &["1024"]).await.is_none());
        assert!(run(&f, &["1024", "1024"]).await.is_none());
        assert!(run(&f, &["1024, 1024"]).await.is_none());
    }

    #[tokio::test]
    async fn over_limit_is_413() {
        let f = filter(1024);
        for lengths in [&["1025"][..], &["99999999999999999999999999"][..]] {
            let p = run(&f, lengths).await.expect("rejected");
            assert_eq!(p.status, StatusCode::PAYLOAD_TOO_LARGE);
            assert_eq!(p.kind, "body-too-large");
            assert_eq!(p.title, "Request body too large");
            assert_eq!(p.detail.as_deref(), Some("the limit is 1024 bytes"));
        }
    }

    #[tokio::test]
    async fn malformed_content_length_is_400() {
        let f = filter(1024);
        for lengths in [
            &["-1"][..],
            &["+5"][..],
            &["abc"][..],
            &[""][..],
            &["1 2"][..],
            &["10, 11"][..],
            &["10", "11"][..],
            &["10,"][..],
        ] {
            let p = run(&f, lengths).await.expect("rejected");
            assert_eq!(p.status, StatusCode::BAD_REQUEST, "{lengths:?}");
            assert_eq!(p.kind, "bad-request");
        }
    }

    #[test]
    fn config_requires_a_positive_max_bytes() {
        let err = toml::from_str::<FilterConfig>("type = \"body_limit\"").unwrap_err();
        assert!(err.to_string().contains("max_bytes"), "{err}");
        let zero: FilterConfig = toml::from_str("type = \"body_limit\"\nmax_bytes = 0").unwrap();
        let err = zero.build(&BuildContext::default()).err().unwrap();
        assert!(err.0.contains("max_bytes"), "{err}");
        assert!(toml::from_str::<FilterConfig>("type = \"body_limit\"\nmax_bytes = -1").is_err());
        let ok: FilterConfig = toml::from_str("type = \"body_limit\"\nmax_bytes = 10").unwrap();
        let f = ok.build(&BuildContext::default()).unwrap();
        assert_eq!(f.name(), "body_limit");
        assert_eq!(f.request_body_limit(), Some(10));
    }
}
