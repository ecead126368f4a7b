//! `rate_limit`: counts requests per key (client IP, consumer, a header or an attribute) and
//! answers 429 past the limits.
//!
//! ```toml
//! { type = "rate_limit", key = "consumer", limits = [
//!     { name = "burst", per = "1s", requests = 20, burst = 40 },
//!     { name = "daily", per = "1day", requests = 10000 },
//! ] }
//! ```
//!
//! This is the local store: each gateway instance counts in its own memory, so N instances
//! together allow up to N times the limits. (A shared store comes later, as `store = "redis"`.)
//!
//! Each limit is a GCRA (the generic cell rate algorithm: a token bucket kept as one timestamp
//! per key, no timers) from the `governor` crate: `requests` per `per` sustained, and up to
//! `burst` at once after a quiet spell. Answers carry the `RateLimit-Policy` and `RateLimit`
//! fields of the IETF draft "RateLimit header fields for HTTP",
//! [draft-ietf-httpapi-ratelimit-headers-10](https://datatracker.ietf.org/doc/draft-ietf-httpapi-ratelimit-headers/10/):
//!
//! - `RateLimit-Policy: "burst";q=40;w=2` per limit: `q` is the burst (the most a client can
//!   send at once, so the remaining count never exceeds it) and `w` the seconds in which a
//!   spent burst is given back (`burst × per / requests`, rounded up). With the default
//!   `burst = requests`, that is `q = requests` and `w = per`.
//! - `RateLimit: "burst";r=0;t=3`: `r` requests left, and `t` the seconds until at least one
//!   more is allowed (on a 429, the same value as `Retry-After`).
//!
//! A 429 carries `Retry-After` (whole seconds, at least 1), the policies of the key and the
//! `RateLimit` item of the limit that refused. An allowed request's response carries the
//! policies and the `RateLimit` item of its tightest limit (the fewest requests left).
//!
//! Memory is bounded by `max_keys` per limit. Past it, keys whose allowance is whole again are
//! dropped (they are indistinguishable from new keys), then, if that is not enough, the keys
//! closest to a whole allowance, down to three quarters of `max_keys`. A flood of new keys thus
//! evicts other fresh keys before it evicts a caller that has spent its allowance.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::num::{NonZeroU32, NonZeroU64};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::ShrinkableKeyedStateStore;
use governor::state::StateStore;
use governor::{Quota, RateLimiter};
use http::header::RETRY_AFTER;
use http::{HeaderName, HeaderValue, StatusCode};
use serde::Deserialize;

use crate::{
    BuildContext, BuildError, Filter, Flow, Problem, Reply, RequestContext, RequestHead,
    ResponseHead,
};

/// Config of the `rate_limit` filter.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Where the counters live. `local` (the default, and for now the only store) counts in
    /// this instance's memory: N gateway instances allow up to N times the limits.
    #[serde(default)]
    pub store: RateLimitStore,
    /// What requests are counted by: `"client_ip"` (the default), `"consumer"` (the id set by
    /// an authentication filter before this one), `"header:NAME"` or `"attribute:NAME"` (a
    /// request attribute set by an earlier filter). When a request has no such value (no
    /// consumer: the request is unauthenticated; the header absent, repeated, not visible
    /// ASCII or over 256 bytes; the attribute unset), it is counted by its client IP instead,
    /// apart from the keyed values and with the default `limits`, never an override. A header
    /// key is only as good as the header: a client that sets it can pick a fresh value for
    /// every call, so key on headers that something trusted sets.
    #[serde(default = "default_key")]
    pub key: String,
    /// The limits every request must pass, all of them; at least one.
    pub limits: Vec<LimitConfig>,
    /// Limits for particular key values, e.g. a partner's plan: `{ "partner-a" = [...] }`. They
    /// replace `limits` for that value. With `key = "client_ip"` the values are IP addresses.
    #[serde(default)]
    pub overrides: BTreeMap<String, Vec<LimitConfig>>,
    /// Most keys each limit tracks, a bound on memory (roughly 100 bytes a key and limit, plus
    /// the key's value). Past it, idle keys are dropped first, then those closest to a whole
    /// allowance; a dropped key starts afresh.
    #[serde(default = "default_max_keys")]
    pub max_keys: usize,
}

/// Where a `rate_limit` filter keeps its counters.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RateLimitStore {
    /// In this gateway instance's memory; kept across reloads that leave the filter unchanged.
    #[default]
    Local,
}

