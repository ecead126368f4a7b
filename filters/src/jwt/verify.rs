//! Verifying a JWS compact token (RFC 7515 §7.1): its form, its header, the signature with
//! the IdP's key (through `jsonwebtoken`, on ring), then its claims.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};

use super::alg::Algorithm;
use super::claims::{Accepted, ClaimRules};
use super::json;
use super::keys::{valid_kid, Key, Lookup};
use super::store::KeyStore;

/// Why a request was not let through. `Invalid` carries the event that tells operators the
/// precise reason; the client only ever learns "not valid" (or "expired").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    /// No bearer token (RFC 6750 §3.1: the challenge then has no error code).
    Missing,
    /// 401 `invalid_token`.
    Invalid(&'static str),
    /// 401 `invalid_token`; RFC 6750 lets the answer say the token expired.
    Expired,
    /// 403 `insufficient_scope`.
    InsufficientScope,
    /// The IdP's keys could not be fetched yet, so no token can be checked: 503.
    Unavailable,
}

impl Failure {
    /// The `corridor_filter_events_total` event of this failure.
    pub(super) fn event(self) -> &'static str {
        match self {
            Failure::Missing => "jwt_missing",
            Failure::Invalid(event) => event,
            Failure::Expired => "jwt_expired",
            Failure::InsufficientScope => "jwt_insufficient_scope",
            Failure::Unavailable => "jwt_jwks_unavailable",
        }
    }
}

const MALFORMED: Failure = Failure::Invalid("jwt_malformed");

/// A compact JWS split in its three base64url parts.
pub(super) struct Compact<'a> {
    /// `header.payload`, the bytes the signature covers.
    pub(super) signing_input: &'a str,
    pub(super) header: &'a str,
    pub(super) payload: &'a str,
    pub(super) signature: &'a str,
}

impl<'a> Compact<'a> {
    /// Exactly three non-empty parts of the base64url alphabet: a stripped signature
    /// (`header.payload.`), a JWE (five parts) or padding are refused here.
    pub(super) fn split(token: &'a str) -> Result<Self, Failure> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(MALFORMED);
        };
        let base64url = |part: &str| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if !(base64url(header) && base64url(payload) && base64url(signature)) {
            return Err(MALFORMED);
        }
        Ok(Compact {
            signing_input: &token[..header.len() + 1 + payload.len()],
            header,
            payload,
            signature,
        })
    }

    /// The protected header's `alg` and `kid`. The `alg` must be one of ours (so never `none`
    /// or `HS*`), and a `crit` header is refused: we understand no extension (RFC 7515
    /// §4.1.11). Other members (`jku`, `x5u`, `jwk`) are ignored: keys come only from config.
    pub(super) fn header(&self) -> Result<(Algorithm, String), Failure> {
        let header = decode_object(self.header)?;
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .and_then(Algorithm::from_name)
            .ok_or(Failure::Invalid("jwt_disallowed_alg"))?;
        if header.contains_key("crit") {
            return Err(Failure::Invalid("jwt_unsupported_header"));
        }
        match header.get("kid").and_then(Value::as_str) {
            Some(kid) if valid_kid(kid) => Ok((alg, kid.to_owned())),
            _ => Err(Failure::Invalid("jwt_bad_kid")),
        }
    }

    /// Checks the signature with `key`. The key must fit `alg` (kind and the JWK's own `alg`):
    /// `jsonwebtoken`'s low-level `verify` trusts its caller on that.
    pub(super) fn check_signature(&self, key: &Key, alg: Algorithm) -> Result<(), Failure> {
        if !key.allows(alg) {
            return Err(Failure::Invalid("jwt_alg_key_mismatch"));
        }
        let valid = jsonwebtoken::crypto::verify(
            self.signature,
            self.signing_input.as_bytes(),
            &key.decoding,
            alg.to_jsonwebtoken(),
        );
        match valid {
            Ok(true) => Ok(()),
            _ => Err(Failure::Invalid("jwt_bad_signature")),
        }
    }

    /// The payload's claims: one JSON object, no member name repeated.
    pub(super) fn claims(&self) -> Result<Map<String, Value>, Failure> {
        decode_object(self.payload)
    }
}

fn decode_object(part: &str) -> Result<Map<String, Value>, Failure> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| MALFORMED)?;
    json::parse_object(&bytes).ok_or(MALFORMED)
}

/// A token that passed every check, as the cache keeps it.
pub(super) struct Verified {
    pub(super) accepted: Accepted,
    /// The key that verified it: a cached token stops working when the key leaves the JWKS.
    pub(super) kid: Box<str>,
    pub(super) fingerprint: [u8; 32],
}

/// Everything a token is checked against.
pub(super) struct Verifier {
    pub(super) algorithms: Vec<Algorithm>,
    pub(super) keys: KeyStore,
    pub(super) rules: ClaimRules,
}

impl Verifier {
    /// The full check of a token not found in the cache. `now` is in seconds since the epoch.
    pub(super) async fn verify(
        &self,
        token: &str,
        now: i64,
        events: &mut Vec<&'static str>,
    ) -> Result<Verified, Failure> {
        let compact = Compact::split(token)?;
        let (alg, kid) = compact.header()?;
        if !self.algorithms.contains(&alg) {
            return Err(Failure::Invalid("jwt_disallowed_alg"));
        }
        let keys = self
            .keys
            .for_kid(&kid, events)
            .await
            .ok_or(Failure::Unavailable)?;
        let key = match keys.lookup(&kid, alg) {
            Lookup::Found(key) => key,
            Lookup::WrongAlgorithm => return Err(Failure::Invalid("jwt_alg_key_mismatch")),
            Lookup::Unknown => return Err(Failure::Invalid("jwt_unknown_kid")),
        };
        compact.check_signature(key, alg)?;
        let accepted = self.rules.check(&compact.claims()?, now)?;
        Ok(Verified {
            accepted,
            kid: kid.into(),
            fingerprint: key.fingerprint,
        })
    }
}
