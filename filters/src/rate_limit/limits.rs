//! The built limits of a `rate_limit` filter, and the RateLimit header fields they answer with.

use std::collections::HashSet;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::{Quota, RateLimiter};
use http::header::RETRY_AFTER;
use http::{HeaderName, HeaderValue, StatusCode};

use super::keys::Key;
use super::store::{KeyStore, SharedStore};
use super::{LimitConfig, MAX_PERIOD};
use crate::{BuildError, Problem, Reply};

pub(super) const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
pub(super) const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// A built limit, with its counters.
pub(super) struct Limit {
    pub(super) name: String,
    pub(super) limiter: RateLimiter<Key, SharedStore, DefaultClock, StateInformationMiddleware>,
    pub(super) store: Arc<KeyStore>,
    /// Whole seconds until one more request is allowed, at most: the time one takes to come
    /// back, rounded up. `t` of the `RateLimit` field on allowed requests.
    pub(super) next_in: u64,
    /// The 429's detail, made once.
    detail: String,
    per: Duration,
}

impl Limit {
    fn compile(
        config: &LimitConfig,
        what: &str,
        max_keys: usize,
    ) -> Result<(Self, String), BuildError> {
        let bad = |why: String| {
            BuildError(format!(
                "rate_limit: {what}: limit {:?}: {why}",
                config.name
            ))
        };
        if config.requests == 0 {
            return Err(bad("requests must be more than 0 (got 0)".to_owned()));
        }
        if config.per.is_zero() {
            return Err(bad("per must be more than 0".to_owned()));
        }
        if config.per > MAX_PERIOD {
            return Err(bad("per must be at most 366 days".to_owned()));
        }
        let burst = config.burst.unwrap_or(config.requests);
        let burst = NonZeroU32::new(burst)
            .ok_or_else(|| bad("burst must be at least 1 (got 0)".to_owned()))?;
        // The time one request takes to come back.
        let interval = config.per / config.requests;
        let quota = Quota::with_period(interval)
            .ok_or_else(|| bad("more requests than nanoseconds in per".to_owned()))?
            .allow_burst(burst);
        let refill = interval
            .checked_mul(burst.get())
            .filter(|d| *d <= MAX_PERIOD)
            .ok_or_else(|| {
                bad(format!(
                    "a burst of {burst} takes more than 366 days to come back at this rate"
                ))
            })?;
        let store = Arc::new(KeyStore {
            map: DashMap::new(),
            tracked: AtomicUsize::new(0),
            max_keys,
            sweeping: AtomicBool::new(false),
        });
        let limiter = RateLimiter::new(quota, SharedStore(store.clone()), DefaultClock::default());
        let per = humantime_serde::re::humantime::format_duration(config.per);
        let policy = format!(
            "\"{}\";q={burst};w={}",
            config.name,
            ceil_secs(refill).max(1)
        );
        Ok((
            Limit {
                name: config.name.clone(),
                limiter,
                store,
                next_in: ceil_secs(interval).max(1),
                detail: format!(
                    "over the {:?} limit of {} requests per {per}",
                    config.name, config.requests
                ),
                per: config.per,
            },
            policy,
        ))
    }

    /// Counts one request: `Ok(requests left)` or `Err(whole seconds to wait, at least 1)`.
    fn check(&self, key: &Key) -> Result<u32, u64> {
        let outcome = self.limiter.check_key(key);
        if self.store.tracked.load(Ordering::Relaxed) > self.store.max_keys {
            self.sweep();
        }
        match outcome {
            Ok(state) => Ok(state.remaining_burst_capacity()),
            Err(not_until) => {
                Err(ceil_secs(not_until.wait_time_from(self.limiter.clock().now())).max(1))
            }
        }
    }

    /// Brings the key count back under `max_keys`. One caller sweeps while the others go on
    /// (each shard is locked only while it is swept).
    fn sweep(&self) {
        let store = &self.store;
        if store
            .sweeping
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        // Keys whose allowance is whole again go first: forgetting them changes nothing.
        self.limiter.retain_recent();
        store.evict_down_to(store.max_keys - store.max_keys / 4);
        self.limiter.shrink_to_fit();
        store.sweeping.store(false, Ordering::Release);
    }
}

