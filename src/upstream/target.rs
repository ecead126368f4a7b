//! One target of an upstream and its health, shared lock-free by every request.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use pingora::upstreams::peer::HttpPeer;

/// Milliseconds since the process started: a cheap monotonic clock for atomics.
pub fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// A target: where it is, how to reach it, and what is known of its health.
#[derive(Debug)]
pub struct Target {
    pub address: SocketAddr,
    /// The address as written in config, for logs and metrics.
    pub label: Arc<str>,
    pub weight: u32,
    /// Template cloned for every request: settings resolved once at build time.
    pub peer: HttpPeer,
    pub health: Arc<TargetHealth>,
}

/// Health of one target. Active checks and passive ejection write it; selection reads it.
#[derive(Debug)]
pub struct TargetHealth {
    /// Set by active health checks; true until a check says otherwise.
    healthy: AtomicBool,
    check_streak: AtomicU32,
    passive_failures: AtomicU32,
    ejected_until_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Default for TargetHealth {
    fn default() -> Self {
        TargetHealth {
            healthy: AtomicBool::new(true),
            check_streak: AtomicU32::new(0),
            passive_failures: AtomicU32::new(0),
            ejected_until_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }
}

impl TargetHealth {
    /// May this target get new requests now?
    pub fn is_available(&self, now_ms: u64) -> bool {
        self.healthy.load(Ordering::Relaxed)
            && self.ejected_until_ms.load(Ordering::Relaxed) <= now_ms
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// An exchange with this target went well: its passive failure streak ends.
    pub fn record_success(&self) {
        if self.passive_failures.load(Ordering::Relaxed) != 0 {
            self.passive_failures.store(0, Ordering::Relaxed);
        }
    }

    /// An exchange failed (connect error, timeout, 502/503/504). After `threshold` in a row
    /// the target is ejected for `ejection`; it gets traffic again when that time is over.
    /// Returns true when this failure ejected it.
    pub fn record_failure(&self, threshold: u32, ejection: Duration) -> bool {
        if threshold == 0 {
            return false;
        }
        let failures = self.passive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures >= threshold {
            self.passive_failures.store(0, Ordering::Relaxed);
            self.ejected_until_ms
                .store(now_ms() + ejection.as_millis() as u64, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// Result of one active check. Flips health after `threshold` results in a row that
    /// disagree with the current state. Only the health checker calls this.
    pub fn record_check(&self, passed: bool, healthy_threshold: u32, unhealthy_threshold: u32) {
        let healthy = self.healthy.load(Ordering::Relaxed);
        if passed == healthy {
            self.check_streak.store(0, Ordering::Relaxed);
            return;
        }
        let streak = self.check_streak.fetch_add(1, Ordering::Relaxed) + 1;
        let needed = if passed {
            healthy_threshold
        } else {
            unhealthy_threshold
        };
        if streak >= needed.max(1) {
            self.healthy.store(passed, Ordering::Relaxed);
            self.check_streak.store(0, Ordering::Relaxed);
            tracing::warn!(healthy = passed, "target health changed by active check");
        }
    }

    /// Counts a request in flight until the guard is dropped (least-connections uses it).
    pub fn start_request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }
}

/// A request in flight to a target; dropping it ends the count.
#[derive(Debug)]
pub struct InFlight(Arc<TargetHealth>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passive_ejection_after_threshold_and_recovery_after_time() {
        let h = TargetHealth::default();
        let now = now_ms();
        assert!(!h.record_failure(3, Duration::from_millis(50)));
        assert!(!h.record_failure(3, Duration::from_millis(50)));
        assert!(h.record_failure(3, Duration::from_millis(50)));
        assert!(!h.is_available(now_ms()));
        assert!(h.is_available(now + 10_000));
    }

    #[test]
    fn success_resets_the_failure_streak() {
        let h = TargetHealth::default();
        h.record_failure(2, Duration::from_secs(1));
        h.record_success();
        assert!(!h.record_failure(2, Duration::from_secs(1)));
    }

    #[test]
    fn active_checks_need_a_streak_to_flip() {
        let h = TargetHealth::default();
        h.record_check(false, 2, 3);
        h.record_check(false, 2, 3);
        assert!(h.is_healthy());
        h.record_check(false, 2, 3);
        assert!(!h.is_healthy());
        h.record_check(true, 2, 3);
        assert!(!h.is_healthy());
        h.record_check(true, 2, 3);
        assert!(h.is_healthy());
    }
}
