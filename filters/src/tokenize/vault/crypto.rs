//! Sealing vault entries and fingerprinting values, with keys derived from the rule's key set.
//!
//! Each key version yields two keys by HKDF-SHA-256 (salt `corridor-vault`): info `seal` for
//! AES-256-GCM and info `fingerprint` for HMAC-SHA-256. The key set's keys are thus never used
//! directly, so the same key files can serve an FF1 rule without the two uses meeting.
//!
//! A sealed entry, as stored:
//!
//! | bytes | field |
//! | --- | --- |
//! | 0 | format, 1 |
//! | 1 | key version that sealed it, 1 to 9 |
//! | 2..10 | expiry, Unix milliseconds, big-endian; 0 for none |
//! | 10..22 | nonce, random |
//! | 22.. | the value, AES-256-GCM encrypted, then the 16-byte tag |
//!
//! The associated data is a label, the namespace, the first ten bytes and the token. An
//! entry moved to another token or namespace, or given another key version or expiry, fails
//! to open instead of yielding a value. Nonces are random (96 bits): a key version should
//! seal fewer than 2^32 entries, far beyond any vault's size between two rotations.

use std::collections::BTreeMap;
use std::fmt;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hkdf::{Salt, HKDF_SHA256};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::tokenize::KeySet;

const FORMAT: u8 = 1;
const HEADER_LEN: usize = 10;
const NONCE_END: usize = HEADER_LEN + NONCE_LEN;
const TAG_LEN: usize = 16;
const AAD_LABEL: &[u8] = b"corridor-vault/1\0";
const HKDF_SALT: &[u8] = b"corridor-vault";

/// The keys of one vault rule, by version, and the random generator for nonces and tokens.
pub(super) struct Crypto {
    active: u32,
    seal: BTreeMap<u32, LessSafeKey>,
    fingerprint: BTreeMap<u32, hmac::Key>,
    pub(super) rng: SystemRandom,
}

/// A value's fingerprint under one key version: indexes the token of the value in
/// deterministic mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Fingerprint {
    pub(super) version: u32,
    pub(super) mac: [u8; 32],
}

impl Fingerprint {
    /// The version byte then the MAC: the key of the fingerprint in the redb store.
    pub(super) fn to_bytes(&self) -> [u8; 33] {
        let mut bytes = [0; 33];
        bytes[0] = self.version as u8;
        bytes[1..].copy_from_slice(&self.mac);
        bytes
    }
}

/// An entry opened: the value, its key version and expiry.
pub(super) struct Opened {
    pub(super) value: Zeroizing<String>,
    pub(super) key_version: u32,
    /// Unix milliseconds; 0 for none.
    pub(super) expires_at: u64,
}

/// Why an entry did not open.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum OpenError {
    /// Its key version is no longer in the key set: the entry is gone for good.
    UnknownKeyVersion,
    /// Malformed, or failed authentication: corrupted or tampered with.
    Corrupt,
}

impl Crypto {
    /// Derives every version's keys. Fails only if HKDF does, which it cannot for 32-byte
    /// outputs (its limit is 8160 bytes).
    pub(super) fn new(keys: &KeySet) -> Result<Crypto, ring::error::Unspecified> {
        let salt = Salt::new(HKDF_SHA256, HKDF_SALT);
        let mut seal = BTreeMap::new();
        let mut fingerprint = BTreeMap::new();
        for version in 1..=crate::tokenize::keys::MAX_KEY_VERSION {
            let Some(key) = keys.get(version) else {
                continue;
            };
            let prk = salt.extract(key);
            let okm = prk.expand(&[b"seal"], &AES_256_GCM)?;
            seal.insert(version, LessSafeKey::new(UnboundKey::from(okm)));
            let okm = prk.expand(&[b"fingerprint"], hmac::HMAC_SHA256)?;
            fingerprint.insert(version, hmac::Key::from(okm));
        }
        Ok(Crypto {
            active: keys.active().0,
            seal,
            fingerprint,
            rng: SystemRandom::new(),
        })
    }

    /// The value's fingerprint under every key version, the active one first. New entries are
    /// indexed under the active version; the others find entries made before a rotation.
    pub(super) fn fingerprints(&self, namespace: &str, value: &str) -> Vec<Fingerprint> {
        let mut versions: Vec<u32> = vec![self.active];
        versions.extend(self.fingerprint.keys().rev().filter(|&&v| v != self.active));
        versions
            .into_iter()
            .filter_map(|version| {
                let key = self.fingerprint.get(&version)?;
                let mut context = hmac::Context::with_key(key);
                context.update(&[namespace.len() as u8]);
                context.update(namespace.as_bytes());
                context.update(value.as_bytes());
                let mut mac = [0; 32];
                mac.copy_from_slice(context.sign().as_ref());
                Some(Fingerprint { version, mac })
            })
            .collect()
    }

