//! The claims of a token whose signature checked out: times, issuer, audience, certificate
//! binding, scopes, the consumer and the claims forwarded upstream (RFC 7519 §4.1, RFC 8705
//! §3, RFC 8693 §4.2 for `scope`).

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::{HeaderName, HeaderValue};
use serde_json::{Map, Value};

use super::verify::Failure;
use crate::Consumer;

/// Longest consumer id taken from a token, as for other filters' keys.
const MAX_CONSUMER_BYTES: usize = 256;

/// What the config asks of a token's claims.
pub(super) struct ClaimRules {
    pub(super) issuer: String,
    /// The token's `aud` must name one of these.
    pub(super) audiences: Vec<String>,
    /// Seconds of clock skew allowed on `exp`, `nbf` and `iat`.
    pub(super) leeway: i64,
    pub(super) required_scopes: Vec<String>,
    /// `consumer_claim`, then the fallbacks: the first usable one names the consumer.
    pub(super) consumer_claims: Vec<String>,
    /// Claim → request header it is forwarded in.
    pub(super) forward: Vec<(String, HeaderName)>,
}

/// What a valid token grants, kept in the token cache until the token expires.
pub(super) struct Accepted {
    /// `exp`, in seconds since the epoch.
    pub(super) exp: i64,
    pub(super) nbf: Option<i64>,
    /// The `cnf` `x5t#S256` thumbprint (RFC 8705): the client certificate the token is
    /// bound to.
    pub(super) bound_to: Option<[u8; 32]>,
    /// Whether the token has every scope of `required_scopes` (the cache belongs to one
    /// filter, so to one list).
    pub(super) has_scopes: bool,
    pub(super) consumer: Consumer,
    pub(super) forward: Vec<(HeaderName, HeaderValue)>,
}

impl ClaimRules {
    pub(super) fn check(&self, claims: &Map<String, Value>, now: i64) -> Result<Accepted, Failure> {
        let exp = numeric_date(claims, "exp")?.ok_or(Failure::Invalid("jwt_missing_exp"))?;
        // RFC 7519 §4.1.4: the token must not be accepted on or after `exp`.
        if now >= exp.saturating_add(self.leeway) {
            return Err(Failure::Expired);
        }
        let nbf = numeric_date(claims, "nbf")?;
        let iat = numeric_date(claims, "iat")?;
        let future = |t: Option<i64>| t.is_some_and(|t| t > now.saturating_add(self.leeway));
        if future(nbf) || future(iat) {
            return Err(Failure::Invalid("jwt_not_yet_valid"));
        }
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err(Failure::Invalid("jwt_wrong_issuer"));
        }
        if !self.audience_matches(claims.get("aud")) {
            return Err(Failure::Invalid("jwt_wrong_audience"));
        }
        let bound_to = binding(claims)?;
        let scopes = scopes(claims)?;
        let has_scopes = self
            .required_scopes
            .iter()
            .all(|needed| scopes.contains(&needed.as_str()));
        let id = self
            .consumer_claims
            .iter()
            .find_map(|name| {
                claims
                    .get(name)
                    .and_then(Value::as_str)
                    .filter(|id| (1..=MAX_CONSUMER_BYTES).contains(&id.len()))
            })
            .ok_or(Failure::Invalid("jwt_missing_consumer"))?;
        let mut metadata = BTreeMap::new();
        let mut forward = Vec::new();
        for (claim, header) in &self.forward {
            let Some(text) = claims.get(claim).and_then(render) else {
                continue;
            };
            if let Ok(value) = HeaderValue::from_str(&text) {
                forward.push((header.clone(), value));
                metadata.insert(claim.clone(), text);
            }
        }
        Ok(Accepted {
            exp,
            nbf,
            bound_to,
            has_scopes,
            consumer: Consumer {
                id: id.to_owned(),
                metadata,
            },
            forward,
        })
    }

    /// `aud` is one string or an array of strings (RFC 7519 §4.1.3); one must be ours.
    fn audience_matches(&self, aud: Option<&Value>) -> bool {
        let ours = |a: &Value| {
            a.as_str()
                .is_some_and(|a| self.audiences.iter().any(|o| o == a))
        };
        match aud {
            Some(one @ Value::String(_)) => ours(one),
            Some(Value::Array(list)) => list.iter().all(Value::is_string) && list.iter().any(ours),
            _ => false,
        }
    }
}

/// A NumericDate claim (seconds since the epoch, possibly fractional), `None` when absent.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, Failure> {
    let Some(value) = claims.get(name) else {
        return Ok(None);
    };
    let seconds = value
        .as_i64()
        .or_else(|| {
            value
                .as_f64()
                .filter(|f| f.is_finite())
                .map(|f| f.floor() as i64)
        })
        .ok_or(Failure::Invalid("jwt_invalid_claims"))?;
    Ok(Some(seconds))
}

/// The certificate thumbprint the token is bound to, if any. A `cnf` without `x5t#S256`
/// uses a proof of possession we cannot check (a DPoP key, say), so it is refused rather than
/// treated as an unbound bearer token.
fn binding(claims: &Map<String, Value>) -> Result<Option<[u8; 32]>, Failure> {
    let Some(cnf) = claims.get("cnf") else {
        return Ok(None);
    };
    let thumbprint = cnf
        .as_object()
        .ok_or(Failure::Invalid("jwt_invalid_claims"))?
        .get("x5t#S256")
        .ok_or(Failure::Invalid("jwt_unsupported_binding"))?;
    thumbprint
        .as_str()
        .and_then(|t| URL_SAFE_NO_PAD.decode(t).ok())
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .map(Some)
        .ok_or(Failure::Invalid("jwt_invalid_claims"))
}

/// The token's scopes: `scope` as a space-separated string (RFC 8693 §4.2, RFC 9068), and
/// `scp` as an array or a string (Azure AD, Okta).
fn scopes(claims: &Map<String, Value>) -> Result<Vec<&str>, Failure> {
    let bad = Failure::Invalid("jwt_invalid_claims");
    let mut scopes = Vec::new();
    match claims.get("scope") {
        None => {}
        Some(Value::String(s)) => scopes.extend(s.split_ascii_whitespace()),
        Some(_) => return Err(bad),
    }
    match claims.get("scp") {
        None => {}
        Some(Value::String(s)) => scopes.extend(s.split_ascii_whitespace()),
        Some(Value::Array(list)) => {
            for item in list {
                scopes.push(item.as_str().ok_or(bad)?);
            }
        }
        Some(_) => return Err(bad),
    }
    Ok(scopes)
}

/// A claim as a header value: strings as they are, numbers and booleans as JSON writes them,
/// an array of those joined by single spaces (like `scope`). Objects, null, empty values
/// and arrays holding anything else are not forwarded.
fn render(value: &Value) -> Option<String> {
    let scalar = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    let text = match value {
        Value::Array(items) => items
            .iter()
            .map(scalar)
            .collect::<Option<Vec<_>>>()?
            .join(" "),
        other => scalar(other)?,
    };
    (!text.is_empty()).then_some(text)
}
