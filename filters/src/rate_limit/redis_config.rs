//! The `redis` section of a `rate_limit` filter with `store = "redis"`.

use std::path::PathBuf;
use std::time::Duration;

use redis::IntoConnectionInfo;
use serde::Deserialize;

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
        if self.timeout.is_zero() || self.timeout > Duration::from_secs(10) {
            return Err(bad("timeout must be more than 0 and at most 10s"));
        }
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
        if !(1..=128).contains(&self.key_prefix.len())
            || !self.key_prefix.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(bad("key_prefix must be 1 to 128 visible ASCII characters"));
        }
        if !self.url.starts_with("redis://") {
            return Err(bad("url must start with redis://"));
        }
        let info = self
            .url
            .as_str()
            .into_connection_info()
            .map_err(|_| bad("url is not a valid redis:// URL"))?;
        if info.redis_settings().password().is_some() {
            return Err(bad(
                "url must not hold a password: use password_env or password_file",
            ));
        }
        let password = match (&self.password_env, &self.password_file) {
            (Some(_), Some(_)) => {
                return Err(bad("password_env and password_file: set one, not both"))
            }
            (Some(name), None) => Some(std::env::var(name).map_err(|_| {
                bad(format_args!(
                    "password_env: the environment variable {name:?} is not set or not UTF-8"
                ))
            })?),
            (None, Some(path)) => {
                let path = ctx.base_dir.join(path);
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    bad(format_args!(
                        "password_file: cannot read {}: {e}",
                        path.display()
                    ))
                })?;
                Some(text.trim_end_matches(['\r', '\n']).to_owned())
            }
            (None, None) => None,
        };
        let info = match password {
            Some(password) if !password.is_empty() => {
                let settings = info.redis_settings().clone().set_password(password);
                info.set_redis_settings(settings)
            }
            Some(_) => return Err(bad("the password is empty")),
            None => info,
        };
        redis::Client::open(info).map_err(|_| bad("url: cannot make a client for it"))
    }
}
