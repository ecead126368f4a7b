//! Prometheus metrics, named `corridor_*`, labelled by route id and upstream name.
//!
//! Series handles are resolved once per route and upstream (at build time, or on first use
//! of a method/status pair) and cached lock-free, so the request path never formats labels
//! or looks a series up.

use std::sync::{Arc, OnceLock};

use http::Method;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

/// Latency buckets in seconds, from 0.5 ms to 30 s.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "OTHER",
];
const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];

/// Every metric family of the process, registered once.
pub struct Metrics {
    pub registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    in_flight: IntGaugeVec,
    upstream_duration: HistogramVec,
    upstream_errors: IntCounterVec,
    pub target_healthy: IntGaugeVec,
    filter_rejections: IntCounterVec,
    filter_events: IntCounterVec,
    pub reloads: IntCounterVec,
    pub config_info: IntGaugeVec,
    iso8583_links: IntGaugeVec,
    iso8583_events: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let registry = Registry::new();
        let metrics = Metrics {
            requests: IntCounterVec::new(
                Opts::new(
                    "corridor_requests_total",
                    "Requests answered, by route, method and status class",
                ),
                &["route", "method", "status_class"],
            )
            .expect("valid metric"),
            duration: HistogramVec::new(
                HistogramOpts::new(
                    "corridor_request_duration_seconds",
                    "Time from request to end of answer, by route",
                )
                .buckets(BUCKETS.to_vec()),
                &["route"],
            )
            .expect("valid metric"),
            in_flight: IntGaugeVec::new(
                Opts::new(
                    "corridor_requests_in_flight",
                    "Requests being served, by route",
                ),
                &["route"],
            )
            .expect("valid metric"),
            upstream_duration: HistogramVec::new(
                HistogramOpts::new(
                    "corridor_upstream_duration_seconds",
                    "Time to the upstream's answer, by upstream",
                )
                .buckets(BUCKETS.to_vec()),
                &["upstream"],
            )
            .expect("valid metric"),
            upstream_errors: IntCounterVec::new(
                Opts::new(
                    "corridor_upstream_errors_total",
                    "Failed upstream exchanges, by upstream and kind",
                ),
                &["upstream", "kind"],
            )
            .expect("valid metric"),
            target_healthy: IntGaugeVec::new(
                Opts::new(
                    "corridor_upstream_target_healthy",
                    "1 when a target takes traffic, 0 when down or ejected",
                ),
                &["upstream", "target"],
            )
            .expect("valid metric"),
            filter_rejections: IntCounterVec::new(
                Opts::new(
                    "corridor_filter_rejections_total",
                    "Requests a filter answered itself, by route, filter and reason",
                ),
                &["route", "filter", "reason"],
            )
            .expect("valid metric"),
            filter_events: IntCounterVec::new(
                Opts::new(
                    "corridor_filter_events_total",
                    "Notable things filters saw (e.g. a rate-limit store falling back), by route and event",
                ),
                &["route", "event"],
            )
            .expect("valid metric"),
            reloads: IntCounterVec::new(
                Opts::new(
                    "corridor_config_reloads_total",
                    "Config reload attempts, by result",
                ),
                &["result"],
            )
            .expect("valid metric"),
            config_info: IntGaugeVec::new(
                Opts::new(
                    "corridor_config_info",
                    "The config version serving (value 1)",
                ),
                &["version"],
            )
            .expect("valid metric"),
            iso8583_links: IntGaugeVec::new(
                Opts::new(
                    "corridor_iso8583_links_up",
                    "Links open to a card host, by upstream",
                ),
                &["upstream"],
            )
            .expect("valid metric"),
            iso8583_events: IntCounterVec::new(
                Opts::new(
                    "corridor_iso8583_link_events_total",
                    "Card host link events (reconnects, unmatched or late answers, malformed messages, failed echoes), by upstream",
                ),
                &["upstream", "event"],
            )
            .expect("valid metric"),
            registry,
        };
        for collector in [
            Box::new(metrics.requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(metrics.duration.clone()),
            Box::new(metrics.in_flight.clone()),
            Box::new(metrics.upstream_duration.clone()),
            Box::new(metrics.upstream_errors.clone()),
            Box::new(metrics.target_healthy.clone()),
            Box::new(metrics.filter_rejections.clone()),
            Box::new(metrics.filter_events.clone()),
            Box::new(metrics.reloads.clone()),
            Box::new(metrics.config_info.clone()),
            Box::new(metrics.iso8583_links.clone()),
            Box::new(metrics.iso8583_events.clone()),
        ] {
            metrics
                .registry
                .register(collector)
                .expect("metric registered once");
        }
        // Reload results exist from the start, so a dashboard sees 0 rather than nothing.
        for result in ["applied", "rejected"] {
            metrics.reloads.with_label_values(&[result]);
        }
        Arc::new(metrics)
    }

