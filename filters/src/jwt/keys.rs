//! JSON Web Keys (RFC 7517) as the filter uses them: public signature keys by `kid`, each
//! bound to the one kind of algorithm it can verify.

use std::collections::HashMap;
use std::time::Instant;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::DecodingKey;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::alg::{Algorithm, KeyKind};
use super::json;

/// Most keys a JWKS may hold; IdPs publish a handful (current, next, previous).
const MAX_KEYS: usize = 100;
/// The smallest RSA modulus accepted, in bytes (2048 bits, as NIST and ring require).
const MIN_RSA_BYTES: usize = 256;

/// One public key from a JWKS.
pub(super) struct Key {
    pub(super) kind: KeyKind,
    /// The JWK's own `alg`, when it names one: the key then verifies that algorithm only.
    pub(super) alg: Option<Algorithm>,
    pub(super) decoding: DecodingKey,
    /// SHA-256 over the key's type and public material: the same key in a later fetch of
    /// the JWKS has the same fingerprint, a replaced key under the same `kid` does not.
    pub(super) fingerprint: [u8; 32],
}

impl Key {
    /// Whether this key may verify a token signed with `alg`: the key kind must be the one the
    /// algorithm uses (an RSA key never verifies ES256, and there is no HMAC at all), and the
    /// JWK's own `alg`, when set, must be that algorithm.
    pub(super) fn allows(&self, alg: Algorithm) -> bool {
        alg.key_kind() == self.kind && self.alg.is_none_or(|own| own == alg)
    }

    /// Reads one JWK. `Err` says why it cannot be used, in words safe to log (the reason,
    /// never the key material).
    pub(super) fn from_jwk(jwk: &Map<String, Value>) -> Result<Key, &'static str> {
        let text = |name: &str| jwk.get(name).and_then(Value::as_str);
        if text("use").is_some_and(|u| u != "sig") {
            return Err("its \"use\" is not \"sig\"");
        }
        if let Some(ops) = jwk.get("key_ops") {
            let verify = ops
                .as_array()
                .is_some_and(|ops| ops.iter().any(|op| op == "verify"));
            if !verify {
                return Err("its \"key_ops\" do not include \"verify\"");
            }
        }
        let alg = match jwk.get("alg") {
            None => None,
            Some(alg) => Some(
                alg.as_str()
                    .and_then(Algorithm::from_name)
                    .ok_or("its \"alg\" is not a supported signature algorithm")?,
            ),
        };
        let part = |name: &str| {
            text(name)
                .and_then(|b64| URL_SAFE_NO_PAD.decode(b64).ok())
                .filter(|bytes| !bytes.is_empty())
                .ok_or("a key member is missing or not base64url")
        };
        let mut material = Sha256::new();
        let mut absorb = |label: &[u8], bytes: &[u8]| {
            material.update(label);
            material.update((bytes.len() as u64).to_be_bytes());
            material.update(bytes);
        };
        let (kind, decoding) = match (text("kty"), text("crv")) {
            (Some("RSA"), _) => {
                let (n, e) = (part("n")?, part("e")?);
                let significant = n.iter().skip_while(|b| **b == 0).count();
                if significant < MIN_RSA_BYTES {
                    return Err("its RSA modulus is shorter than 2048 bits");
                }
                absorb(b"RSA", &n);
                absorb(b"e", &e);
                (KeyKind::Rsa, DecodingKey::from_rsa_raw_components(&n, &e))
            }
            (Some("EC"), Some(crv @ ("P-256" | "P-384"))) => {
                let (kind, size) = match crv {
                    "P-256" => (KeyKind::EcP256, 32),
                    _ => (KeyKind::EcP384, 48),
                };
                let (x, y) = (part("x")?, part("y")?);
                if x.len() != size || y.len() != size {
                    return Err("its EC coordinates do not fit the curve");
                }
                absorb(crv.as_bytes(), &x);
                absorb(b"y", &y);
                let decoding = DecodingKey::from_ec_components(
                    text("x").unwrap_or_default(),
                    text("y").unwrap_or_default(),
                )
                .map_err(|_| "a key member is missing or not base64url")?;
                (kind, decoding)
            }
            (Some("OKP"), Some("Ed25519")) => {
                let x = part("x")?;
                if x.len() != 32 {
                    return Err("its Ed25519 key is not 32 bytes");
                }
                absorb(b"Ed25519", &x);
                let decoding = DecodingKey::from_ed_components(text("x").unwrap_or_default())
                    .map_err(|_| "a key member is missing or not base64url")?;
                (KeyKind::Ed25519, decoding)
            }
            _ => return Err("its type or curve is not supported for signatures"),
        };
        if alg.is_some_and(|alg| alg.key_kind() != kind) {
            return Err("its \"alg\" does not fit its key type");
        }
        Ok(Key {
            kind,
            alg,
            decoding,
            fingerprint: material.finalize().into(),
        })
    }
}

