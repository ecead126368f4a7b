//! The circuit breaker that fails fast while a core is failing (the concurrency cap is in
//! `concurrency.rs`). Per upstream, kept across reloads that leave the upstream unchanged,
//! atomics only.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use super::now_ms;
use crate::config::CircuitBreakerConfig;

/// Why a request was not let through to the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The cap is reached and the queue is full, or the wait timed out.
    Saturated,
    /// The breaker is open; retry after this many seconds.
    CircuitOpen { retry_after_secs: u64 },
}

/// A circuit breaker: closed → open (fail fast) → half-open (one probe) → closed on the
/// probe's success, open again on its failure. It opens on consecutive failures, or on the
/// share of failures in a fixed window.
#[derive(Debug)]
pub struct CircuitBreaker {
    threshold: u32,
    open_for: Duration,
    failures: AtomicU32,
    ratio: Option<ErrorRatio>,
    /// 0 while closed; otherwise when the open period ends (ms, `now_ms` clock).
    open_until_ms: AtomicU64,
    /// When the half-open probe was let through (0: none). A probe that never reports (its
    /// request found no target, the client left) is replaced after `open_for`.
    probe_started_ms: AtomicU64,
}

/// Failures out of exchanges in the current window.
#[derive(Debug)]
struct ErrorRatio {
    ratio: f64,
    min_requests: u32,
    window_ms: u64,
    started_ms: AtomicU64,
    total: AtomicU32,
    failed: AtomicU32,
}

impl ErrorRatio {
    /// Counts one exchange; true when the window's share of failures opens the circuit.
    fn trips(&self, success: bool) -> bool {
        let now = now_ms();
        let started = self.started_ms.load(Ordering::Acquire);
        if now.saturating_sub(started) >= self.window_ms
            && self
                .started_ms
                .compare_exchange(started, now, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.total.store(0, Ordering::Relaxed);
            self.failed.store(0, Ordering::Relaxed);
        }
        let total = self.total.fetch_add(1, Ordering::Relaxed) + 1;
        let failed = if success {
            self.failed.load(Ordering::Relaxed)
        } else {
            self.failed.fetch_add(1, Ordering::Relaxed) + 1
        };
        let trips = !success
            && total >= self.min_requests
            && f64::from(failed) >= self.ratio * f64::from(total);
        if trips {
            // The open period judges the core; a fresh window judges it after.
            self.started_ms.store(0, Ordering::Release);
        }
        trips
    }
}

impl CircuitBreaker {
    pub fn new(config: &CircuitBreakerConfig) -> Option<Self> {
        let ratio = (config.error_ratio > 0.0).then(|| ErrorRatio {
            ratio: config.error_ratio,
            min_requests: config.min_requests.max(1),
            window_ms: config.window.as_millis() as u64,
            started_ms: AtomicU64::new(0),
            total: AtomicU32::new(0),
            failed: AtomicU32::new(0),
        });
        (config.consecutive_failures > 0 || ratio.is_some()).then(|| CircuitBreaker {
            // 0 would open on every failure: with only the ratio on, streaks never open it.
            threshold: if config.consecutive_failures > 0 {
                config.consecutive_failures
            } else {
                u32::MAX
            },
            open_for: config.open_for,
            failures: AtomicU32::new(0),
            ratio,
            open_until_ms: AtomicU64::new(0),
            probe_started_ms: AtomicU64::new(0),
        })
    }

    /// May a request go to the core now?
    pub fn admit(&self) -> Result<(), Refusal> {
        let open_until = self.open_until_ms.load(Ordering::Acquire);
        if open_until == 0 {
            return Ok(());
        }
        let now = now_ms();
        if now < open_until {
            return Err(Refusal::CircuitOpen {
                retry_after_secs: (open_until - now).div_ceil(1000).max(1),
            });
        }
        // Half-open: one probe at a time; everyone else still fails fast.
        let probe = self.probe_started_ms.load(Ordering::Acquire);
        let stale = probe != 0 && now.saturating_sub(probe) > self.open_for.as_millis() as u64;
        if (probe == 0 || stale)
            && self
                .probe_started_ms
                .compare_exchange(probe, now.max(1), Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            return Ok(());
        }
        Err(Refusal::CircuitOpen {
            retry_after_secs: 1,
        })
    }

    pub fn record(&self, success: bool) {
        let ratio_trips = self.ratio.as_ref().is_some_and(|r| r.trips(success));
        if success {
            self.failures.store(0, Ordering::Relaxed);
            if self.open_until_ms.swap(0, Ordering::AcqRel) != 0 {
                tracing::warn!("circuit closed: the upstream answered again");
            }
            self.probe_started_ms.store(0, Ordering::Release);
            return;
        }
        let probing = self.probe_started_ms.swap(0, Ordering::AcqRel) != 0;
        let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if probing || failures >= self.threshold || ratio_trips {
            self.failures.store(0, Ordering::Relaxed);
            let until = now_ms() + self.open_for.as_millis() as u64;
            self.open_until_ms.store(until.max(1), Ordering::Release);
            tracing::warn!(
                open_secs = self.open_for.as_secs_f64(),
                "circuit opened: the upstream keeps failing"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(threshold: u32, open_for_ms: u64) -> CircuitBreaker {
        CircuitBreaker::new(&CircuitBreakerConfig {
            consecutive_failures: threshold,
            open_for: Duration::from_millis(open_for_ms),
            ..CircuitBreakerConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn opens_on_the_share_of_failures_in_a_window() {
        let b = CircuitBreaker::new(&CircuitBreakerConfig {
            error_ratio: 0.5,
            min_requests: 10,
            window: Duration::from_secs(60),
            open_for: Duration::from_secs(60),
            ..CircuitBreakerConfig::default()
        })
        .unwrap();
        // Alternating answers never make a streak, but half of them fail.
        for _ in 0..4 {
            b.record(true);
            b.record(false);
        }
        assert!(b.admit().is_ok(), "fewer than min_requests: not judged yet");
        b.record(true);
        b.record(false);
        assert!(b.admit().is_err(), "10 exchanges, 5 failed: open");
    }

    #[test]
    fn opens_after_consecutive_failures_and_fails_fast() {
        let b = breaker(3, 60_000);
        b.record(false);
        b.record(false);
        assert!(b.admit().is_ok());
        b.record(false);
        assert!(
            matches!(b.admit(), Err(Refusal::CircuitOpen { retry_after_secs }) if retry_after_secs >= 59)
        );
    }

    #[test]
    fn half_open_lets_one_probe_and_closes_on_success() {
        let b = breaker(1, 30);
        b.record(false);
        assert!(b.admit().is_err());
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.admit().is_ok(), "the probe");
        assert!(b.admit().is_err(), "only one probe at a time");
        b.record(true);
        assert!(b.admit().is_ok());
        assert!(b.admit().is_ok());
    }

    #[test]
    fn a_failed_probe_opens_again() {
        let b = breaker(5, 30);
        for _ in 0..5 {
            b.record(false);
        }
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.admit().is_ok());
        b.record(false);
        assert!(b.admit().is_err());
    }
}
