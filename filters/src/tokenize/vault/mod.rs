//! The `vault` tokenization engine: tokens are drawn at random and the values they stand for
//! are kept, sealed, in a store. A token carries nothing of its value but the format (and a
//! PAN's last four digits); without the store and the keys it means nothing.
//!
//! ```toml
//! kind = "pan"                           # "pan", "iban", "account" or "string"
//! keys = { active = 2, versions = [
//!   { version = 1, file = "keys/vault-v1.key" },
//!   { version = 2, env = "CORRIDOR_VAULT_KEY_V2" },
//! ] }
//! store = "redb"                         # default; or "redis", with a `redis` table
//! data_dir = "/var/lib/corridor/vault"   # with redb: required, relative to the config file
//! namespace = "cards"                    # default: the kind
//! deterministic = true                   # default false: a fresh token on every call
//! ttl = "30d"                            # default: entries never expire
//! ```
//!
//! - **Tokens** keep the value's format, see [`ValueKind`]. They come from the system CSPRNG; a
//!   token already taken is drawn again, up to 16 times, by an atomic "insert if absent".
//! - **Sealing**: each entry is AES-256-GCM sealed with a key derived from the rule's active
//!   key version, which is stored with it, under associated data binding the namespace and
//!   the token (layout in `crypto.rs`). A rotation (a new active version) leaves older entries
//!   readable as long as their version stays in the key set; removing a version makes its
//!   entries unreadable for good: their tokens are then [`TokenError::NotAToken`], like a
//!   token that was never issued. An entry that fails authentication (corrupted, tampered
//!   with, or sealed with other keys under the same namespace) is
//!   [`TokenError::Unavailable`], logged as an error, and never yields a value.
//! - **Deterministic mode** indexes entries by an HMAC-SHA-256 fingerprint of the value,
//!   keyed by a key derived from each key version. A value is looked up under every version
//!   in the set, the active one first, and indexed under the active one when new. So a
//!   rotation keeps each value's token (found through its old version's fingerprint) until
//!   that version is removed, when its entries are gone anyway and the value gets a new
//!   token. The lookup and the insert are one atomic step: two calls for the same value at
//!   once end with one token. Only while instances disagree on the active version (during a
//!   rollout) can a value tokenized for the first time by two of them at once get two
//!   tokens; both work.
//! - **TTL**: an entry expires `ttl` after it was made (a deterministic hit does not extend
//!   it); its token is then [`TokenError::NotAToken`] and, in deterministic mode, the value
//!   gets a new token. The expiry is sealed with the entry; Redis also drops the keys itself.
//! - **Namespace**: entries of one namespace are shared by the rules naming it (same store),
//!   which must then share the key set; rules of different namespaces never see each other's
//!   tokens.
//! - **Failures**: a store that cannot be reached or fails is [`TokenError::Unavailable`] (the
//!   gateway answers 503, never passing a raw value); so is a failing random generator.
//!   Values are at most [`MAX_VALUE_BYTES`] bytes. Errors and debug output never show a
//!   value, a token or a key.

mod crypto;
mod format;
mod redb_store;
mod redis_store;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::tokenize::{Detokenized, KeySet, KeySetConfig, TokenEngine, TokenError};
use crate::{BuildContext, BuildError};

pub use crate::tokenize::ValueKind;
use crypto::{Crypto, OpenError};
use redb_store::RedbStore;
use redis_store::RedisStore;
pub use redis_store::VaultRedisConfig;

/// Longest value a vault takes, in bytes.
pub const MAX_VALUE_BYTES: usize = 256;
/// Tokens drawn for one value before giving up: past a few, the token space is nearly full.
const MAX_ATTEMPTS: u32 = 16;
/// Longest `ttl`: ten years.
const MAX_TTL: Duration = Duration::from_secs(3650 * 86_400);

