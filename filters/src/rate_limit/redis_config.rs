//! The `redis` section of a `rate_limit` filter with `store = "redis"`.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::redis_client::RedisEndpoint;
use crate::{BuildContext, BuildError};

/// Where and how a `rate_limit` filter with `store = "redis"` reaches Redis, and what it does
/// when Redis cannot answer.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://host:port/db` (default `redis://127.0.0.1:6379/0`). A user name may be in it;
    /// a password may not: it comes from `password_env` or `password_file`.
    #[serde(default = "default_url")]
    pub url: String,
    /// Name of an environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// A file holding the password (trailing newline ignored); relative to the config file.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// The longest a check (connecting included) may wait for Redis before it counts as a
    /// failure (default 50 ms).
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// What a request gets when Redis fails or the breaker is open (default `local`).
    #[serde(default)]
    pub on_error: OnError,
    /// Prefix of the Redis keys, `{key_prefix}:{limit name}:{hashed key}` (default
    /// `corridor:rl`). Filters with the same prefix, key and limit names share counters.
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
    /// Consecutive failures that open the breaker (default 3).
    #[serde(default = "default_breaker_failures")]
    pub breaker_failures: u32,
    /// How long an open breaker keeps requests off Redis before one probe (default 5 s).
    #[serde(default = "default_breaker_open", with = "humantime_serde")]
    pub breaker_open: Duration,
    /// With `on_error = "local"`: the share of each limit this instance allows on its own
    /// while Redis is unavailable, more than 0 and at most 1 (default 0.5); about 1/N for N
    /// instances.
    #[serde(default = "default_local_share")]
    pub local_share: f64,
}

/// What a `rate_limit` filter does with a request when its Redis store fails.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Let the request through, uncounted.
    FailOpen,
    /// Answer 503 (problem `rate-limit-unavailable`) with `Retry-After`.
    FailClosed,
    /// Count it in this instance's memory, at `local_share` of the limits.
    #[default]
    Local,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: default_url(),
            password_env: None,
            password_file: None,
            timeout: default_timeout(),
            on_error: OnError::default(),
            key_prefix: default_key_prefix(),
            breaker_failures: default_breaker_failures(),
            breaker_open: default_breaker_open(),
            local_share: default_local_share(),
        }
    }
}

fn default_url() -> String {
    "redis://127.0.0.1:6379/0".to_owned()
}
fn default_timeout() -> Duration {
    Duration::from_millis(50)
}
fn default_key_prefix() -> String {
    "corridor:rl".to_owned()
}
fn default_breaker_failures() -> u32 {
    3
}
fn default_breaker_open() -> Duration {
    Duration::from_secs(5)
}
fn default_local_share() -> f64 {
    0.5
}

fn bad(why: impl std::fmt::Display) -> BuildError {
    BuildError(format!("rate_limit: redis.{why}"))
}

impl RedisConfig {
    /// Checks the settings and makes the client; connects to nothing. Errors never carry the
    /// URL or the password.
    pub(super) fn client(&self, ctx: &BuildContext) -> Result<redis::Client, BuildError> {
        if self.breaker_failures == 0 {
            return Err(bad("breaker_failures must be at least 1 (got 0)"));
        }
        if self.breaker_open.is_zero() {
            return Err(bad("breaker_open must be more than 0"));
        }
        if !(self.local_share > 0.0 && self.local_share <= 1.0) {
            return Err(bad(format_args!(
                "local_share must be more than 0 and at most 1 (got {})",
                self.local_share
            )));
        }
        RedisEndpoint {
            url: &self.url,
            password_env: self.password_env.as_deref(),
            password_file: self.password_file.as_ref(),
            timeout: self.timeout,
            key_prefix: &self.key_prefix,
        }
        .client(ctx)
        .map_err(bad)
    }
}
