//! Upstream clusters: targets, balancing, health, and the peer settings pingora needs.

mod balancer;
mod concurrency;
mod guard;
mod health_check;
pub mod iso8583;
mod target;

use std::sync::Arc;

pub use balancer::Balancer;
pub use concurrency::{ConcurrencyCap, Slot};
pub use guard::{CircuitBreaker, Refusal};
pub use health_check::HealthChecker;
pub use target::{now_ms, InFlight, Target, TargetHealth};

use crate::config::{HealthCheckConfig, PassiveHealthConfig, TimeoutConfig, UpstreamConfig};
use crate::metrics::UpstreamMetrics;

/// What a consistent-hash upstream hashes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashOn {
    ClientIp,
    Header(http::HeaderName),
}

/// A cluster of targets, built from `[upstreams.NAME]`.
#[derive(Debug)]
pub struct Upstream {
    pub name: Arc<str>,
    pub targets: Vec<Target>,
    pub balancer: Balancer,
    pub hash_on: Option<HashOn>,
    pub timeouts: TimeoutConfig,
    pub retries: u32,
    pub health_check: Option<HealthCheckConfig>,
    pub passive: PassiveHealthConfig,
    pub metrics: UpstreamMetrics,
    pub concurrency: Option<std::sync::Arc<ConcurrencyCap>>,
    pub breaker: Option<CircuitBreaker>,
    /// Set for `iso8583` upstreams: the card host's links, which replace HTTP.
    pub card_host: Option<Arc<iso8583::CardHost>>,
    /// The config it was built from, and a digest of the files it names (CA, client
    /// certificate): a reload keeps this upstream (health, pools, balancer position) when
    /// both are unchanged.
    pub definition: UpstreamConfig,
    pub files_sha256: [u8; 32],
}

impl Upstream {
    /// Lets a request through to the core, or says why not: the breaker is open, or the
    /// concurrency cap and its queue are full. The permit is held until the request ends.
    pub async fn admit(&self) -> Result<Option<Slot>, Refusal> {
        if let Some(breaker) = &self.breaker {
            breaker.admit()?;
        }
        match &self.concurrency {
            Some(cap) => cap.admit().await.map(Some),
            None => Ok(None),
        }
    }

    /// Chooses a target that is up and not in `tried`; None when there is none (503).
    pub fn select(&self, key: &[u8], tried: &[usize]) -> Option<usize> {
        let now = now_ms();
        self.balancer.pick(&self.targets, key, |i| {
            !tried.contains(&i) && self.targets[i].health.is_available(now)
        })
    }

    /// Does any target take traffic now?
    pub fn has_available_target(&self) -> bool {
        let now = now_ms();
        self.targets.iter().any(|t| t.health.is_available(now))
    }

    pub fn record_success(&self, index: usize) {
        self.targets[index].health.record_success();
        if let Some(breaker) = &self.breaker {
            breaker.record(true);
        }
    }

    pub fn record_failure(&self, index: usize) {
        if let Some(breaker) = &self.breaker {
            breaker.record(false);
        }
        let target = &self.targets[index];
        if target.health.record_failure(
            self.passive.consecutive_failures,
            self.passive.ejection_time,
        ) {
            tracing::warn!(
                upstream = %self.name,
                target = %target.label,
                ejection_secs = self.passive.ejection_time.as_secs_f64(),
                "target ejected after consecutive failures"
            );
        }
    }
}