/// Config of a `vault` engine, for one rule.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VaultConfig {
    /// What the values are; decides the shape of values and tokens.
    pub kind: ValueKind,
    /// The AES-256 keys, by version: the active one seals new entries.
    pub keys: KeySetConfig,
    /// Where entries live: `redb` (the default), a file in `data_dir` for this instance
    /// alone; or `redis`, shared by every instance using it.
    #[serde(default)]
    pub store: VaultStore,
    /// With `store = "redb"` (required there, refused otherwise): the directory of the
    /// database file `vault.redb`, relative to the config file. Created if missing. Rules
    /// naming the same directory share one database.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// The entries' namespace: 1 to 64 of `A-Z a-z 0-9 . _ -` (default: the kind, e.g.
    /// `pan`). Rules with the same namespace and store share their tokens, and must then
    /// have the same keys.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Give the same value the same token (default false: a new token on every call).
    #[serde(default)]
    pub deterministic: bool,
    /// How long an entry lives, from when it is made (at least 1s, at most 3650 days;
    /// default: forever).
    #[serde(default, with = "humantime_serde")]
    pub ttl: Option<Duration>,
    /// With `store = "redis"`: the Redis server; defaults throughout when unset.
    #[serde(default)]
    pub redis: Option<VaultRedisConfig>,
}

/// Where a vault keeps its entries.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum VaultStore {
    /// An embedded redb database, in this instance's `data_dir`.
    #[default]
    Redb,
    /// Redis, shared by several gateway instances.
    Redis,
}

impl VaultConfig {
    /// Checks the options (every problem at once), loads the keys, and builds the engine.
    /// Opens nothing and connects to nothing (the store is reached on first use), so it
    /// needs no runtime: `corridor check` builds it too.
    pub fn build(&self, ctx: &BuildContext) -> Result<Arc<dyn TokenEngine>, BuildError> {
        Ok(Arc::new(self.engine(ctx)?))
    }

    fn engine(&self, ctx: &BuildContext) -> Result<VaultEngine, BuildError> {
        let mut errors = Vec::new();
        let namespace = self.namespace.as_deref().unwrap_or(self.kind.as_str());
        if !(1..=64).contains(&namespace.len())
            || !namespace
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            errors.push("namespace must be 1 to 64 of A-Z a-z 0-9 . _ -".to_owned());
        }
        if let Some(ttl) = self.ttl {
            if ttl < Duration::from_secs(1) || ttl > MAX_TTL {
                errors.push("ttl must be at least 1s and at most 3650days".to_owned());
            }
        }
        let store = match (self.store, &self.data_dir, &self.redis) {
            (VaultStore::Redb, Some(dir), None) => {
                Ok(Store::Redb(RedbStore::new(ctx.resolve(dir), namespace)))
            }
            (VaultStore::Redb, None, _) => Err("data_dir is required with store = \"redb\"".into()),
            (VaultStore::Redb, Some(_), Some(_)) => {
                Err("redis is only allowed with store = \"redis\"".into())
            }
            (VaultStore::Redis, None, redis) => RedisStore::new(
                redis.as_ref().unwrap_or(&VaultRedisConfig::default()),
                namespace,
                ctx,
            )
            .map(|store| Store::Redis(Box::new(store)))
            .map_err(|e| e.0),
            (VaultStore::Redis, Some(_), _) => {
                Err("data_dir is only allowed with store = \"redb\"".into())
            }
        };
        let store = store.map_err(|e: String| errors.push(e)).ok();
        let crypto = KeySet::load(&self.keys, ctx)
            .and_then(|keys| {
                Crypto::new(&keys).map_err(|_| BuildError("keys: cannot derive the keys".into()))
            })
            .map_err(|e| errors.push(e.0))
            .ok();
        match (store, crypto) {
            (Some(store), Some(crypto)) if errors.is_empty() => Ok(VaultEngine {
                kind: self.kind,
                namespace: namespace.into(),
                deterministic: self.deterministic,
                ttl: self.ttl,
                crypto: Arc::new(crypto),
                store,
            }),
            _ => Err(BuildError(errors.join("; "))),
        }
    }
}

