//! Key sets: AES-256 keys by version, read from files or environment variables named in
//! config (never inline), one version active for new tokens. Older versions stay so tokens
//! they made keep working after a rotation.
//!
//! ```toml
//! keys = { active = 2, versions = [
//!   { version = 1, file = "keys/tok-v1.key" },
//!   { version = 2, env = "CORRIDOR_TOKEN_KEY_V2" },
//! ] }
//! ```
//!
//! A key is 32 bytes written as 64 hex digits (surrounding whitespace ignored).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use zeroize::Zeroizing;

use crate::{BuildContext, BuildError};

/// Config of a key set.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KeySetConfig {
    /// The version that makes new tokens.
    pub active: u32,
    pub versions: Vec<KeyVersionConfig>,
}

/// Where one version's key is: exactly one of `file` and `env`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KeyVersionConfig {
    /// 1 to 9: versions are carried in tokens as one digit.
    pub version: u32,
    /// A file holding the key, relative to the config file.
    pub file: Option<PathBuf>,
    /// An environment variable holding the key.
    pub env: Option<String>,
}

/// Highest key version: tokens carry the version as one decimal digit.
pub const MAX_KEY_VERSION: u32 = 9;

/// AES-256 keys by version. Key bytes are wiped from memory when dropped and never shown.
pub struct KeySet {
    active: u32,
    keys: BTreeMap<u32, Zeroizing<[u8; 32]>>,
}

impl KeySet {
    /// Loads every version; errors name the version and where it was looked for, never a
    /// key's contents.
    pub fn load(config: &KeySetConfig, ctx: &BuildContext) -> Result<KeySet, BuildError> {
        let bad = |message: String| BuildError(format!("keys: {message}"));
        let mut keys = BTreeMap::new();
        for entry in &config.versions {
            let version = entry.version;
            if !(1..=MAX_KEY_VERSION).contains(&version) {
                return Err(bad(format!(
                    "version {version}: versions are 1 to {MAX_KEY_VERSION}"
                )));
            }
            let text = match (&entry.file, &entry.env) {
                (Some(path), None) => Zeroizing::new(
                    ctx.read_text_file(path)
                        .map_err(|e| bad(format!("version {version}: {e}")))?,
                ),
                (None, Some(name)) => Zeroizing::new(std::env::var(name).map_err(|_| {
                    bad(format!(
                        "version {version}: the environment variable {name:?} is not set"
                    ))
                })?),
                _ => {
                    return Err(bad(format!(
                        "version {version}: set exactly one of file and env"
                    )))
                }
            };
            let key = parse_key(text.trim()).ok_or_else(|| {
                bad(format!(
                    "version {version}: a key is 32 bytes written as 64 hex digits"
                ))
            })?;
            if keys.insert(version, key).is_some() {
                return Err(bad(format!("version {version} is listed twice")));
            }
        }
        if !keys.contains_key(&config.active) {
            return Err(bad(format!(
                "active version {} is not among the versions",
                config.active
            )));
        }
        Ok(KeySet {
            active: config.active,
            keys,
        })
    }

    /// The version that makes new tokens, and its key.
    pub fn active(&self) -> (u32, &[u8; 32]) {
        (self.active, &self.keys[&self.active])
    }

    /// The key of `version`, if the set still has it.
    pub fn get(&self, version: u32) -> Option<&[u8; 32]> {
        self.keys.get(&version).map(|key| &**key)
    }
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySet")
            .field("active", &self.active)
            .field("versions", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn parse_key(hex_text: &str) -> Option<Zeroizing<[u8; 32]>> {
    let mut key = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(hex_text, &mut key[..]).ok()?;
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_1: &str = "2b7e151628aed2a6abf7158809cf4f3cef4369910f9a5e2e8c4d1b9a7f6e5d4c";
    const KEY_2: &str = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4";

    fn config(text: &str) -> KeySetConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn loads_versions_from_files_and_env() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("v1.key"), format!("{KEY_1}\n")).unwrap();
        std::env::set_var("CORRIDOR_TEST_KEYSET_V2", KEY_2);
        let keys = KeySet::load(
            &config(
                r#"active = 2
versions = [{ version = 1, file = "v1.key" }, { version = 2, env = "CORRIDOR_TEST_KEYSET_V2" }]"#,
            ),
            &BuildContext::new(dir.path()),
        )
        .unwrap();
        assert_eq!(keys.active().0, 2);
        assert_eq!(hex::encode(keys.active().1), KEY_2);
        assert_eq!(hex::encode(keys.get(1).unwrap()), KEY_1);
        assert!(keys.get(3).is_none());
        let shown = format!("{keys:?}");
        assert!(
            !shown.contains(&KEY_1[..16]) && !shown.contains(&KEY_2[..16]),
            "{shown}"
        );
    }

    #[test]
    fn refuses_bad_sets_without_showing_keys() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("short.key"), "abcd").unwrap();
        for (text, expected) in [
            (
                r#"active = 1
versions = [{ version = 1, file = "short.key" }]"#,
                "64 hex digits",
            ),
            (
                r#"active = 2
versions = [{ version = 1, env = "CORRIDOR_TEST_KEYSET_UNSET" }]"#,
                "not set",
            ),
            (
                r#"active = 1
versions = [{ version = 10, file = "short.key" }]"#,
                "versions are 1 to 9",
            ),
            (
                r#"active = 1
versions = [{ version = 1 }]"#,
                "exactly one of file and env",
            ),
            (
                r#"active = 1
versions = [{ version = 1, file = "missing.key" }]"#,
                "cannot read",
            ),
        ] {
            let err = KeySet::load(&config(text), &BuildContext::new(dir.path())).unwrap_err();
            assert!(err.0.contains(expected), "{text}: {err}");
            assert!(!err.0.contains("abcd"), "{err}");
        }
    }
}
