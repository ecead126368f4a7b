//! The per-request context that every filter of a chain shares.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

/// Who is calling, as established by an authentication filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumer {
    /// Stable consumer id (a partner's id), used by rate limits, permissions and audit.
    pub id: String,
    /// Extra facts about the consumer (plan, tenant...), from its credential's config.
    pub metadata: BTreeMap<String, String>,
}

/// State of one request that filters read and write. Created by the gateway before the chain
/// runs, and dropped when the access log line is written.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The request id, also sent as X-Request-ID and in every problem body.
    pub request_id: String,
    /// Id of the matched route.
    pub route_id: Arc<str>,
    /// The client's address as the gateway trusts it (after trusted-proxy handling).
    pub client_ip: Option<IpAddr>,
    /// Set by an authentication filter.
    pub consumer: Option<Consumer>,
    /// Free-form facts for later filters (e.g. a verified claim); never logged whole.
    pub attributes: BTreeMap<String, String>,
    /// Notable things filters saw (a store fell back, a cache refreshed), counted by the
    /// gateway as `corridor_filter_events_total{route, event}`. Names are stable snake_case.
    pub events: Vec<&'static str>,
}

impl RequestContext {
    pub fn new(request_id: String, route_id: Arc<str>, client_ip: Option<IpAddr>) -> Self {
        RequestContext {
            request_id,
            route_id,
            client_ip,
            consumer: None,
            attributes: BTreeMap::new(),
            events: Vec::new(),
        }
    }
}
