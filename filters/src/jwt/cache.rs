//! Tokens already verified, so a client calling many times with one token pays for its
//! signature once. Keyed by the token's SHA-256 (the token itself is never kept), bounded in
//! size, and an entry is never used at or past its token's `exp`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use sha2::{Digest, Sha256};

use super::verify::Verified;

pub(super) type CacheKey = [u8; 32];

pub(super) struct TokenCache {
    /// Sharded: lookups from many requests at once do not wait on one lock.
    entries: DashMap<CacheKey, Arc<Verified>>,
    capacity: usize,
    /// Set while one request makes room, so the others skip caching instead of sweeping too.
    sweeping: AtomicBool,
}

impl TokenCache {
    /// A cache of at most `capacity` tokens; 0 turns caching off.
    pub(super) fn new(capacity: usize) -> Self {
        TokenCache {
            entries: DashMap::new(),
            capacity,
            sweeping: AtomicBool::new(false),
        }
    }

    /// The key of `token`, or `None` when caching is off (then nothing is hashed).
    pub(super) fn key(&self, token: &str) -> Option<CacheKey> {
        (self.capacity > 0).then(|| Sha256::digest(token.as_bytes()).into())
    }

    /// The verified token, while `now` (seconds since the epoch) is before its `exp`.
    pub(super) fn get(&self, key: &CacheKey, now: i64) -> Option<Arc<Verified>> {
        let verified = self.entries.get(key).map(|entry| Arc::clone(&entry))?;
        if now < verified.accepted.exp {
            return Some(verified);
        }
        self.entries.remove(key);
        None
    }

    pub(super) fn remove(&self, key: &CacheKey) {
        self.entries.remove(key);
    }

    /// Keeps a verified token. When the cache is full, expired tokens are dropped, then the
    /// ones closest to expiry, down to three quarters of the capacity; while another request
    /// does that, this token is simply not cached.
    pub(super) fn insert(&self, key: CacheKey, verified: Arc<Verified>, now: i64) {
        if self.entries.len() >= self.capacity && !self.make_room(now) {
            return;
        }
        self.entries.insert(key, verified);
    }

    fn make_room(&self, now: i64) -> bool {
        if self.sweeping.swap(true, Ordering::Acquire) {
            return false;
        }
        self.entries.retain(|_, v| now < v.accepted.exp);
        let target = (self.capacity - self.capacity / 4).saturating_sub(1);
        let excess = self.entries.len().saturating_sub(target);
        if excess > 0 {
            let mut by_exp: Vec<(i64, CacheKey)> = self
                .entries
                .iter()
                .map(|e| (e.value().accepted.exp, *e.key()))
                .collect();
            by_exp.sort_unstable();
            for (_, key) in by_exp.into_iter().take(excess) {
                self.entries.remove(&key);
            }
        }
        self.sweeping.store(false, Ordering::Release);
        true
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
}
