//! Where a `jwt` filter gets its keys: a JWKS file read at build time, or a remote JWKS
//! cached in memory.
//!
//! The remote set is fetched on first use (building a filter never touches the network: the
//! config check runs without a runtime), then refreshed in the background once older than
//! `jwks_ttl` while requests go on with the cached set (stale-while-revalidate). A token with
//! an unknown `kid` triggers a refetch, which the request waits for, so a key the IdP just
//! published works at once. Every fetch, whatever its reason, starts at most once per
//! `refetch_interval`, and only one runs at a time: tokens with made-up `kid`s, or an IdP that
//! is down, cost the IdP one request per interval. A failed fetch keeps the previous set.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;

use super::fetch::Fetcher;
use super::keys::KeySet;

/// The keys of one filter.
pub(super) enum KeyStore {
    Static(Arc<KeySet>),
    Remote(Arc<RemoteKeys>),
}

impl KeyStore {
    /// The key set to verify a token whose header names `kid`. On a remote store this may
    /// fetch (first use, unknown `kid`) and may start a background refresh (stale set).
    /// `None`: no key set could be fetched yet.
    pub(super) async fn for_kid(
        &self,
        kid: &str,
        events: &mut Vec<&'static str>,
    ) -> Option<Arc<KeySet>> {
        match self {
            KeyStore::Static(set) => Some(set.clone()),
            KeyStore::Remote(remote) => remote.for_kid(kid, events).await,
        }
    }

    /// The current key set, without waiting for any fetch (for a cached token's check).
    pub(super) fn current(&self, events: &mut Vec<&'static str>) -> Option<Arc<KeySet>> {
        match self {
            KeyStore::Static(set) => Some(set.clone()),
            KeyStore::Remote(remote) => remote.current(events),
        }
    }
}

/// A JWKS fetched from the IdP, with its refresh policy.
pub(super) struct RemoteKeys {
    fetcher: Fetcher,
    keys: ArcSwapOption<KeySet>,
    ttl: Duration,
    refetch_interval: Duration,
    /// Start of the clock `last_attempt` counts in.
    epoch: Instant,
    /// Milliseconds since `epoch` when the last fetch started, or [`NEVER`].
    last_attempt: AtomicU64,
    /// Held while a fetch runs: one at a time, and who waits on it sees the result.
    fetching: tokio::sync::Mutex<()>,
    /// A fetch failed since a request last reported it (background fetches have no request
    /// of their own to count the event on).
    failed: AtomicBool,
}

const NEVER: u64 = u64::MAX;

impl RemoteKeys {
    pub(super) fn new(fetcher: Fetcher, ttl: Duration, refetch_interval: Duration) -> Self {
        RemoteKeys {
            fetcher,
            keys: ArcSwapOption::empty(),
            ttl,
            refetch_interval,
            epoch: Instant::now(),
            last_attempt: AtomicU64::new(NEVER),
            fetching: tokio::sync::Mutex::new(()),
            failed: AtomicBool::new(false),
        }
    }

    async fn for_kid(
        self: &Arc<Self>,
        kid: &str,
        events: &mut Vec<&'static str>,
    ) -> Option<Arc<KeySet>> {
        let current = self.current(events);
        if current.as_ref().is_some_and(|set| set.knows(kid)) {
            return current;
        }
        // First use, or a kid the set does not know. Waiting here lets a fetch in flight
        // finish: it may have brought the kid.
        let locked = self.fetching.lock().await;
        let latest = self.keys.load_full();
        if latest.as_ref().is_some_and(|set| set.knows(kid)) {
            return latest;
        }
        if self.claim_attempt() {
            self.fetch(&locked).await;
        }
        self.report_failure(events);
        self.keys.load_full()
    }

    fn current(self: &Arc<Self>, events: &mut Vec<&'static str>) -> Option<Arc<KeySet>> {
        let current = self.keys.load_full();
        if let Some(set) = &current {
            if set.loaded_at.elapsed() >= self.ttl && self.claim_attempt() {
                let this = Arc::clone(self);
                tokio::spawn(async move {
                    let locked = this.fetching.lock().await;
                    this.fetch(&locked).await;
                });
            }
        }
        self.report_failure(events);
        current
    }

    /// Takes the right to start a fetch now: false when one started less than
    /// `refetch_interval` ago. One caller wins a race for it.
    fn claim_attempt(&self) -> bool {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        let last = self.last_attempt.load(Ordering::Acquire);
        let interval = u64::try_from(self.refetch_interval.as_millis()).unwrap_or(u64::MAX);
        if last != NEVER && now.saturating_sub(last) < interval {
            return false;
        }
        self.last_attempt
            .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Fetches the JWKS and swaps it in; on failure keeps the current set and logs why.
    /// Called with `fetching` held, so one fetch runs at a time.
    async fn fetch(&self, _locked: &tokio::sync::MutexGuard<'_, ()>) {
        match self.fetcher.fetch().await {
            Ok(set) => self.keys.store(Some(Arc::new(set))),
            Err(error) => {
                self.failed.store(true, Ordering::Release);
                let serving = if self.keys.load().is_some() {
                    "the cached keys stay in use"
                } else {
                    "no keys yet: tokens cannot be verified"
                };
                tracing::warn!(%error, "jwt: fetching the JWKS failed; {serving}");
            }
        }
    }

    /// Counts a failed fetch on this request, once.
    fn report_failure(&self, events: &mut Vec<&'static str>) {
        // Read first: the swap writes, and most requests have nothing to report.
        if self.failed.load(Ordering::Relaxed) && self.failed.swap(false, Ordering::AcqRel) {
            events.push("jwt_jwks_refresh_failed");
        }
    }
}
