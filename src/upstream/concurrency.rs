//! The cap on concurrent requests to a core, with a bounded wait queue and an optional
//! adaptive limit.
//!
//! The adaptive limit is AIMD on latency, like TCP congestion control and Netflix's
//! concurrency-limits: an answer slower than `latency_target` (or a failure) cuts the limit
//! by 10%; a full limit's worth of fast answers raises it by one. A core that slows down
//! under load is held near the concurrency it can take, between `min` and `max`.
//!
//! Lock-free: the count and the limit are atomics; waiters park on a per-upstream `Notify`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::Refusal;
use crate::config::ConcurrencyConfig;

#[derive(Debug)]
pub struct ConcurrencyCap {
    in_flight: AtomicUsize,
    limit: AtomicUsize,
    max: usize,
    adaptive: Option<(usize, Duration)>,
    fast_answers: AtomicUsize,
    waiting: AtomicUsize,
    queue: usize,
    queue_timeout: Duration,
    freed: Notify,
}

/// A slot under the cap, given back when dropped.
#[derive(Debug)]
pub struct Slot(Arc<ConcurrencyCap>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.freed.notify_one();
    }
}

impl Slot {
    /// How the exchange went, for the adaptive limit.
    pub fn record(&self, latency: Duration, ok: bool) {
        self.0.record(latency, ok);
    }
}

impl ConcurrencyCap {
    pub fn new(config: &ConcurrencyConfig) -> Option<Arc<Self>> {
        (config.max > 0).then(|| {
            Arc::new(ConcurrencyCap {
                in_flight: AtomicUsize::new(0),
                limit: AtomicUsize::new(config.max),
                max: config.max,
                adaptive: config
                    .adaptive
                    .as_ref()
                    .map(|a| (a.min.clamp(1, config.max), a.latency_target)),
                fast_answers: AtomicUsize::new(0),
                waiting: AtomicUsize::new(0),
                queue: config.queue,
                queue_timeout: config.queue_timeout,
                freed: Notify::new(),
            })
        })
    }

    /// The current limit (the configured `max` unless adaptive).
    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    fn try_take(self: &Arc<Self>) -> Option<Slot> {
        let mut current = self.in_flight.load(Ordering::Acquire);
        while current < self.limit.load(Ordering::Acquire) {
            match self.in_flight.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(Slot(self.clone())),
                Err(now) => current = now,
            }
        }
        None
    }

    /// A slot now, or after waiting in the queue; refused when the queue is full or the
    /// wait times out.
    pub async fn admit(self: &Arc<Self>) -> Result<Slot, Refusal> {
        if let Some(slot) = self.try_take() {
            return Ok(slot);
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.queue {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::Saturated);
        }
        let waited = tokio::time::timeout(self.queue_timeout, async {
            loop {
                let freed = self.freed.notified();
                tokio::pin!(freed);
                // Registered before the check, so a slot freed in between still wakes us.
                freed.as_mut().enable();
                if let Some(slot) = self.try_take() {
                    return slot;
                }
                freed.await;
            }
        })
        .await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        let slot = waited.map_err(|_| Refusal::Saturated)?;
        // Pass the wake-up on if more slots are free than this one.
        self.freed.notify_one();
        Ok(slot)
    }

    fn record(&self, latency: Duration, ok: bool) {
        let Some((min, target)) = self.adaptive else {
            return;
        };
        let limit = self.limit.load(Ordering::Relaxed);
        if !ok || latency > target {
            let cut = (limit * 9 / 10).max(min);
            if cut < limit {
                let _ =
                    self.limit
                        .compare_exchange(limit, cut, Ordering::AcqRel, Ordering::Relaxed);
                self.fast_answers.store(0, Ordering::Relaxed);
            }
        } else if self.fast_answers.fetch_add(1, Ordering::Relaxed) + 1 >= limit && limit < self.max
        {
            self.fast_answers.store(0, Ordering::Relaxed);
            let _ =
                self.limit
                    .compare_exchange(limit, limit + 1, Ordering::AcqRel, Ordering::Relaxed);
            self.freed.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AdaptiveConfig;

    fn cap(max: usize, queue: usize, adaptive: Option<AdaptiveConfig>) -> Arc<ConcurrencyCap> {
        ConcurrencyCap::new(&ConcurrencyConfig {
            max,
            queue,
            queue_timeout: Duration::from_millis(50),
            adaptive,
        })
        .unwrap()
    }

    #[tokio::test]
    async fn queues_then_refuses() {
        let cap = cap(1, 1, None);
        let held = cap.admit().await.unwrap();
        // One may wait (and times out), a second waiter is refused at once.
        let (waiter, refused) = tokio::join!(cap.admit(), async {
            tokio::task::yield_now().await;
            cap.admit().await
        });
        assert_eq!(waiter.unwrap_err(), Refusal::Saturated);
        assert_eq!(refused.unwrap_err(), Refusal::Saturated);
        drop(held);
        assert!(cap.admit().await.is_ok());
    }

    #[tokio::test]
    async fn a_waiter_gets_the_slot_that_is_freed() {
        let cap = cap(1, 5, None);
        let held = cap.admit().await.unwrap();
        let waiter = tokio::spawn({
            let cap = cap.clone();
            async move { cap.admit().await.is_ok() }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(held);
        assert!(waiter.await.unwrap());
    }

    #[tokio::test]
    async fn adaptive_limit_falls_on_slow_answers_and_climbs_on_fast_ones() {
        let target = Duration::from_millis(100);
        let cap = cap(
            20,
            0,
            Some(AdaptiveConfig {
                min: 2,
                latency_target: target,
            }),
        );
        let slot = cap.admit().await.unwrap();
        for _ in 0..30 {
            slot.record(Duration::from_millis(500), true);
        }
        assert_eq!(cap.limit(), 2, "cut down to min");
        for _ in 0..10 {
            slot.record(Duration::from_millis(5), true);
        }
        assert!(cap.limit() > 2, "fast answers raise it again");
        let before = cap.limit();
        slot.record(Duration::from_millis(5), false);
        assert!(cap.limit() < before, "a failure cuts it");
    }
}
