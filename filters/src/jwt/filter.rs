//! The `jwt` filter on a request: bearer token in, consumer and claim headers out, or a 401,
//! 403 or 503 problem with its `WWW-Authenticate` challenge (RFC 6750 §3).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use subtle::ConstantTimeEq;

use super::cache::TokenCache;
use super::verify::{Failure, Verified, Verifier};
use crate::{Filter, Flow, Problem, Reply, RequestContext, RequestHead};

pub(super) struct JwtFilter {
    pub(super) verifier: Verifier,
    pub(super) cache: TokenCache,
    pub(super) max_token_bytes: usize,
    /// Headers the filter sets from claims: any copy the client sent is removed first.
    pub(super) claim_headers: Vec<HeaderName>,
    /// Keep `Authorization` on the request to the upstream.
    pub(super) forward_token: bool,
    pub(super) require_bound_tokens: bool,
    pub(super) challenges: Challenges,
}

/// The `WWW-Authenticate` values, made once from the config's realm and scopes.
pub(super) struct Challenges {
    pub(super) missing: HeaderValue,
    pub(super) invalid: HeaderValue,
    pub(super) expired: HeaderValue,
    pub(super) insufficient_scope: HeaderValue,
    /// `Retry-After` of a 503: the wait before the keys are fetched again.
    pub(super) retry_after: HeaderValue,
}

impl Challenges {
    /// `realm` and `scopes` were checked with the config: printable ASCII, no quotes or
    /// backslashes, so they fit in quoted strings.
    pub(super) fn new(realm: &str, scopes: &[String], retry_after: Duration) -> Self {
        let bearer = format!("Bearer realm=\"{realm}\"");
        let value = |text: String| {
            HeaderValue::from_str(&text).expect("printable ASCII, checked in config")
        };
        Challenges {
            missing: value(bearer.clone()),
            invalid: value(format!("{bearer}, error=\"invalid_token\"")),
            expired: value(format!(
                "{bearer}, error=\"invalid_token\", \
                 error_description=\"the access token has expired\""
            )),
            insufficient_scope: value(format!(
                "{bearer}, error=\"insufficient_scope\", scope=\"{}\"",
                scopes.join(" ")
            )),
            retry_after: HeaderValue::from(retry_after.as_secs_f64().ceil().max(1.0) as u64),
        }
    }
}

#[async_trait]
impl Filter for JwtFilter {
    fn name(&self) -> &'static str {
        "jwt"
    }

    async fn on_request(&self, req: &mut dyn RequestHead, ctx: &mut RequestContext) -> Flow {
        // Before anything else, and whatever the outcome: a client must never be able to
        // pass off its own value as a verified claim.
        for name in &self.claim_headers {
            if req.headers().contains_key(name) {
                req.remove_header(name);
            }
        }
        let verified = match self.authenticate(req.headers(), ctx).await {
            Ok(verified) => verified,
            Err(failure) => {
                ctx.events.push(failure.event());
                return Flow::Respond(self.reply(failure));
            }
        };
        for (name, value) in &verified.accepted.forward {
            req.set_header(name.clone(), value.clone());
        }
        if !self.forward_token {
            req.remove_header(&header::AUTHORIZATION);
        }
        ctx.consumer = Some(verified.accepted.consumer.clone());
        Flow::Continue
    }
}

impl JwtFilter {
    async fn authenticate(
        &self,
        headers: &HeaderMap,
        ctx: &mut RequestContext,
    ) -> Result<Arc<Verified>, Failure> {
        let token = self.bearer_token(headers)?;
        let now = unix_now();
        let key = self.cache.key(token);
        let cached = key.as_ref().and_then(|key| self.cache.get(key, now));
        let verified = match cached {
            Some(verified) if self.still_valid(&verified, now, &mut ctx.events) => {
                ctx.events.push("jwt_cache_hit");
                verified
            }
            stale => {
                // Its key left the JWKS: drop it, and check the token afresh.
                if let (Some(key), Some(_)) = (&key, stale) {
                    self.cache.remove(key);
                }
                let verified = Arc::new(self.verifier.verify(token, now, &mut ctx.events).await?);
                // A token accepted only thanks to the leeway past `exp` is not worth keeping.
                if let Some(key) = key.filter(|_| now < verified.accepted.exp) {
                    self.cache.insert(key, Arc::clone(&verified), now);
                }
                verified
            }
        };
        self.check_binding(&verified, ctx)?;
        if !verified.accepted.has_scopes {
            return Err(Failure::InsufficientScope);
        }
        Ok(verified)
    }

