//! The answers the gateway makes itself when it cannot proxy, as RFC 9457 problems.

use corridor_filters::Problem;
use http::StatusCode;
use pingora::{Error, ErrorSource, ErrorType};

/// Why the gateway answered instead of the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    BadRequest,
    NoRoute,
    BodyTooLarge,
    HeadersTooLarge,
    UpstreamFailed,
    UpstreamTooLarge,
    NoHealthyTarget,
    /// The upstream's concurrency cap and queue are full.
    UpstreamSaturated,
    /// The upstream's circuit breaker is open.
    CircuitOpen,
    UpstreamTimeout,
    /// A card host's link dropped after the request was sent: its outcome is unknown.
    UpstreamLinkLost,
    /// The upstream answered with something that does not parse.
    UpstreamMalformed,
    /// The connection negotiated a TLS version the listener does not accept.
    TlsVersionRefused,
    Internal,
}

impl Failure {
    pub fn problem(self) -> Problem {
        let (status, kind, title) = match self {
            Failure::BadRequest => (StatusCode::BAD_REQUEST, "bad-request", "Bad request"),
            Failure::NoRoute => (
                StatusCode::NOT_FOUND,
                "no-route",
                "No route for this request",
            ),
            Failure::BodyTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                "Request body too large",
            ),
            Failure::HeadersTooLarge => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers-too-large",
                "Request headers too large",
            ),
            Failure::UpstreamFailed => (
                StatusCode::BAD_GATEWAY,
                "upstream-failed",
                "Upstream failed",
            ),
            Failure::UpstreamTooLarge => (
                StatusCode::BAD_GATEWAY,
                "upstream-response-too-large",
                "Upstream response too large",
            ),
            Failure::UpstreamSaturated => (
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream-saturated",
                "Upstream at capacity",
            ),
            Failure::CircuitOpen => (
                StatusCode::SERVICE_UNAVAILABLE,
                "circuit-open",
                "Upstream temporarily unavailable",
            ),
            Failure::NoHealthyTarget => (
                StatusCode::SERVICE_UNAVAILABLE,
                "no-healthy-upstream",
                "No healthy upstream target",
            ),
            Failure::UpstreamTimeout => (
                StatusCode::GATEWAY_TIMEOUT,
                "upstream-timeout",
                "Upstream timed out",
            ),
            Failure::UpstreamLinkLost => (
                StatusCode::BAD_GATEWAY,
                "upstream-link-lost",
                "Link to the upstream dropped before it answered; the outcome is unknown",
            ),
            Failure::UpstreamMalformed => (
                StatusCode::BAD_GATEWAY,
                "upstream-malformed",
                "Upstream answered with a malformed message",
            ),
            Failure::TlsVersionRefused => (
                StatusCode::UPGRADE_REQUIRED,
                "tls-version-refused",
                "This listener requires TLS 1.3",
            ),
            Failure::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal gateway error",
            ),
        };
        Problem::new(status, kind, title)
    }

    /// Classifies a pingora error. `None`: the client went away, there is no one to answer.
    pub fn from_error(e: &Error) -> Option<Failure> {
        use ErrorType::*;
        match e.etype() {
            HTTPStatus(413) => return Some(Failure::BodyTooLarge),
            HTTPStatus(431) => return Some(Failure::HeadersTooLarge),
            HTTPStatus(code) if *code < 500 => return Some(Failure::BadRequest),
            ConnectTimedout | ReadTimedout | WriteTimedout
                if e.esource() == &ErrorSource::Upstream =>
            {
                return Some(Failure::UpstreamTimeout);
            }
            _ => {}
        }
        match e.esource() {
            ErrorSource::Upstream => Some(Failure::UpstreamFailed),
            ErrorSource::Downstream => match e.etype() {
                ReadError | WriteError | ConnectionClosed | ReadTimedout | WriteTimedout => None,
                _ => Some(Failure::BadRequest),
            },
            ErrorSource::Internal | ErrorSource::Unset => Some(Failure::Internal),
        }
    }

    /// Does this failure count against the target (passive health)?
    pub fn is_target_fault(self) -> bool {
        matches!(
            self,
            Failure::UpstreamFailed
                | Failure::UpstreamTimeout
                | Failure::UpstreamLinkLost
                | Failure::UpstreamMalformed
        )
    }
}
