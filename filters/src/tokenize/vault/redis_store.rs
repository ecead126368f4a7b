//! The shared store: Redis, for a vault used by several gateway instances.
//!
//! Keys, under `{key_prefix}:{namespace}`:
//!
//! - `…:t:{token}`: the sealed entry (binary);
//! - `…:f:{key version}:{HMAC, hex}`: in deterministic mode, the token of the value.
//!
//! With a `ttl`, both carry it as `PX`, so Redis drops them itself. A new entry is written
//! with `SET NX` (a taken token is drawn again). In deterministic mode one Lua script, atomic
//! on the server, looks the value's fingerprints up and, when none points at a live entry,
//! writes the entry and indexes it: of two instances tokenizing the same value at once, the
//! second finds the first's token. The script touches entry keys it finds through the index,
//! so it needs a single Redis (or a primary with replicas), not Redis Cluster.

use std::path::PathBuf;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{Script, Value};
use serde::Deserialize;

use super::crypto::Fingerprint;
use super::{Mint, MAX_ATTEMPTS};
use crate::redis_client::{LazyConnection, RedisEndpoint};
use crate::tokenize::TokenError;
use crate::{BuildContext, BuildError};

/// KEYS[1]: the new entry's key; KEYS[2..]: the value's fingerprint keys, the active key
/// version's first. ARGV: the sealed entry, its token, the TTL in ms (0: none), the prefix of
/// entry keys. Returns `{1, token}` for a value already indexed (with a live entry), `{0, ''}`
/// when the entry was written and indexed, `{2, ''}` when the new token is taken.
const TOKENIZE_ONCE: &str = r"
for i = 2, #KEYS do
  local found = redis.call('GET', KEYS[i])
  if found and redis.call('EXISTS', ARGV[4] .. found) == 1 then
    return {1, found}
  end
end
local ttl = tonumber(ARGV[3])
local set
if ttl > 0 then
  set = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ttl)
else
  set = redis.call('SET', KEYS[1], ARGV[1], 'NX')
end
if not set then
  return {2, ''}
end
if ttl > 0 then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ttl)
else
  redis.call('SET', KEYS[2], ARGV[2])
end
return {0, ''}
";

/// Where and how a `store = "redis"` vault reaches Redis.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VaultRedisConfig {
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
    /// The longest one tokenization or detokenization (connecting included) may wait for
    /// Redis before it fails as unavailable (default 200 ms, at most 10 s).
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Prefix of the Redis keys, `{key_prefix}:{namespace}:…` (default `corridor:vault`).
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
}

impl Default for VaultRedisConfig {
    fn default() -> Self {
        VaultRedisConfig {
            url: default_url(),
            password_env: None,
            password_file: None,
            timeout: default_timeout(),
            key_prefix: default_key_prefix(),
        }
    }
}

fn default_url() -> String {
    "redis://127.0.0.1:6379/0".to_owned()
}
fn default_timeout() -> Duration {
    Duration::from_millis(200)
}
fn default_key_prefix() -> String {
    "corridor:vault".to_owned()
}

fn bad(why: impl std::fmt::Display) -> BuildError {
    BuildError(format!("redis.{why}"))
}

impl VaultRedisConfig {
    /// Checks the settings and makes the client; connects to nothing. Errors never carry the
    /// URL or the password.
    fn client(&self, ctx: &BuildContext) -> Result<redis::Client, BuildError> {
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

pub(super) struct RedisStore {
    connection: LazyConnection,
    script: Script,
    timeout: Duration,
    /// `{key_prefix}:{namespace}`.
    prefix: String,
}

// The client holds the password: only the prefix is shown.
impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl RedisStore {
    pub(super) fn new(
        config: &VaultRedisConfig,
        namespace: &str,
        ctx: &BuildContext,
    ) -> Result<Self, BuildError> {
        Ok(RedisStore {
            connection: LazyConnection::new(config.client(ctx)?, config.timeout),
            script: Script::new(TOKENIZE_ONCE),
            timeout: config.timeout,
            prefix: format!("{}:{namespace}", config.key_prefix),
        })
    }

    /// The key of `token`'s entry.
    pub(super) fn token_key(&self, token: &str) -> String {
        format!("{}:t:{token}", self.prefix)
    }

    fn fingerprint_key(&self, fingerprint: &Fingerprint) -> String {
        format!(
            "{}:f:{}:{}",
            self.prefix,
            fingerprint.version,
            hex::encode(fingerprint.mac)
        )
    }

    /// The sealed entry of `token`; Redis has already dropped expired ones.
    pub(super) async fn get(&self, token: &str) -> Result<Option<Vec<u8>>, TokenError> {
        let key = self.token_key(token);
        self.bounded(async {
            let mut connection = self.connection().await?;
            redis::cmd("GET")
                .arg(key)
                .query_async::<Option<Vec<u8>>>(&mut connection)
                .await
        })
        .await
    }

    /// A new entry from `mint` under an unused token, or, when `fingerprints` (deterministic
    /// mode, active version first) find a live entry, that entry's token.
    pub(super) async fn insert(
        &self,
        mint: Mint,
        fingerprints: Vec<Fingerprint>,
    ) -> Result<String, TokenError> {
        let ttl_ms = mint.expires_at.saturating_sub(mint.now);
        let fingerprint_keys: Vec<String> = fingerprints
            .iter()
            .map(|f| self.fingerprint_key(f))
            .collect();
        let entry_prefix = self.token_key("");
        self.bounded(async {
            let mut connection = self.connection().await?;
            for _ in 0..MAX_ATTEMPTS {
                let (token, entry) = match mint.next() {
                    Ok(made) => made,
                    Err(e) => return Ok(Err(e)),
                };
                let key = self.token_key(&token);
                if fingerprint_keys.is_empty() {
                    let mut set = redis::cmd("SET");
                    set.arg(&key).arg(&entry).arg("NX");
                    if ttl_ms > 0 {
                        set.arg("PX").arg(ttl_ms);
                    }
                    let reply: Value = set.query_async(&mut connection).await?;
                    if reply != Value::Nil {
                        return Ok(Ok(token));
                    }
                } else {
                    let mut invocation = self.script.prepare_invoke();
                    invocation.key(&key);
                    for fingerprint_key in &fingerprint_keys {
                        invocation.key(fingerprint_key);
                    }
                    invocation
                        .arg(&entry)
                        .arg(&token)
                        .arg(ttl_ms)
                        .arg(&entry_prefix);
                    let (status, found): (i64, String) =
                        invocation.invoke_async(&mut connection).await?;
                    match status {
                        0 => return Ok(Ok(token)),
                        1 => return Ok(Ok(found)),
                        _ => {}
                    }
                }
            }
            Ok(Err(super::no_free_token()))
        })
        .await?
    }

    async fn connection(&self) -> redis::RedisResult<ConnectionManager> {
        self.connection.get().await
    }

    /// `call` within the timeout; a Redis error or a timeout is `Unavailable`.
    async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, TokenError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => {
                tracing::warn!(prefix = %self.prefix, error = %e, "vault: Redis failed");
                Err(TokenError::Unavailable("vault store failed".into()))
            }
            Err(_) => {
                tracing::warn!(prefix = %self.prefix, "vault: Redis timed out");
                Err(TokenError::Unavailable("vault store timed out".into()))
            }
        }
    }

    /// Runs `command` on this store's connection (tests reach the stored entries with it).
    #[cfg(test)]
    pub(super) async fn raw<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> T {
        let mut connection = self.connection().await.unwrap();
        command.query_async(&mut connection).await.unwrap()
    }
}