/// The limits that apply to a key: the default ones or an override's.
pub(super) struct LimitSet {
    /// In config order.
    pub(super) limits: Vec<Limit>,
    /// The order limits are checked in: shortest `per` first, so a request refused by a short
    /// window is not counted by the long ones (it is by the limits checked before the one
    /// that refuses it).
    order: Vec<usize>,
    /// `RateLimit-Policy` for these limits.
    pub(super) policy: HeaderValue,
}

impl LimitSet {
    pub(super) fn compile(
        list: &[LimitConfig],
        what: &str,
        max_keys: usize,
    ) -> Result<Self, BuildError> {
        if list.is_empty() {
            return Err(BuildError(format!(
                "rate_limit: {what} must list at least one limit"
            )));
        }
        let mut names = HashSet::new();
        let mut limits = Vec::with_capacity(list.len());
        let mut policies = Vec::with_capacity(list.len());
        for (index, config) in list.iter().enumerate() {
            if !valid_name(&config.name) {
                return Err(BuildError(format!(
                    "rate_limit: {what}[{index}]: name {:?} must be 1 to 64 of A-Z a-z 0-9 . _ -",
                    config.name
                )));
            }
            if !names.insert(config.name.as_str()) {
                return Err(BuildError(format!(
                    "rate_limit: {what}: the name {:?} is used twice",
                    config.name
                )));
            }
            let (limit, policy) = Limit::compile(config, what, max_keys)?;
            limits.push(limit);
            policies.push(policy);
        }
        let mut order: Vec<usize> = (0..limits.len()).collect();
        order.sort_by_key(|&i| limits[i].per);
        let policy = HeaderValue::try_from(policies.join(", "))
            .map_err(|_| BuildError(format!("rate_limit: {what}: invalid policy")))?;
        Ok(LimitSet {
            limits,
            order,
            policy,
        })
    }

    /// Counts a request against every limit: `Ok((tightest limit, requests left))`, or
    /// `Err((refusing limit, seconds to wait))`.
    pub(super) fn decide(&self, key: &Key) -> Result<(usize, u32), (usize, u64)> {
        let mut tightest: Option<(usize, u32)> = None;
        for &index in &self.order {
            let left = self.limits[index]
                .check(key)
                .map_err(|wait| (index, wait))?;
            if tightest.is_none_or(|(i, l)| left < l || (left == l && index < i)) {
                tightest = Some((index, left));
            }
        }
        Ok(tightest.expect("a limit set has at least one limit"))
    }

    /// The 429 for a request `limit` refused, to retry in `wait` seconds.
    pub(super) fn refusal(&self, limit: usize, wait: u64) -> Reply {
        let limit = &self.limits[limit];
        let mut reply = Reply::problem(
            Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
            )
            .with_detail(limit.detail.clone()),
        );
        reply.headers.insert(RETRY_AFTER, HeaderValue::from(wait));
        reply.headers.insert(RATELIMIT_POLICY, self.policy.clone());
        if let Some(value) = service_limit(&limit.name, 0, wait) {
            reply.headers.insert(RATELIMIT, value);
        }
        reply
    }
}

/// A `RateLimit` field item: `"name";r=<left>;t=<seconds>`. Written by hand: it is made
/// for every allowed request, and `format!` costs several times more.
pub(super) fn service_limit(name: &str, left: u32, seconds: u64) -> Option<HeaderValue> {
    let mut item = Vec::with_capacity(name.len() + 32);
    item.push(b'"');
    item.extend_from_slice(name.as_bytes());
    item.extend_from_slice(b"\";r=");
    push_decimal(&mut item, u64::from(left));
    item.extend_from_slice(b";t=");
    push_decimal(&mut item, seconds);
    HeaderValue::from_maybe_shared(bytes::Bytes::from(item)).ok()
}

fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// A policy name that is a valid Structured Fields string without escapes, and reads well.
fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// `d` in whole seconds, rounded up.
fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}
