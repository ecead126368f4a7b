//! A circuit breaker for the Redis store, on atomics: no lock on the hot path.
//!
//! Closed, it lets every call through. After `threshold` consecutive failures it opens: no
//! call goes to Redis for `open_for`. Then it lets one probe through (half-open) while the
//! other callers still skip Redis; the probe's success closes it, its failure opens it again.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub(super) struct Breaker {
    threshold: u32,
    open_for: Duration,
    /// Consecutive failures.
    failures: AtomicU32,
    /// Milliseconds since `epoch` (plus one) until which the breaker is open; 0 when closed.
    open_until: AtomicU64,
    /// Set while the half-open probe is in flight.
    probing: AtomicBool,
    epoch: Instant,
}

/// Leave to call Redis once; report the outcome with [`Attempt::succeeded`] or
/// [`Attempt::failed`]. Dropped unreported (the request went away), it frees the probe slot.
pub(super) struct Attempt<'a> {
    breaker: &'a Breaker,
    probe: bool,
}

impl Breaker {
    pub(super) fn new(threshold: u32, open_for: Duration) -> Self {
        Breaker {
            threshold: threshold.max(1),
            open_for,
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            epoch: Instant::now(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1)
    }

    /// Whether Redis may be called now: closed, or half-open and this caller is the probe.
    pub(super) fn attempt(&self) -> Option<Attempt<'_>> {
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            return Some(Attempt {
                breaker: self,
                probe: false,
            });
        }
        if self.now() < until {
            return None;
        }
        self.probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
            .ok()
            .map(|_| Attempt {
                breaker: self,
                probe: true,
            })
    }

    /// Whether the breaker is open (or half-open).
    #[cfg(test)]
    pub(super) fn is_open(&self) -> bool {
        self.open_until.load(Ordering::Acquire) != 0
    }
}

impl Attempt<'_> {
    pub(super) fn succeeded(self) {
        let breaker = self.breaker;
        breaker.failures.store(0, Ordering::Relaxed);
        breaker.open_until.store(0, Ordering::Release);
        // Dropping `self` frees the probe slot.
    }

    pub(super) fn failed(self) {
        let breaker = self.breaker;
        let failures = breaker
            .failures
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_add(1))
            })
            .unwrap_or(u32::MAX)
            .saturating_add(1);
        if failures >= breaker.threshold {
            let open_for = u64::try_from(breaker.open_for.as_millis()).unwrap_or(u64::MAX / 2);
            breaker.open_until.store(
                breaker.now().saturating_add(open_for.max(1)),
                Ordering::Release,
            );
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if self.probe {
            self.breaker.probing.store(false, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_breaker_lets_one_probe_through_after_its_open_time() {
        let breaker = Breaker::new(2, Duration::from_millis(100));
        breaker.attempt().unwrap().failed();
        assert!(!breaker.is_open());
        breaker.attempt().unwrap().failed();
        assert!(breaker.is_open());
        assert!(breaker.attempt().is_none());
        tokio::time::sleep(Duration::from_millis(150)).await;
        // Half-open: one probe, the others still kept off.
        let probe = breaker.attempt().unwrap();
        assert!(breaker.attempt().is_none());
        // A failed probe opens it again.
        probe.failed();
        assert!(breaker.attempt().is_none());
        tokio::time::sleep(Duration::from_millis(150)).await;
        // A probe dropped unreported (its request went away) frees the slot.
        drop(breaker.attempt().unwrap());
        let probe = breaker.attempt().unwrap();
        probe.succeeded();
        assert!(!breaker.is_open());
        assert!(breaker.attempt().is_some());
        assert!(breaker.attempt().is_some());
    }
}
