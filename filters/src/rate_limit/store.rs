//! Where a `rate_limit` filter's limits keep their per-key state, in this instance's memory.

use std::num::NonZeroU64;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use governor::nanos::Nanos;
use governor::state::keyed::ShrinkableKeyedStateStore;
use governor::state::StateStore;

use super::keys::Key;

/// One limit's GCRA state per key: the "theoretical arrival time" in nanoseconds since the
/// limiter started, 0 for a key never counted. A key is a shard lookup and a compare-and-swap;
/// only a key's first request takes its shard's write lock.
pub(super) struct KeyStore {
    pub(super) map: DashMap<Key, AtomicU64>,
    /// Keys in `map`, counted as they are added and removed, so that checking the bound
    /// locks no shard.
    pub(super) tracked: AtomicUsize,
    pub(super) max_keys: usize,
    /// Set while some caller sweeps.
    pub(super) sweeping: AtomicBool,
}

impl KeyStore {
    /// Drops the keys with the earliest arrival times (the closest to a whole allowance)
    /// until at most `target` remain.
    pub(super) fn evict_down_to(&self, target: usize) {
        let len = self.map.len();
        if len <= target {
            return;
        }
        let mut times: Vec<u64> = self
            .map
            .iter()
            .map(|entry| entry.value().load(Ordering::Relaxed))
            .collect();
        let excess = times.len().saturating_sub(target);
        if excess == 0 {
            return;
        }
        let (_, cut, _) = times.select_nth_unstable(excess - 1);
        let cut = *cut;
        self.remove_where(|time| time <= cut);
    }

    /// Removes the keys whose arrival time `drop` picks, keeping `tracked` exact.
    fn remove_where(&self, drop: impl Fn(u64) -> bool) {
        let mut removed = 0;
        self.map.retain(|_, time| {
            let gone = drop(time.load(Ordering::Relaxed));
            removed += usize::from(gone);
            !gone
        });
        self.tracked.fetch_sub(removed, Ordering::Relaxed);
    }
}

/// Applies `decide` to a key's state until it sticks (another request may change it between
/// the read and the swap).
fn update<T, E>(
    state: &AtomicU64,
    decide: impl Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
) -> Result<T, E> {
    let mut seen = state.load(Ordering::Acquire);
    loop {
        let (outcome, next) = decide(NonZeroU64::new(seen).map(|n| Nanos::new(n.get())))?;
        match state.compare_exchange_weak(seen, next.as_u64(), Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => return Ok(outcome),
            Err(current) => seen = current,
        }
    }
}

/// The [`KeyStore`] as governor's state store; the limit keeps a handle too, to sweep it.
pub(super) struct SharedStore(pub(super) Arc<KeyStore>);

impl StateStore for SharedStore {
    type Key = Key;

    fn measure_and_replace<T, F, E>(&self, key: &Key, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let store = &self.0;
        if let Some(state) = store.map.get(key) {
            return update(&state, f);
        }
        let state = match store.map.entry(key.clone()) {
            Entry::Occupied(entry) => entry.into_ref(),
            Entry::Vacant(entry) => {
                store.tracked.fetch_add(1, Ordering::Relaxed);
                entry.insert(AtomicU64::new(0))
            }
        }
        .downgrade();
        update(&state, f)
    }
}

impl ShrinkableKeyedStateStore<Key> for SharedStore {
    fn retain_recent(&self, drop_below: Nanos) {
        let below = drop_below.as_u64();
        self.0.remove_where(|time| time <= below);
    }

    fn shrink_to_fit(&self) {
        self.0.map.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.0.map.len()
    }

    fn is_empty(&self) -> bool {
        self.0.map.is_empty()
    }
}
