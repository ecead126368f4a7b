//! The `rate_limit` filter itself: picks a request's key and limits, answers 429 or annotates
//! the response.

use std::collections::HashMap;

use async_trait::async_trait;

use super::keys::{Key, KeySpec};
use super::limits::{service_limit, LimitSet, RATELIMIT, RATELIMIT_POLICY};
use super::redis_config::OnError;
use super::redis_store::{Decision, RedisStore};
use super::MAX_KEY_BYTES;
use crate::{Filter, Flow, RequestContext, RequestHead, ResponseHead};

/// The request attribute that says which store counted the request: `"redis"`, or
/// `"fallback"` when Redis was unavailable (error, timeout or open breaker) and `on_error`
/// decided.
pub(super) const STORE: &str = "rate_limit.store";

pub(super) struct RateLimitFilter {
    pub(super) key: KeySpec,
    /// `limits` at index 0, then one set per override.
    pub(super) sets: Vec<LimitSet>,
    /// Overridden key → its index in `sets`.
    pub(super) overrides: HashMap<Key, usize>,
    /// With `store = "redis"`: the shared store, which `sets` stand in for only through their
    /// policies and refusals (the counting is in Redis, or in the store's fallback).
    pub(super) redis: Option<RedisStore>,
    /// Unique to this instance: what `on_request` keeps in the request's context for
    /// `on_response` is kept under it.
    pub(super) id: u64,
    /// Whether allowed answers carry the RateLimit headers too (429s always do).
    pub(super) announce_allowed: bool,
}

/// An allowed request, from `on_request` to `on_response`: which set and limit was the
/// tightest, and how many requests it has left.
pub(super) struct Allowed {
    set: usize,
    limit: usize,
    left: u32,
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

    /// Counts a request in Redis, or as its `on_error` says when Redis is unavailable;
    /// `None` lets the request through uncounted. Sets the `rate_limit.store` attribute.
    async fn decide_redis(
        &self,
        redis: &RedisStore,
        set: usize,
        key: &Key,
        ctx: &mut RequestContext,
    ) -> Result<Option<Decision>, Flow> {
        let decision = redis.decide(set, key).await;
        let store = if decision.is_ok() {
            "redis"
        } else {
            "fallback"
        };
        ctx.attributes.insert(STORE.to_owned(), store.to_owned());
        if decision.is_err() {
            ctx.events.push("rate_limit_redis_unavailable");
        }
        match (decision, redis.on_error) {
            (Ok(decision), _) => Ok(Some(decision)),
            (Err(_), OnError::FailOpen) => Ok(None),
            (Err(_), OnError::FailClosed) => Err(Flow::Respond(redis.unavailable())),
            (Err(_), OnError::Local) => Ok(Some(redis.fallback[set].decide(key))),
        }
    }

    /// Keys tracked by the fullest limit.
    #[cfg(test)]
    pub(super) fn tracked_keys(&self) -> usize {
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
        let decision = match &self.redis {
            None => self.sets[set].decide(&key),
            Some(redis) => match self.decide_redis(redis, set, &key, ctx).await {
                Ok(Some(decision)) => decision,
                Ok(None) => return Flow::Continue,
                Err(flow) => return flow,
            },
        };
        match decision {
            Ok((limit, left)) => {
                if self.announce_allowed {
                    ctx.keep(self.id, Allowed { set, limit, left });
                }
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
        let Some(Allowed { set, limit, left }) = ctx.take_kept(self.id) else {
            return Flow::Continue;
        };
        let set = &self.sets[set];
        let limit = &set.limits[limit];
        // Appended: another rate_limit filter of the chain adds its own items (a Structured
        // Fields list may be split over several fields).
        resp.append_header(RATELIMIT_POLICY, set.policy.clone());
        if let Some(value) = service_limit(&limit.name, left, limit.next_in) {
            resp.append_header(RATELIMIT, value);
        }
        Flow::Continue
    }
}