    /// `value` sealed with the active key, for `token` in `namespace`. Fails only when the
    /// system's random generator does.
    pub(super) fn seal(
        &self,
        namespace: &str,
        token: &str,
        expires_at: u64,
        value: &str,
    ) -> Result<Vec<u8>, ring::error::Unspecified> {
        let mut entry = Vec::with_capacity(NONCE_END + value.len() + TAG_LEN);
        entry.push(FORMAT);
        entry.push(self.active as u8);
        entry.extend_from_slice(&expires_at.to_be_bytes());
        let mut nonce = [0; NONCE_LEN];
        self.rng.fill(&mut nonce)?;
        entry.extend_from_slice(&nonce);
        entry.extend_from_slice(value.as_bytes());
        let aad = associated_data(namespace, &entry[..HEADER_LEN], token);
        let mut sealed = entry.split_off(NONCE_END);
        self.seal[&self.active].seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&aad),
            &mut sealed,
        )?;
        entry.extend_from_slice(&sealed);
        Ok(entry)
    }

    /// The value sealed in `entry` for `token` in `namespace`.
    pub(super) fn open(
        &self,
        namespace: &str,
        token: &str,
        entry: &[u8],
    ) -> Result<Opened, OpenError> {
        if entry.len() < NONCE_END + TAG_LEN || entry[0] != FORMAT {
            return Err(OpenError::Corrupt);
        }
        let key_version = u32::from(entry[1]);
        let key = self
            .seal
            .get(&key_version)
            .ok_or(OpenError::UnknownKeyVersion)?;
        let mut expiry = [0; 8];
        expiry.copy_from_slice(&entry[2..HEADER_LEN]);
        let nonce = Nonce::try_assume_unique_for_key(&entry[HEADER_LEN..NONCE_END])
            .map_err(|_| OpenError::Corrupt)?;
        let aad = associated_data(namespace, &entry[..HEADER_LEN], token);
        let mut buf = Zeroizing::new(entry[NONCE_END..].to_vec());
        let plain = key
            .open_in_place(nonce, Aad::from(&aad), &mut buf)
            .map_err(|_| OpenError::Corrupt)?;
        let value = std::str::from_utf8(plain).map_err(|_| OpenError::Corrupt)?;
        Ok(Opened {
            value: Zeroizing::new(value.to_owned()),
            key_version,
            expires_at: u64::from_be_bytes(expiry),
        })
    }
}

/// Binds an entry to its namespace, header and token; the namespace is length-prefixed so
/// that no two (namespace, token) pairs give the same bytes.
fn associated_data(namespace: &str, header: &[u8], token: &str) -> Vec<u8> {
    let mut aad =
        Vec::with_capacity(AAD_LABEL.len() + 1 + namespace.len() + header.len() + token.len());
    aad.extend_from_slice(AAD_LABEL);
    aad.push(namespace.len() as u8);
    aad.extend_from_slice(namespace.as_bytes());
    aad.extend_from_slice(header);
    aad.extend_from_slice(token.as_bytes());
    aad
}

// Keys are never shown: only which versions there are.
impl fmt::Debug for Crypto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Crypto")
            .field("active", &self.active)
            .field("versions", &self.seal.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenize::KeySetConfig;
    use crate::BuildContext;

    fn crypto(active: u32, versions: &[u32]) -> Crypto {
        let dir = tempfile::tempdir().unwrap();
        let mut entries = Vec::new();
        for v in versions {
            let path = dir.path().join(format!("v{v}.key"));
            std::fs::write(&path, hex::encode([*v as u8; 32])).unwrap();
            entries.push(format!("{{ version = {v}, file = \"v{v}.key\" }}"));
        }
        let config: KeySetConfig = toml::from_str(&format!(
            "active = {active}\nversions = [{}]",
            entries.join(", ")
        ))
        .unwrap();
        Crypto::new(&KeySet::load(&config, &BuildContext::new(dir.path())).unwrap()).unwrap()
    }

    #[test]
    fn seals_and_opens_across_rotation() {
        let v1 = crypto(1, &[1]);
        let entry = v1.seal("pan", "tok", 7, "secret").unwrap();
        assert!(!entry.windows(6).any(|w| w == b"secret"));
        let v2 = crypto(2, &[1, 2]);
        let opened = v2.open("pan", "tok", &entry).unwrap();
        assert_eq!(
            (opened.value.as_str(), opened.key_version, opened.expires_at),
            ("secret", 1, 7)
        );
        assert_eq!(v2.seal("pan", "tok", 0, "x").unwrap()[1], 2);
        assert_eq!(
            crypto(2, &[2]).open("pan", "tok", &entry).err(),
            Some(OpenError::UnknownKeyVersion)
        );
    }

    #[test]
    fn entries_are_bound_to_token_namespace_and_header() {
        let c = crypto(1, &[1]);
        let entry = c.seal("pan", "tok", 0, "secret").unwrap();
        assert!(c.open("pan", "tok", &entry).is_ok());
        assert_eq!(
            c.open("pan", "other", &entry).err(),
            Some(OpenError::Corrupt)
        );
        assert_eq!(
            c.open("iban", "tok", &entry).err(),
            Some(OpenError::Corrupt)
        );
        for at in [2, 12, entry.len() - 1] {
            let mut bad = entry.clone();
            bad[at] ^= 1;
            assert_eq!(c.open("pan", "tok", &bad).err(), Some(OpenError::Corrupt));
        }
        assert_eq!(
            c.open("pan", "tok", &entry[..20]).err(),
            Some(OpenError::Corrupt)
        );
    }

    #[test]
    fn fingerprints_are_per_version_and_namespace() {
        let c = crypto(2, &[1, 2, 3]);
        let fps = c.fingerprints("pan", "4111111111111111");
        assert_eq!(fps.iter().map(|f| f.version).collect::<Vec<_>>(), [2, 3, 1]);
        assert_eq!(fps, c.fingerprints("pan", "4111111111111111"));
        assert_ne!(fps[0].mac, fps[1].mac);
        assert_ne!(fps[0], c.fingerprints("pan2", "4111111111111111")[0]);
        assert_eq!(
            fps[2],
            crypto(1, &[1]).fingerprints("pan", "4111111111111111")[0]
        );
    }

    #[test]
    fn debug_shows_no_key() {
        let shown = format!("{:?}", crypto(1, &[1]));
        assert_eq!(shown, "Crypto { active: 1, versions: [1] }");
    }
}