/// One limit: `requests` per `per`, with bursts of up to `burst`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LimitConfig {
    /// The policy's name in the RateLimit headers and in the 429's detail: 1 to 64 of
    /// `A-Z a-z 0-9 . _ -`, unique within its list.
    pub name: String,
    /// The period `requests` are spread over, as a duration (`"1s"`, `"1m"`, `"1day"`); more
    /// than zero and at most 366 days.
    #[serde(with = "humantime_serde")]
    pub per: Duration,
    /// Requests allowed per `per`, sustained; more than zero.
    pub requests: u32,
    /// Requests allowed at once after a quiet spell; at least 1, `requests` when unset. Less
    /// than `requests` smooths the traffic out; more lets a quiet client catch up.
    #[serde(default)]
    pub burst: Option<u32>,
}

fn default_key() -> String {
    "client_ip".to_owned()
}

fn default_max_keys() -> usize {
    100_000
}

/// The longest key value counted as is; a longer one counts as missing.
const MAX_KEY_BYTES: usize = 256;
/// The longest `per`, and the longest time a spent burst may take to come back.
const MAX_PERIOD: Duration = Duration::from_secs(366 * 24 * 3600);

const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// Numbers the filter instances, so each keeps its per-request state under its own attribute.
static INSTANCES: AtomicU64 = AtomicU64::new(0);

impl RateLimitConfig {
    pub fn build(&self, _ctx: &BuildContext) -> Result<Arc<dyn Filter>, BuildError> {
        Ok(Arc::new(self.compile()?))
    }

    fn compile(&self) -> Result<RateLimitFilter, BuildError> {
        match self.store {
            RateLimitStore::Local => {}
        }
        let key = KeySpec::parse(&self.key)?;
        if self.max_keys == 0 {
            return Err(BuildError(
                "rate_limit: max_keys must be more than 0 (got 0)".to_owned(),
            ));
        }
        let mut sets = vec![LimitSet::compile(&self.limits, "limits", self.max_keys)?];
        let mut overrides = HashMap::new();
        for (value, limits) in &self.overrides {
            let what = format!("overrides.{value:?}");
            if value.is_empty() || value.len() > MAX_KEY_BYTES {
                return Err(BuildError(format!(
                    "rate_limit: {what}: a key value is 1 to {MAX_KEY_BYTES} bytes"
                )));
            }
            let key_value = match key {
                KeySpec::ClientIp => Key::Ip(
                    value
                        .parse::<IpAddr>()
                        .map_err(|_| {
                            BuildError(format!(
                                "rate_limit: {what}: with key = \"client_ip\", overrides are \
                                 keyed by IP address"
                            ))
                        })?
                        .to_canonical(),
                ),
                _ => Key::Value(value.as_str().into()),
            };
            if overrides.contains_key(&key_value) {
                return Err(BuildError(format!(
                    "rate_limit: {what}: the same address is listed twice"
                )));
            }
            overrides.insert(key_value, sets.len());
            sets.push(LimitSet::compile(limits, &what, self.max_keys)?);
        }
        let id = INSTANCES.fetch_add(1, Ordering::Relaxed);
        Ok(RateLimitFilter {
            key,
            sets,
            overrides,
            attribute: format!("rate_limit.{id}"),
        })
    }
}

/// What the config's `key` names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum KeySpec {
    ClientIp,
    Consumer,
    Header(HeaderName),
    Attribute(String),
}

impl KeySpec {
    fn parse(spec: &str) -> Result<Self, BuildError> {
        if spec == "client_ip" {
            return Ok(KeySpec::ClientIp);
        }
        if spec == "consumer" {
            return Ok(KeySpec::Consumer);
        }
        if let Some(name) = spec.strip_prefix("header:") {
            return HeaderName::from_bytes(name.as_bytes())
                .map(KeySpec::Header)
                .map_err(|_| {
                    BuildError(format!(
                        "rate_limit: key {spec:?}: invalid header name {name:?}"
                    ))
                });
        }
        if let Some(name) = spec.strip_prefix("attribute:") {
            if name.is_empty() {
                return Err(BuildError(format!(
                    "rate_limit: key {spec:?}: the attribute name is empty"
                )));
            }
            return Ok(KeySpec::Attribute(name.to_owned()));
        }
        Err(BuildError(format!(
            "rate_limit: key must be \"client_ip\", \"consumer\", \"header:NAME\" or \
             \"attribute:NAME\", not {spec:?}"
        )))
    }
}

