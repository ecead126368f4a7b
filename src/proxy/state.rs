//! Per-request state: the runtime snapshot the request started with, and what happened to it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use corridor_filters::RequestContext;

use super::failure::Failure;
use crate::runtime::{Route, Runtime};
use crate::upstream::InFlight;

pub struct RequestState {
    /// Taken once when the request starts; every phase uses this snapshot, so a reload never
    /// changes a request halfway.
    pub runtime: Arc<Runtime>,
    pub started: Instant,
    pub route: Option<Arc<Route>>,
    /// What the filters share; holds the request id.
    pub filters: RequestContext,
    /// The peer's address as seen on the socket.
    pub peer_ip: Option<std::net::IpAddr>,
    /// The client connection is HTTPS (for X-Forwarded-Proto).
    pub over_tls: bool,
    /// Index of the target of the current attempt, and the ones already tried.
    pub target: Option<usize>,
    pub tried: Vec<usize>,
    pub in_flight: Option<InFlight>,
    pub first_attempt: Option<Instant>,
    pub upstream_elapsed: Option<Duration>,
    /// Request body bytes seen so far, against `body_limit`.
    pub body_bytes: u64,
    pub body_limit: Option<u64>,
    /// Name of the filter that answered the client itself, if one did, and the problem
    /// type when that answer was a rejection.
    pub answered_by: Option<&'static str>,
    pub rejection: Option<&'static str>,
    pub failure: Option<Failure>,
    /// The response head has gone to the client: no retry is possible any more.
    pub response_started: bool,
    /// A response filter replaced the upstream's answer: this body is sent instead.
    pub replacement_body: Option<bytes::Bytes>,
    /// A slot under the upstream's concurrency cap, held until the request ends.
    pub permit: Option<crate::upstream::Slot>,
    /// Seconds a refused client should wait (503s of the upstream guards).
    pub retry_after: Option<u64>,
    /// The target the client sent, kept for the access log when the route has filters: a
    /// filter may change it (`detokenize` puts a real card number in the path), and the log
    /// must not show what it became.
    pub client_uri: Option<http::Uri>,
    /// Status sent to the client, for the access log.
    pub status: u16,
    pub bytes_out: u64,
}

impl RequestState {
    pub fn new(runtime: Arc<Runtime>, request_id: String, no_route: Arc<str>) -> Self {
        RequestState {
            runtime,
            started: Instant::now(),
            route: None,
            filters: RequestContext::new(request_id, no_route, None),
            peer_ip: None,
            over_tls: false,
            target: None,
            tried: Vec::new(),
            in_flight: None,
            first_attempt: None,
            upstream_elapsed: None,
            body_bytes: 0,
            body_limit: None,
            answered_by: None,
            rejection: None,
            failure: None,
            response_started: false,
            replacement_body: None,
            permit: None,
            retry_after: None,
            client_uri: None,
            status: 0,
            bytes_out: 0,
        }
    }

    /// Time left of the route's upstream budget (timeouts.total), counted from the first
    /// attempt.
    pub fn upstream_budget_left(&self) -> Option<Duration> {
        let route = self.route.as_ref()?;
        let total = route.upstream.timeouts.total;
        Some(match self.first_attempt {
            Some(first) => total.saturating_sub(first.elapsed()),
            None => total,
        })
    }
}

/// A new request id: 128 random bits, formatted as a UUIDv4. Hex is written by hand: this
/// runs for every request, and two `format!` calls cost about 1% of a passthrough request.
pub fn new_request_id() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bits = fastrand::u128(..);
    let bits = (bits & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let mut id = [0u8; 36];
    let mut at = 0;
    for nibble in (0..32).rev() {
        if matches!(at, 8 | 13 | 18 | 23) {
            id[at] = b'-';
            at += 1;
        }
        id[at] = HEX[((bits >> (nibble * 4)) & 0xf) as usize];
        at += 1;
    }
    id.iter().map(|&b| char::from(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::new_request_id;

    #[test]
    fn request_ids_are_uuid_v4_and_differ() {
        let id = new_request_id();
        let groups: Vec<&str> = id.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12],
            "{id}"
        );
        assert!(id
            .bytes()
            .all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert!(groups[2].starts_with('4'), "version 4: {id}");
        assert!(
            matches!(&groups[3][..1], "8" | "9" | "a" | "b"),
            "variant: {id}"
        );
        assert_ne!(id, new_request_id());
    }
}