/// The usable keys of one JWKS document, by `kid`.
pub(super) struct KeySet {
    /// Several keys may share a `kid` (one per algorithm); lookups pick by algorithm.
    by_kid: HashMap<Box<str>, Vec<Key>>,
    /// When the document was read: a remote set is refreshed once it is older than the TTL.
    pub(super) loaded_at: Instant,
}

/// What a JWKS lookup found for a token's `kid` and `alg`.
pub(super) enum Lookup<'a> {
    Found(&'a Key),
    /// The `kid` is known, but none of its keys may verify this algorithm.
    WrongAlgorithm,
    Unknown,
}

impl KeySet {
    /// Reads a JWKS document. Keys that cannot be used (encryption keys, unsupported types,
    /// keys without a `kid`) are skipped with a warning; a document with no usable key at all
    /// is an error, so a bad publication never replaces a good set.
    pub(super) fn parse(document: &[u8]) -> Result<KeySet, String> {
        let doc = json::parse_object(document)
            .ok_or("the JWKS is not a JSON object (or repeats a member name)")?;
        let keys = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("the JWKS has no \"keys\" array")?;
        if keys.len() > MAX_KEYS {
            return Err(format!("the JWKS has more than {MAX_KEYS} keys"));
        }
        let mut by_kid: HashMap<Box<str>, Vec<Key>> = HashMap::new();
        for (index, jwk) in keys.iter().enumerate() {
            let Some(jwk) = jwk.as_object() else {
                return Err(format!("key #{index} of the JWKS is not an object"));
            };
            let Some(kid) = jwk
                .get("kid")
                .and_then(Value::as_str)
                .filter(|kid| valid_kid(kid))
            else {
                tracing::warn!(
                    key = index,
                    "jwt: JWKS key skipped: it has no kid of 1 to 128 [A-Za-z0-9._-]"
                );
                continue;
            };
            match Key::from_jwk(jwk) {
                Ok(key) => by_kid.entry(kid.into()).or_default().push(key),
                Err(why) => tracing::warn!(kid, "jwt: JWKS key skipped: {why}"),
            }
        }
        if by_kid.is_empty() {
            return Err("the JWKS has no usable signature key".to_owned());
        }
        Ok(KeySet {
            by_kid,
            loaded_at: Instant::now(),
        })
    }

    pub(super) fn lookup(&self, kid: &str, alg: Algorithm) -> Lookup<'_> {
        match self.by_kid.get(kid) {
            None => Lookup::Unknown,
            Some(keys) => keys
                .iter()
                .find(|key| key.allows(alg))
                .map_or(Lookup::WrongAlgorithm, Lookup::Found),
        }
    }

    pub(super) fn knows(&self, kid: &str) -> bool {
        self.by_kid.contains_key(kid)
    }

    /// Whether the set still holds this very key (for a cached token).
    pub(super) fn holds(&self, kid: &str, fingerprint: &[u8; 32]) -> bool {
        self.by_kid
            .get(kid)
            .is_some_and(|keys| keys.iter().any(|k| k.fingerprint == *fingerprint))
    }
}

/// A `kid` the filter accepts, in tokens and in JWKS: 1 to 128 of `A-Z a-z 0-9 . _ -`.
/// Anything else (`../`, quotes, `' OR 1=1`) is refused before any lookup, so an odd `kid`
/// can never reach a log line, a file name or a query.
pub(super) fn valid_kid(kid: &str) -> bool {
    (1..=128).contains(&kid.len())
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}
