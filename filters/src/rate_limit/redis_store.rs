//! The Redis store of a `rate_limit` filter: one GCRA per key and limit, shared by every
//! gateway instance that uses the same Redis, checked in one round trip by a Lua script.

use std::time::Duration;

use http::header::RETRY_AFTER;
use http::{HeaderValue, StatusCode};
use redis::Script;
use sha2::{Digest, Sha256};

use super::breaker::Breaker;
use super::keys::Key;
use super::limits::LimitSet;
use super::redis_config::OnError;
use super::LimitConfig;
use crate::redis_client::LazyConnection;
use crate::{Problem, Reply};

/// Checks all of a request's limits at once, on the Redis server's clock, and counts the
/// request only when every limit allows it. KEYS: one per limit. ARGV: per limit, the
/// interval one request takes to come back (µs), the burst tolerance (interval × burst, µs)
/// and the key's TTL (ms). Returns `{1, tightest limit, requests left}` or
/// `{0, refusing limit, µs to wait}` (limits numbered from 1; the refusing one is the one
/// with the longest wait, so that Retry-After holds for all of them).
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tats = {}
local best, left = 0, -1
local refused, wait = 0, -1
for i = 1, #KEYS do
  local interval = tonumber(ARGV[3 * i - 2])
  local tolerance = tonumber(ARGV[3 * i - 1])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0') or 0
  if tat < now then tat = now end
  local next_tat = tat + interval
  if next_tat - now > tolerance then
    local w = next_tat - tolerance - now
    if w > wait then refused, wait = i, w end
  else
    tats[i] = next_tat
    local l = math.floor((now + tolerance - next_tat) / interval)
    if left < 0 or l < left then best, left = i, l end
  end
end
if refused > 0 then return {0, refused, wait} end
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], string.format('%.0f', tats[i]), 'PX', ARGV[3 * i])
end
return {1, best, left}
";

/// One limit's numbers for the script.
struct RedisLimit {
    /// The part of the Redis key after the prefix: the limit's name.
    name: String,
    interval_us: u64,
    tolerance_us: u64,
    ttl_ms: u64,
}

impl RedisLimit {
    fn new(config: &LimitConfig) -> Self {
        let per_us = config.per.as_micros();
        let interval = (per_us / u128::from(config.requests)).max(1);
        let burst = u128::from(config.burst.unwrap_or(config.requests));
        let tolerance = interval * burst;
        RedisLimit {
            name: config.name.clone(),
            interval_us: u64::try_from(interval).unwrap_or(u64::MAX),
            tolerance_us: u64::try_from(tolerance).unwrap_or(u64::MAX),
            // The period plus the time a spent burst takes to come back, rounded up.
            ttl_ms: u64::try_from((per_us + tolerance).div_ceil(1000)).unwrap_or(u64::MAX),
        }
    }
}

/// Redis did not answer in time, or answered with an error, or the breaker is open.
#[derive(Debug)]
pub(super) struct Unavailable;

/// A limit set's decision: `Ok((tightest limit, requests left))` or
/// `Err((refusing limit, seconds to wait))`.
pub(super) type Decision = Result<(usize, u32), (usize, u64)>;

pub(super) struct RedisStore {
    connection: LazyConnection,
    script: Script,
    timeout: Duration,
    prefix: String,
    /// The config's `key`, hashed with the value: filters keyed differently never share.
    key_spec: String,
    /// Per limit set (as in the filter's `sets`), its limits in config order.
    sets: Vec<Vec<RedisLimit>>,
    pub(super) breaker: Breaker,
    pub(super) on_error: OnError,
    /// With `on_error = "local"`: the sets at `local_share` of their rates, in this
    /// instance's memory.
    pub(super) fallback: Vec<LimitSet>,
    /// `Retry-After` of the `fail_closed` 503, in seconds.
    retry_after: u64,
}

pub(super) struct RedisSettings {
    pub(super) client: redis::Client,
    pub(super) timeout: Duration,
    pub(super) prefix: String,
    pub(super) key_spec: String,
    pub(super) breaker: Breaker,
    pub(super) breaker_open: Duration,
    pub(super) on_error: OnError,
    pub(super) fallback: Vec<LimitSet>,
}

impl RedisStore {
    pub(super) fn new(settings: RedisSettings, sets: &[&[LimitConfig]]) -> Self {
        let open = settings.breaker_open;
        RedisStore {
            connection: LazyConnection::new(settings.client, settings.timeout),
            script: Script::new(GCRA),
            timeout: settings.timeout,
            prefix: settings.prefix,
            key_spec: settings.key_spec,
            sets: sets
                .iter()
                .map(|list| list.iter().map(RedisLimit::new).collect())
                .collect(),
            breaker: settings.breaker,
            on_error: settings.on_error,
            fallback: settings.fallback,
            retry_after: (open.as_secs() + u64::from(open.subsec_nanos() > 0)).max(1),
        }
    }

    /// The Redis key of limit `limit` of set `set` for `key`.
    #[cfg(test)]
    pub(super) fn redis_key(&self, set: usize, limit: usize, key: &Key) -> String {
        let hashed = self.hash(key);
        format!("{}:{}:{hashed}", self.prefix, self.sets[set][limit].name)
    }

    /// The key's value hashed (SHA-256, the first 32 hex digits): no partner id or IP in the
    /// clear in Redis, and a bounded key length.
    fn hash(&self, key: &Key) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.key_spec.as_bytes());
        hasher.update(b"\n");
        match key {
            Key::Value(value) => hasher.update(format!("value:{value}")),
            Key::Ip(ip) => hasher.update(format!("ip:{ip}")),
            Key::Unknown => hasher.update("unknown"),
        }
        let mut hex = hex::encode(hasher.finalize());
        hex.truncate(32);
        hex
    }

    /// Counts a request against set `set` in Redis, unless the breaker is open; a failure or
    /// a timeout counts towards opening it.
    pub(super) async fn decide(&self, set: usize, key: &Key) -> Result<Decision, Unavailable> {
        let attempt = self.breaker.attempt().ok_or(Unavailable)?;
        match tokio::time::timeout(self.timeout, self.call(set, key)).await {
            Ok(Ok(decision)) => {
                attempt.succeeded();
                Ok(decision)
            }
            Ok(Err(_)) | Err(_) => {
                attempt.failed();
                Err(Unavailable)
            }
        }
    }

    async fn call(&self, set: usize, key: &Key) -> redis::RedisResult<Decision> {
        let mut connection = self.connection.get().await?;
        let hashed = self.hash(key);
        let mut invocation = self.script.prepare_invoke();
        for limit in &self.sets[set] {
            invocation
                .key(format!("{}:{}:{hashed}", self.prefix, limit.name))
                .arg(limit.interval_us)
                .arg(limit.tolerance_us)
                .arg(limit.ttl_ms);
        }
        let reply: (i64, i64, i64) = invocation.invoke_async(&mut connection).await?;
        let index = usize::try_from(reply.1 - 1).unwrap_or(0);
        Ok(if reply.0 == 1 {
            Ok((index, u32::try_from(reply.2.max(0)).unwrap_or(u32::MAX)))
        } else {
            let wait = u64::try_from(reply.2.max(0)).unwrap_or(0);
            Err((index, wait.div_ceil(1_000_000).max(1)))
        })
    }

    /// The `fail_closed` answer.
    pub(super) fn unavailable(&self) -> Reply {
        let mut reply = Reply::problem(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "rate-limit-unavailable",
            "Rate limiting unavailable",
        ));
        reply
            .headers
            .insert(RETRY_AFTER, HeaderValue::from(self.retry_after));
        reply
    }
}
