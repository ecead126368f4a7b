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
//! With the local store (the default) each gateway instance counts in its own memory, so N
//! instances together allow up to N times the limits. With `store = "redis"` the counters
//! live in Redis and are shared by every instance (see [`redis_store`]): one GCRA per key and
//! limit, all of a request's limits checked at once by a Lua script, and the request counted
//! only when every limit allows it. When Redis fails, `redis.on_error` lets the request
//! through, answers 503, or counts it locally at `redis.local_share` of the limits; a breaker
//! keeps a dead Redis from costing its timeout on every request. Each request's
//! `rate_limit.store` attribute says which answered: `"redis"` or `"fallback"`.
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

mod breaker;
mod filter;
mod keys;
mod limits;
mod redis_config;
mod redis_store;
mod store;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::{BuildContext, BuildError, Filter};

use filter::RateLimitFilter;
use keys::{Key, KeySpec};
use limits::LimitSet;
pub use redis_config::{OnError, RedisConfig};
use redis_store::{RedisSettings, RedisStore};

/// Config of the `rate_limit` filter.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Where the counters live. `local` (the default) counts in this instance's memory: N
    /// gateway instances allow up to N times the limits. `redis` shares them through Redis.
    #[serde(default)]
    pub store: RateLimitStore,
    /// With `store = "redis"`: the Redis server, timeouts and failure policy; defaults
    /// throughout when unset. Not allowed with `store = "local"`.
    #[serde(default)]
    pub redis: Option<RedisConfig>,
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
    /// Which answers carry the `RateLimit-Policy` and `RateLimit` headers: `"always"` (the
    /// default: partners see their allowance before they run out) or `"refused"` (only the
    /// 429s, which saves adding two headers to every allowed answer).
    #[serde(default)]
    pub headers: AnnounceOn,
}

/// Which answers of a `rate_limit` filter carry the RateLimit headers.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AnnounceOn {
    #[default]
    Always,
    Refused,
}

/// Where a `rate_limit` filter keeps its counters.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RateLimitStore {
    /// In this gateway instance's memory; kept across reloads that leave the filter unchanged.
    #[default]
    Local,
    /// In Redis, shared by every instance using it: one limit whatever the number of
    /// instances.
    Redis,
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

/// Numbers the filter instances, so each keeps its per-request state under its own id.
static INSTANCES: AtomicU64 = AtomicU64::new(0);

impl RateLimitConfig {
    pub fn build(&self, ctx: &BuildContext) -> Result<Arc<dyn Filter>, BuildError> {
        Ok(Arc::new(self.compile(ctx)?))
    }

    fn compile(&self, ctx: &BuildContext) -> Result<RateLimitFilter, BuildError> {
        if self.store == RateLimitStore::Local && self.redis.is_some() {
            return Err(BuildError(
                "rate_limit: redis is set but store is \"local\"; set store = \"redis\"".to_owned(),
            ));
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
        let redis = match self.store {
            RateLimitStore::Local => None,
            RateLimitStore::Redis => Some(self.redis_store(ctx)?),
        };
        let id = INSTANCES.fetch_add(1, Ordering::Relaxed);
        Ok(RateLimitFilter {
            key,
            sets,
            overrides,
            redis,
            id,
            announce_allowed: self.headers == AnnounceOn::Always,
        })
    }

    /// The Redis store, with its local fallback at `local_share` of the limits.
    fn redis_store(&self, ctx: &BuildContext) -> Result<RedisStore, BuildError> {
        let config = self.redis.clone().unwrap_or_default();
        let client = config.client(ctx)?;
        // In the order of the filter's `sets`: `limits`, then the overrides.
        let lists: Vec<&[LimitConfig]> = std::iter::once(self.limits.as_slice())
            .chain(self.overrides.values().map(Vec::as_slice))
            .collect();
        let mut fallback = Vec::new();
        if config.on_error == OnError::Local {
            let what = std::iter::once("limits".to_owned())
                .chain(self.overrides.keys().map(|v| format!("overrides.{v:?}")));
            for (list, what) in lists.iter().zip(what) {
                let scaled: Vec<LimitConfig> =
                    list.iter().map(|l| scale(l, config.local_share)).collect();
                fallback.push(LimitSet::compile(&scaled, &what, self.max_keys)?);
            }
        }
        let settings = RedisSettings {
            client,
            timeout: config.timeout,
            prefix: config.key_prefix.clone(),
            key_spec: self.key.clone(),
            breaker: breaker::Breaker::new(config.breaker_failures, config.breaker_open),
            breaker_open: config.breaker_open,
            on_error: config.on_error,
            fallback,
        };
        Ok(RedisStore::new(settings, &lists))
    }
}

/// A limit at `share` of its rate and burst (at least 1 of each), for the local fallback.
fn scale(limit: &LimitConfig, share: f64) -> LimitConfig {
    let part = |n: u32| ((f64::from(n) * share).round() as u32).max(1);
    LimitConfig {
        requests: part(limit.requests),
        burst: Some(part(limit.burst.unwrap_or(limit.requests))),
        ..limit.clone()
    }
}

#[cfg(test)]
mod redis_tests;
#[cfg(test)]
mod tests;