/// A `vault` engine bound to one rule.
#[derive(Debug)]
struct VaultEngine {
    kind: ValueKind,
    namespace: Arc<str>,
    deterministic: bool,
    ttl: Option<Duration>,
    crypto: Arc<Crypto>,
    store: Store,
}

#[derive(Debug)]
enum Store {
    Redb(RedbStore),
    // Boxed: the Redis client is large, and the enum is as large as its largest variant.
    Redis(Box<RedisStore>),
}

/// What a store needs to make an entry for one value: draws a token and seals the value for
/// it, as many times as the store finds the tokens taken.
struct Mint {
    kind: ValueKind,
    value: Zeroizing<String>,
    crypto: Arc<Crypto>,
    namespace: Arc<str>,
    /// When the call started, Unix milliseconds.
    now: u64,
    /// When the entry expires, Unix milliseconds; 0 for never.
    expires_at: u64,
}

impl Mint {
    fn next(&self) -> Result<(String, Vec<u8>), TokenError> {
        let token = self
            .kind
            .random_token(&self.value, &self.crypto.rng)
            .map_err(random_failed)?;
        let entry = self
            .crypto
            .seal(&self.namespace, &token, self.expires_at, &self.value)
            .map_err(random_failed)?;
        Ok((token, entry))
    }
}

/// The system's random generator failed: no token or nonce can be drawn safely.
fn random_failed<E>(_: E) -> TokenError {
    tracing::error!("vault: the system random generator failed");
    TokenError::Unavailable("random generator failed".into())
}

/// Every token drawn was taken: the rule's token space is (nearly) full.
fn no_free_token() -> TokenError {
    tracing::error!(
        "vault: no free token after {MAX_ATTEMPTS} draws; the token space is nearly full"
    );
    TokenError::Unavailable("no free token".into())
}

fn now_ms() -> u64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
}

#[async_trait]
impl TokenEngine for VaultEngine {
    async fn tokenize(&self, value: &str) -> Result<String, TokenError> {
        if !self.kind.is_value(value) {
            return Err(TokenError::InvalidValue(self.kind.as_str()));
        }
        let now = now_ms();
        let fingerprints = if self.deterministic {
            self.crypto.fingerprints(&self.namespace, value)
        } else {
            Vec::new()
        };
        let ttl_ms = self.ttl.map_or(0, |ttl| ttl.as_millis() as u64);
        let mint = Mint {
            kind: self.kind,
            value: Zeroizing::new(value.to_owned()),
            crypto: Arc::clone(&self.crypto),
            namespace: Arc::clone(&self.namespace),
            now,
            expires_at: if ttl_ms == 0 { 0 } else { now + ttl_ms },
        };
        match &self.store {
            Store::Redb(store) => store.insert(mint, fingerprints).await,
            Store::Redis(store) => store.insert(mint, fingerprints).await,
        }
    }

    async fn detokenize(&self, token: &str) -> Result<Detokenized, TokenError> {
        if !self.kind.is_token(token) {
            return Err(TokenError::NotAToken);
        }
        let entry = match &self.store {
            Store::Redb(store) => store.get(token).await?,
            Store::Redis(store) => store.get(token).await?,
        }
        .ok_or(TokenError::NotAToken)?;
        match self.crypto.open(&self.namespace, token, &entry) {
            Ok(opened) if opened.expires_at != 0 && opened.expires_at <= now_ms() => {
                Err(TokenError::NotAToken)
            }
            Ok(mut opened) => Ok(Detokenized {
                value: std::mem::take(&mut *opened.value),
                key_version: opened.key_version,
            }),
            Err(OpenError::UnknownKeyVersion) => Err(TokenError::NotAToken),
            Err(OpenError::Corrupt) => {
                tracing::error!(
                    namespace = %self.namespace,
                    "vault: an entry failed authentication (corrupted, tampered with, or sealed \
                     with other keys under this namespace)"
                );
                Err(TokenError::Unavailable(
                    "vault entry failed authentication".into(),
                ))
            }
        }
    }
}