    /// The token of the one `Authorization: Bearer` header. Another scheme counts as no
    /// token; an oversized header is refused before it is looked at.
    fn bearer_token<'h>(&self, headers: &'h HeaderMap) -> Result<&'h str, Failure> {
        let mut all = headers.get_all(header::AUTHORIZATION).iter();
        let value = match (all.next(), all.next()) {
            (None, _) => return Err(Failure::Missing),
            (Some(value), None) => value.as_bytes(),
            (Some(_), Some(_)) => return Err(Failure::Invalid("jwt_malformed")),
        };
        // "Bearer" and the spaces around the token are few bytes; the token is the rest.
        if value.len() > self.max_token_bytes + 64 {
            return Err(Failure::Invalid("jwt_too_large"));
        }
        let value = std::str::from_utf8(value).map_err(|_| Failure::Invalid("jwt_malformed"))?;
        let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(Failure::Missing);
        }
        let token = token.trim_matches(' ');
        if token.is_empty() {
            return Err(Failure::Missing);
        }
        if token.len() > self.max_token_bytes {
            return Err(Failure::Invalid("jwt_too_large"));
        }
        Ok(token)
    }

    /// Whether a cached token may be used now: its time window (the cache already dropped it
    /// at `exp`), and its key still in the JWKS.
    fn still_valid(&self, verified: &Verified, now: i64, events: &mut Vec<&'static str>) -> bool {
        let leeway = self.verifier.rules.leeway;
        let started = verified
            .accepted
            .nbf
            .is_none_or(|nbf| nbf <= now.saturating_add(leeway));
        started
            && self
                .verifier
                .keys
                .current(events)
                .is_some_and(|keys| keys.holds(&verified.kid, &verified.fingerprint))
    }

    /// RFC 8705 §3: a token bound to a certificate is only good over a connection that
    /// presented that certificate.
    fn check_binding(&self, verified: &Verified, ctx: &RequestContext) -> Result<(), Failure> {
        match (&verified.accepted.bound_to, &ctx.client_cert) {
            (Some(thumbprint), Some(cert)) if bool::from(thumbprint.ct_eq(&cert.sha256)) => Ok(()),
            (Some(_), _) => Err(Failure::Invalid("jwt_unbound_cert")),
            (None, _) if self.require_bound_tokens => Err(Failure::Invalid("jwt_unbound_token")),
            (None, _) => Ok(()),
        }
    }

    fn reply(&self, failure: Failure) -> Reply {
        let c = &self.challenges;
        let (status, kind, title, detail, challenge) = match failure {
            Failure::Missing => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Unauthorized",
                "an access token is required",
                &c.missing,
            ),
            Failure::Invalid(_) => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Unauthorized",
                "the access token is not valid",
                &c.invalid,
            ),
            Failure::Expired => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Unauthorized",
                "the access token has expired",
                &c.expired,
            ),
            Failure::InsufficientScope => (
                StatusCode::FORBIDDEN,
                "forbidden",
                "Forbidden",
                "the access token lacks a scope this API requires",
                &c.insufficient_scope,
            ),
            Failure::Unavailable => {
                let mut reply = Reply::problem(
                    Problem::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "auth-unavailable",
                        "Authentication unavailable",
                    )
                    .with_detail("access tokens cannot be checked right now"),
                );
                reply
                    .headers
                    .insert(header::RETRY_AFTER, c.retry_after.clone());
                return reply;
            }
        };
        let mut reply = Reply::problem(Problem::new(status, kind, title).with_detail(detail));
        reply
            .headers
            .insert(header::WWW_AUTHENTICATE, challenge.clone());
        reply
    }
}

/// Seconds since the Unix epoch, the unit of `exp`, `nbf` and `iat`.
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