    pub fn route(self: &Arc<Self>, route: &str) -> RouteMetrics {
        RouteMetrics {
            route: route.into(),
            metrics: self.clone(),
            duration: self.duration.with_label_values(&[route]),
            in_flight: self.in_flight.with_label_values(&[route]),
            requests: Default::default(),
        }
    }

    pub fn upstream(&self, upstream: &str) -> UpstreamMetrics {
        UpstreamMetrics {
            duration: self.upstream_duration.with_label_values(&[upstream]),
            failed: self
                .upstream_errors
                .with_label_values(&[upstream, "failed"]),
            timeout: self
                .upstream_errors
                .with_label_values(&[upstream, "timeout"]),
            no_target: self
                .upstream_errors
                .with_label_values(&[upstream, "no_healthy_target"]),
            saturated: self
                .upstream_errors
                .with_label_values(&[upstream, "saturated"]),
            circuit_open: self
                .upstream_errors
                .with_label_values(&[upstream, "circuit_open"]),
        }
    }

    pub fn iso8583(&self, upstream: &str) -> Iso8583Metrics {
        let event = |name: &str| self.iso8583_events.with_label_values(&[upstream, name]);
        Iso8583Metrics {
            links_up: self.iso8583_links.with_label_values(&[upstream]),
            reconnects: event("reconnect"),
            unmatched: event("unmatched_answer"),
            malformed: event("malformed_answer"),
            echo_failed: event("echo_failed"),
            reversals: event("reversal_sent"),
            reversals_unconfirmed: event("reversal_unconfirmed"),
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let encoder = prometheus::TextEncoder::new();
        let _ = prometheus::Encoder::encode(&encoder, &self.registry.gather(), &mut out);
        out
    }
}

/// One route's series.
pub struct RouteMetrics {
    route: Box<str>,
    metrics: Arc<Metrics>,
    duration: Histogram,
    pub in_flight: IntGauge,
    /// Resolved on first use of each method × status class, then read without locking.
    requests: [[OnceLock<IntCounter>; CLASSES.len()]; METHODS.len()],
}

impl std::fmt::Debug for RouteMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteMetrics")
            .field("route", &self.route)
            .finish()
    }
}

impl RouteMetrics {
    /// Counts an answered request.
    pub fn observe(&self, method: &Method, status: u16, seconds: f64) {
        let m = match *method {
            Method::GET => 0,
            Method::HEAD => 1,
            Method::POST => 2,
            Method::PUT => 3,
            Method::DELETE => 4,
            Method::PATCH => 5,
            Method::OPTIONS => 6,
            _ => 7,
        };
        let c = match status {
            100..=599 => (status / 100 - 1) as usize,
            _ => 5,
        };
        self.requests[m][c]
            .get_or_init(|| {
                self.metrics
                    .requests
                    .with_label_values(&[&self.route, METHODS[m], CLASSES[c]])
            })
            .inc();
        self.duration.observe(seconds);
    }

    /// Counts an event a filter reported. Rare enough to resolve the series here.
    pub fn filter_event(&self, event: &str) {
        self.metrics
            .filter_events
            .with_label_values(&[&self.route, event])
            .inc();
    }

    /// Counts a request a filter answered itself. Rare enough to resolve the series here.
    pub fn rejected(&self, filter: &str, reason: &str) {
        self.metrics
            .filter_rejections
            .with_label_values(&[&self.route, filter, reason])
            .inc();
    }
}

/// One card host's link series.
#[derive(Debug)]
pub struct Iso8583Metrics {
    pub links_up: IntGauge,
    pub reconnects: IntCounter,
    /// Answers no waiting request matched: late (their request timed out) or unknown.
    pub unmatched: IntCounter,
    pub malformed: IntCounter,
    pub echo_failed: IntCounter,
    /// Reversals sent for requests whose outcome was unknown, and those never answered.
    pub reversals: IntCounter,
    pub reversals_unconfirmed: IntCounter,
}

/// One upstream's series.
#[derive(Debug)]
pub struct UpstreamMetrics {
    pub duration: Histogram,
    pub failed: IntCounter,
    pub timeout: IntCounter,
    pub no_target: IntCounter,
    /// Refused by the concurrency cap, and by the open circuit breaker.
    pub saturated: IntCounter,
    pub circuit_open: IntCounter,
}