/// What a request is counted by. The variants are separate key spaces: a consumer called
/// "10.0.0.1" never shares an allowance with the client at 10.0.0.1.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// The configured key's value: a consumer id, a header's or an attribute's value.
    Value(Box<str>),
    /// The client IP: the configured key, or the stand-in for a missing value.
    Ip(IpAddr),
    /// Neither a value nor a client IP (the gateway always knows the IP): one shared key.
    Unknown,
}

/// A built limit, with its counters.
struct Limit {
    name: String,
    limiter: RateLimiter<Key, SharedStore, DefaultClock, StateInformationMiddleware>,
    store: Arc<KeyStore>,
    /// Whole seconds until one more request is allowed, at most: the time one takes to come
    /// back, rounded up. `t` of the `RateLimit` field on allowed requests.
    next_in: u64,
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
struct LimitSet {
    /// In config order.
    limits: Vec<Limit>,
    /// The order limits are checked in: shortest `per` first, so a request refused by a short
    /// window is not counted by the long ones (it is by the limits checked before the one
    /// that refuses it).
    order: Vec<usize>,
    /// `RateLimit-Policy` for these limits.
    policy: HeaderValue,
}

impl LimitSet {
    fn compile(list: &[LimitConfig], what: &str, max_keys: usize) -> Result<Self, BuildError> {
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
    fn decide(&self, key: &Key) -> Result<(usize, u32), (usize, u64)> {
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
    fn refusal(&self, limit: usize, wait: u64) -> Reply {
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

/// A `RateLimit` field item: `"name";r=<left>;t=<seconds>`.
fn service_limit(name: &str, left: u32, seconds: u64) -> Option<HeaderValue> {
    HeaderValue::try_from(format!("\"{name}\";r={left};t={seconds}")).ok()
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

/// One limit's GCRA state per key: the "theoretical arrival time" in nanoseconds since the
/// limiter started, 0 for a key never counted. A key is a shard lookup and a compare-and-swap;
/// only a key's first request takes its shard's write lock.
struct KeyStore {
    map: DashMap<Key, AtomicU64>,
    /// Keys in `map`, counted as they are added and removed, so that checking the bound
    /// locks no shard.
    tracked: AtomicUsize,
    max_keys: usize,
    /// Set while some caller sweeps.
    sweeping: AtomicBool,
}

impl KeyStore {
    /// Drops the keys with the earliest arrival times (the closest to a whole allowance)
    /// until at most `target` remain.
    fn evict_down_to(&self, target: usize) {
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
struct SharedStore(Arc<KeyStore>);

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

struct RateLimitFilter {
    key: KeySpec,
    /// `limits` at index 0, then one set per override.
    sets: Vec<LimitSet>,
    /// Overridden key → its index in `sets`.
    overrides: HashMap<Key, usize>,
    /// The [`RequestContext::attributes`] entry where `on_request` leaves an allowed request's
    /// `"<set> <limit> <left>"` for `on_response`; unique to this instance.
    attribute: String,
}

impl RateLimitFilter {
    /// The configured key's value when the request has a usable one.
    fn value<'a>(&self, req: &'a dyn RequestHead, ctx: &'a RequestContext) -> Option<&'a str> {
        let value = match &self.key {
            KeySpec::ClientIp => None,
            KeySpec::Consumer => ctx.consumer.as_ref().map(|c| c.id.as_str()),
            KeySpec::Header(name) => {
                let mut all = req.headers().get_all(name).iter();
                match (all.next(), all.next()) {
                    (Some(value), None) => value.to_str().ok(),
                    _ => None,
                }
            }
            KeySpec::Attribute(name) => ctx.attributes.get(name).map(String::as_str),
        };
        value.filter(|v| (1..=MAX_KEY_BYTES).contains(&v.len()))
    }

    fn key(&self, req: &dyn RequestHead, ctx: &RequestContext) -> Key {
        match self.value(req, ctx) {
            Some(value) => Key::Value(value.into()),
            None => ctx
                .client_ip
                .map_or(Key::Unknown, |ip| Key::Ip(ip.to_canonical())),
        }
    }

    /// The limit set for `key`.
    fn set_for(&self, key: &Key) -> usize {
        self.overrides.get(key).copied().unwrap_or(0)
    }

    /// Keys tracked by the fullest limit.
    #[cfg(test)]
    fn tracked_keys(&self) -> usize {
        self.sets
            .iter()
            .flat_map(|s| &s.limits)
            .map(|l| l.store.map.len())
            .max()
            .unwrap_or(0)
    }
}

#[async_trait]
impl Filter for RateLimitFilter {
    fn name(&self) -> &'static str {
        "rate_limit"
    }

    async fn on_request(&self, req: &mut dyn RequestHead, ctx: &mut RequestContext) -> Flow {
        let key = self.key(req, ctx);
        let set = self.set_for(&key);
        match self.sets[set].decide(&key) {
            Ok((limit, left)) => {
                ctx.attributes
                    .insert(self.attribute.clone(), format!("{set} {limit} {left}"));
                Flow::Continue
            }
            Err((limit, wait)) => Flow::Respond(self.sets[set].refusal(limit, wait)),
        }
    }

    async fn on_response(
        &self,
        _req: &dyn RequestHead,
        resp: &mut dyn ResponseHead,
        ctx: &mut RequestContext,
    ) -> Flow {
        let Some(state) = ctx.attributes.remove(&self.attribute) else {
            return Flow::Continue;
        };
        let mut numbers = state.split(' ').map(|n| n.parse::<usize>().ok());
        let (Some(Some(set)), Some(Some(limit)), Some(Some(left))) =
            (numbers.next(), numbers.next(), numbers.next())
        else {
            return Flow::Continue;
        };
        let Some(set) = self.sets.get(set) else {
            return Flow::Continue;
        };
        let Some(limit) = set.limits.get(limit) else {
            return Flow::Continue;
        };
        // Appended: another rate_limit filter of the chain adds its own items (a Structured
        // Fields list may be split over several fields).
        resp.append_header(RATELIMIT_POLICY, set.policy.clone());
        let left = u32::try_from(left).unwrap_or(u32::MAX);
        if let Some(value) = service_limit(&limit.name, left, limit.next_in) {
            resp.append_header(RATELIMIT, value);
        }
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Consumer, FilterConfig};
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::time::Instant;

    fn compile(src: &str) -> Result<RateLimitFilter, String> {
        let config: RateLimitConfig = toml::from_str(src).map_err(|e| e.to_string())?;
        config.compile().map_err(|e| e.0)
    }

    fn filter(src: &str) -> RateLimitFilter {
        compile(src).unwrap()
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    fn ctx(client: IpAddr) -> RequestContext {
        RequestContext::new("r-1".into(), "route".into(), Some(client))
    }

    fn request(headers: &[(&str, &str)]) -> http::request::Parts {
        let mut b = http::Request::builder();
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    /// What the client gets for one request: the allowed response's headers, or the 429.
    enum Answer {
        Allowed(http::HeaderMap),
        Refused(Reply),
    }

    impl Answer {
        fn allowed(self) -> http::HeaderMap {
            match self {
                Answer::Allowed(h) => h,
                Answer::Refused(r) => panic!("refused: {:?}", r.headers),
            }
        }

        fn refused(self) -> Reply {
            match self {
                Answer::Refused(r) => r,
                Answer::Allowed(h) => panic!("allowed: {h:?}"),
            }
        }

        fn is_allowed(&self) -> bool {
            matches!(self, Answer::Allowed(_))
        }
    }

    async fn call_with(
        f: &RateLimitFilter,
        headers: &[(&str, &str)],
        mut c: RequestContext,
    ) -> Answer {
        let mut req = request(headers);
        match f.on_request(&mut req, &mut c).await {
            Flow::Continue => {
                let (mut resp, _) = http::Response::new(()).into_parts();
                f.on_response(&req, &mut resp, &mut c).await;
                assert!(!c.attributes.contains_key(&f.attribute));
                Answer::Allowed(resp.headers)
            }
            Flow::Respond(reply) => Answer::Refused(reply),
        }
    }

    async fn call(f: &RateLimitFilter, client: IpAddr, headers: &[(&str, &str)]) -> Answer {
        call_with(f, headers, ctx(client)).await
    }

    fn text<'a>(h: &'a http::HeaderMap, name: &str) -> &'a str {
        h.get(name)
            .unwrap_or_else(|| panic!("no {name} in {h:?}"))
            .to_str()
            .unwrap()
    }

    #[tokio::test]
    async fn exact_allowance_then_429_with_headers() {
        let f = filter(r#"limits = [{ name = "minute", per = "1m", requests = 5 }]"#);
        for left in (0..5).rev() {
            let h = call(&f, ip(1), &[]).await.allowed();
            assert_eq!(text(&h, "ratelimit"), format!("\"minute\";r={left};t=12"));
            assert_eq!(text(&h, "ratelimit-policy"), "\"minute\";q=5;w=60");
        }
        let reply = call(&f, ip(1), &[]).await.refused();
        assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
        let problem = reply.problem.as_ref().unwrap();
        assert_eq!(problem.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(problem.kind, "rate-limited");
        assert_eq!(problem.title, "Too many requests");
        assert_eq!(
            problem.detail.as_deref(),
            Some("over the \"minute\" limit of 5 requests per 1m")
        );
        let retry: u64 = text(&reply.headers, "retry-after").parse().unwrap();
        assert!((11..=12).contains(&retry), "{retry}");
        assert_eq!(
            text(&reply.headers, "ratelimit"),
            format!("\"minute\";r=0;t={retry}")
        );
        assert_eq!(
            text(&reply.headers, "ratelimit-policy"),
            "\"minute\";q=5;w=60"
        );
        // Refused requests do not push the wait further.
        let again = call(&f, ip(1), &[]).await.refused();
        assert!(text(&again.headers, "retry-after").parse::<u64>().unwrap() <= retry);
    }

    #[tokio::test]
    async fn burst_allows_more_at_once_and_shows_in_the_policy() {
        let f = filter(r#"limits = [{ name = "burst", per = "1m", requests = 20, burst = 40 }]"#);
        for _ in 0..40 {
            let h = call(&f, ip(1), &[]).await.allowed();
            assert_eq!(text(&h, "ratelimit-policy"), "\"burst\";q=40;w=120");
        }
        call(&f, ip(1), &[]).await.refused();

        // Smoothing: 10 a second sustained, but never more than 2 at once.
        let f = filter(r#"limits = [{ name = "smooth", per = "1m", requests = 600, burst = 2 }]"#);
        let h = call(&f, ip(1), &[]).await.allowed();
        assert_eq!(text(&h, "ratelimit-policy"), "\"smooth\";q=2;w=1");
        assert_eq!(text(&h, "ratelimit"), "\"smooth\";r=1;t=1");
    }

    #[tokio::test]
    async fn allowance_comes_back_over_time() {
        let f = filter(r#"limits = [{ name = "fast", per = "200ms", requests = 2 }]"#);
        let start = Instant::now();
        let mut allowed = 0;
        let reply = loop {
            match call(&f, ip(1), &[]).await {
                Answer::Allowed(_) => allowed += 1,
                Answer::Refused(reply) => break reply,
            }
        };
        // One request comes back every 100 ms: a slow machine may see a third.
        assert!(
            allowed >= 2 && allowed <= 2 + start.elapsed().as_millis() / 100,
            "{allowed}"
        );
        // Less than a second to wait is still announced as 1.
        assert_eq!(text(&reply.headers, "retry-after"), "1");
        let refused_at = Instant::now();
        loop {
            if call(&f, ip(1), &[]).await.is_allowed() {
                break;
            }
            assert!(
                refused_at.elapsed() < Duration::from_secs(5),
                "never allowed again"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn keys_have_their_own_allowance() {
        let f = filter(r#"limits = [{ name = "minute", per = "1m", requests = 2 }]"#);
        for _ in 0..2 {
            call(&f, ip(1), &[]).await.allowed();
        }
        call(&f, ip(1), &[]).await.refused();
        for _ in 0..2 {
            call(&f, ip(2), &[]).await.allowed();
        }
        call(&f, ip(2), &[]).await.refused();
        // An IPv4-mapped IPv6 address is the same client.
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped());
        call(&f, mapped, &[]).await.refused();
    }

    #[tokio::test]
    async fn header_key_with_overrides_and_client_ip_fallback() {
        let f = filter(
            r#"key = "header:X-Partner"
limits = [{ name = "minute", per = "1m", requests = 1 }]
overrides = { gold = [{ name = "gold", per = "1m", requests = 3 }] }"#,
        );
        for left in (0..3).rev() {
            let h = call(&f, ip(1), &[("x-partner", "gold")]).await.allowed();
            assert_eq!(text(&h, "ratelimit"), format!("\"gold\";r={left};t=20"));
            assert_eq!(text(&h, "ratelimit-policy"), "\"gold\";q=3;w=60");
        }
        let reply = call(&f, ip(1), &[("x-partner", "gold")]).await.refused();
        assert_eq!(
            text(&reply.headers, "ratelimit-policy"),
            "\"gold\";q=3;w=60"
        );

        // Another partner, from the same address, has the default limits of its own.
        call(&f, ip(1), &[("x-partner", "silver")]).await.allowed();
        call(&f, ip(1), &[("x-partner", "silver")]).await.refused();

        // No header (or an ambiguous one): counted by client IP, apart from the header values.
        call(&f, ip(1), &[]).await.allowed();
        call(&f, ip(1), &[]).await.refused();
        call(&f, ip(1), &[("x-partner", "a"), ("x-partner", "b")])
            .await
            .refused();
        let long = "x".repeat(MAX_KEY_BYTES + 1);
        call(&f, ip(1), &[("x-partner", &long)]).await.refused();
        call(&f, ip(2), &[]).await.allowed();
        // A header value that reads like an IP is not that IP.
        call(&f, ip(3), &[]).await.allowed();
        call(&f, ip(3), &[("x-partner", "10.0.0.3")])
            .await
            .allowed();
    }

    #[tokio::test]
    async fn consumer_key_counts_unauthenticated_calls_by_client_ip() {
        let f = filter(
            r#"key = "consumer"
limits = [{ name = "minute", per = "1m", requests = 1 }]
overrides = { "10.0.0.9" = [{ name = "big", per = "1m", requests = 100 }] }"#,
        );
        let as_consumer = |id: &str, client: IpAddr| {
            let mut c = ctx(client);
            c.consumer = Some(Consumer {
                id: id.into(),
                metadata: Default::default(),
            });
            c
        };
        call_with(&f, &[], as_consumer("p-1", ip(1)))
            .await
            .allowed();
        // The same consumer from elsewhere shares its allowance.
        call_with(&f, &[], as_consumer("p-1", ip(2)))
            .await
            .refused();
        // Unauthenticated calls from the consumer's address are counted apart.
        call(&f, ip(1), &[]).await.allowed();
        call(&f, ip(1), &[]).await.refused();
        // The override names a consumer id: an unauthenticated client at that address has the
        // default limits.
        call(&f, ip(9), &[]).await.allowed();
        call(&f, ip(9), &[]).await.refused();
        for _ in 0..5 {
            call_with(&f, &[], as_consumer("10.0.0.9", ip(9)))
                .await
                .allowed();
        }
    }

    #[tokio::test]
    async fn attribute_key_and_client_ip_overrides() {
        let f = filter(
            r#"key = "attribute:tenant"
limits = [{ name = "minute", per = "1m", requests = 1 }]"#,
        );
        let mut c = ctx(ip(1));
        c.attributes.insert("tenant".into(), "t-1".into());
        call_with(&f, &[], c.clone()).await.allowed();
        call_with(&f, &[], c).await.refused();
        call(&f, ip(1), &[]).await.allowed();

        let f = filter(
            r#"limits = [{ name = "minute", per = "1m", requests = 1 }]
overrides = { "::ffff:10.0.0.7" = [{ name = "office", per = "1m", requests = 2 }] }"#,
        );
        for _ in 0..2 {
            call(&f, ip(7), &[]).await.allowed();
        }
        call(&f, ip(7), &[]).await.refused();
        call(&f, ip(8), &[]).await.allowed();
        call(&f, ip(8), &[]).await.refused();

        // Without a client IP, every such request shares one key.
        let none = || RequestContext::new("r".into(), "route".into(), None);
        call_with(&f, &[], none()).await.allowed();
        call_with(&f, &[], none()).await.refused();
    }

    #[tokio::test]
    async fn every_limit_must_pass_and_the_tightest_is_shown() {
        let f = filter(
            r#"limits = [
  { name = "second", per = "1s", requests = 10 },
  { name = "minute", per = "1m", requests = 3 },
]"#,
        );
        for left in (0..3).rev() {
            let h = call(&f, ip(1), &[]).await.allowed();
            assert_eq!(text(&h, "ratelimit"), format!("\"minute\";r={left};t=20"));
            assert_eq!(
                text(&h, "ratelimit-policy"),
                "\"second\";q=10;w=1, \"minute\";q=3;w=60"
            );
        }
        let reply = call(&f, ip(1), &[]).await.refused();
        let retry: u64 = text(&reply.headers, "retry-after").parse().unwrap();
        assert!((19..=20).contains(&retry), "{retry}");
        assert_eq!(
            text(&reply.headers, "ratelimit"),
            format!("\"minute\";r=0;t={retry}")
        );

        // The short window refuses first; the longer one is then not charged.
        let f = filter(
            r#"limits = [
  { name = "hour", per = "1h", requests = 4 },
  { name = "second", per = "10s", requests = 2 },
]"#,
        );
        for _ in 0..2 {
            call(&f, ip(1), &[]).await.allowed();
        }
        for _ in 0..5 {
            let reply = call(&f, ip(1), &[]).await.refused();
            assert!(text(&reply.headers, "ratelimit").starts_with("\"second\";r=0;"));
        }
        let key = Key::Ip(ip(1));
        let hour = f.sets[0].limits[0].limiter.check_key(&key).unwrap();
        assert_eq!(
            hour.remaining_burst_capacity(),
            1,
            "refused calls were charged"
        );
    }

    #[test]
    fn tracked_keys_stay_bounded_under_a_flood_of_new_keys() {
        let f = filter(
            r#"max_keys = 10000
limits = [{ name = "minute", per = "1m", requests = 5 }]"#,
        );
        let set = &f.sets[0];
        // A caller that spent its allowance before the flood.
        let heavy = Key::Ip(ip(1));
        for _ in 0..5 {
            set.decide(&heavy).unwrap();
        }
        set.decide(&heavy).unwrap_err();

        let mut peak = 0;
        for i in 1..=1_000_000u128 {
            let key = Key::Ip(IpAddr::V6(Ipv6Addr::from(i)));
            set.decide(&key).unwrap();
            if i % 1000 == 0 {
                peak = peak.max(f.tracked_keys());
            }
        }
        assert!(peak <= 10_001, "{peak} keys tracked");
        assert!(f.tracked_keys() >= 7_500, "{}", f.tracked_keys());
        // The flood evicted fresh keys, not the one that had spent its allowance.
        set.decide(&heavy).unwrap_err();
    }

    #[test]
    fn concurrent_callers_keep_the_bound() {
        let f = Arc::new(filter(
            r#"max_keys = 1000
limits = [{ name = "minute", per = "1m", requests = 5 }]"#,
        ));
        let threads: Vec<_> = (0..4u128)
            .map(|t| {
                let f = f.clone();
                std::thread::spawn(move || {
                    let mut peak = 0;
                    for i in 0..50_000u128 {
                        let key = Key::Ip(IpAddr::V6(Ipv6Addr::from((t << 64) | i)));
                        f.sets[0].decide(&key).unwrap();
                        if i % 100 == 0 {
                            peak = peak.max(f.tracked_keys());
                        }
                    }
                    peak
                })
            })
            .collect();
        for t in threads {
            // Callers insert while one sweeps, so the peak depends on the scheduler; a quarter
            // of the keys would mean the sweeps fell far behind.
            let peak = t.join().unwrap();
            assert!(peak <= 50_000, "{peak} keys tracked");
        }
        // The count the bound is checked against is exact once the callers are done, and the
        // next call brings the keys back under the bound.
        let store = &f.sets[0].limits[0].store;
        assert_eq!(store.tracked.load(Ordering::Relaxed), store.map.len());
        f.sets[0].decide(&Key::Unknown).unwrap();
        assert!(f.tracked_keys() <= 1_001, "{}", f.tracked_keys());
    }

    #[test]
    fn config_parses_with_defaults() {
        let config: FilterConfig = toml::from_str(
            r#"type = "rate_limit"
limits = [{ name = "burst", per = "1s", requests = 20, burst = 40 }, { name = "daily", per = "1day", requests = 10000 }]"#,
        )
        .unwrap();
        assert_eq!(config.type_name(), "rate_limit");
        let FilterConfig::rate_limit(c) = &config else {
            panic!("{config:?}")
        };
        assert_eq!(c.store, RateLimitStore::Local);
        assert_eq!(c.key, "client_ip");
        assert_eq!(c.max_keys, 100_000);
        assert_eq!(c.limits[1].per, Duration::from_secs(86_400));
        assert_eq!(c.limits[1].burst, None);
        let f = config.build(&BuildContext::default()).unwrap();
        assert_eq!(f.name(), "rate_limit");
        // The same config is equal, so a reload keeps the instance and its counters.
        assert_eq!(config, config.clone());

        let f = filter(r#"limits = [{ name = "daily", per = "1day", requests = 10000 }]"#);
        assert_eq!(
            f.sets[0].policy.to_str().unwrap(),
            "\"daily\";q=10000;w=86400"
        );
        assert_eq!(f.sets[0].limits[0].next_in, 9);

        for bad in [
            "type = \"rate_limit\"\nlimits = []\nlimit = 1",
            "type = \"rate_limit\"\nstore = \"redis\"\nlimits = []",
            "type = \"rate_limit\"\nlimits = [{ name = \"a\", per = \"1s\", requests = 1, window = 1 }]",
            "type = \"rate_limit\"\nlimits = [{ name = \"a\", per = \"soon\", requests = 1 }]",
            "type = \"rate_limit\"\nlimits = [{ name = \"a\", per = \"1s\", requests = -1 }]",
            "type = \"rate_limit\"",
        ] {
            assert!(toml::from_str::<FilterConfig>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn invalid_configs_are_build_errors() {
        let one = r#"limits = [{ name = "a", per = "1s", requests = 1 }]"#;
        for (src, expected) in [
            ("limits = []".to_owned(), "limits must list at least one limit"),
            (
                r#"limits = [{ name = "a", per = "1s", requests = 0 }]"#.to_owned(),
                "requests must be more than 0",
            ),
            (
                r#"limits = [{ name = "a", per = "0s", requests = 1 }]"#.to_owned(),
                "per must be more than 0",
            ),
            (
                r#"limits = [{ name = "a", per = "400days", requests = 1 }]"#.to_owned(),
                "at most 366 days",
            ),
            (
                r#"limits = [{ name = "a", per = "1s", requests = 1, burst = 0 }]"#.to_owned(),
                "burst must be at least 1",
            ),
            (
                r#"limits = [{ name = "a", per = "1day", requests = 1, burst = 1000 }]"#
                    .to_owned(),
                "more than 366 days",
            ),
            (
                r#"limits = [{ name = "a", per = "1ns", requests = 2 }]"#.to_owned(),
                "nanoseconds",
            ),
            (
                r#"limits = [{ name = "a", per = "1s", requests = 1 }, { name = "a", per = "1m", requests = 5 }]"#
                    .to_owned(),
                "the name \"a\" is used twice",
            ),
            (
                r#"limits = [{ name = "has space", per = "1s", requests = 1 }]"#.to_owned(),
                "must be 1 to 64 of",
            ),
            (
                r#"limits = [{ name = "", per = "1s", requests = 1 }]"#.to_owned(),
                "must be 1 to 64 of",
            ),
            (format!("key = \"ip\"\n{one}"), "key must be"),
            (format!("key = \"header:bad name\"\n{one}"), "invalid header name"),
            (format!("key = \"header:\"\n{one}"), "invalid header name"),
            (format!("key = \"attribute:\"\n{one}"), "attribute name is empty"),
            (format!("max_keys = 0\n{one}"), "max_keys must be more than 0"),
            (
                format!("key = \"consumer\"\n{one}\noverrides = {{ p = [] }}"),
                "overrides.\"p\" must list at least one limit",
            ),
            (
                format!("key = \"consumer\"\n{one}\noverrides = {{ p = [{{ name = \"a\", per = \"1s\", requests = 0 }}] }}"),
                "overrides.\"p\": limit \"a\": requests must be more than 0",
            ),
            (
                format!("{one}\noverrides = {{ \"partner\" = [{{ name = \"a\", per = \"1s\", requests = 1 }}] }}"),
                "keyed by IP address",
            ),
            (
                format!("{one}\noverrides = {{ \"10.0.0.1\" = [{{ name = \"a\", per = \"1s\", requests = 1 }}], \"::ffff:10.0.0.1\" = [{{ name = \"a\", per = \"1s\", requests = 1 }}] }}"),
                "listed twice",
            ),
            (
                format!("key = \"consumer\"\n{one}\noverrides = {{ \"\" = [{{ name = \"a\", per = \"1s\", requests = 1 }}] }}"),
                "a key value is 1 to 256 bytes",
            ),
        ] {
            let err = compile(&src).err().unwrap_or_else(|| panic!("accepted: {src}"));
            assert!(err.starts_with("rate_limit: "), "{err}");
            assert!(err.contains(expected), "{src}: {err}");
        }
        assert!(compile(&format!("key = \"header:X-Partner\"\n{one}")).is_ok());
    }
}
