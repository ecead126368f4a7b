//! `jwt`: authenticates requests by an OAuth 2.0 access token in JWT form (RFC 9068), sent as
//! `Authorization: Bearer <token>` (RFC 6750).
//!
//! ```toml
//! { type = "jwt", issuer = "https://idp.bank.example/realms/partners",
//!   audiences = ["https://api.bank.example"], discovery = true,
//!   required_scopes = ["accounts:read"],
//!   forward_claims = { "sub" = "x-consumer-id", "tenant" = "x-consumer-tenant" } }
//! ```
//!
//! A token passes when it is a JWS compact token signed with one of `algorithms` by a key of
//! the IdP's JWKS (picked by `kid`, of the key type the algorithm uses), and its claims hold:
//! `exp` (required), `nbf` and `iat` within `leeway`, `iss` equal to `issuer`, `aud` naming one
//! of `audiences`, a `cnf` certificate binding matched by the connection's client certificate
//! (RFC 8705), and every `required_scopes` in `scope`/`scp`. The consumer is then the
//! `consumer_claim`, and `forward_claims` go upstream as headers.
//!
//! Refusals are a 401 (`invalid_token`, or no error code when there is no token) or a 403
//! (`insufficient_scope`) with `WWW-Authenticate`, and a problem body that never says more
//! than "not valid" or "expired"; the precise reason is counted as a filter event.
//!
//! Keys come from a local JWKS file or from the IdP (see [`store`] for caching and refresh);
//! verified tokens are cached by hash until they expire (see [`cache`]).

mod alg;
mod cache;
mod claims;
mod fetch;
mod filter;
mod json;
mod keys;
mod store;
mod verify;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::header;
use serde::Deserialize;

use crate::headers::config_header_name;
use crate::{BuildContext, BuildError, Filter};

pub use alg::Algorithm;
use cache::TokenCache;
use claims::ClaimRules;
use fetch::{remote_url, Fetcher, Source};
use filter::{Challenges, JwtFilter};
use keys::KeySet;
use store::{KeyStore, RemoteKeys};
use verify::Verifier;

/// Config of the `jwt` filter.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// The IdP's issuer identifier; a token's `iss` must equal it exactly. With
    /// `discovery = true`, also where its OpenID configuration is found.
    pub issuer: String,
    /// A token's `aud` must name at least one of these; at least one is required, so tokens
    /// the IdP issued for other APIs are refused.
    pub audiences: Vec<String>,
    /// Signature algorithms accepted (default RS256, PS256, ES256, EdDSA). Only asymmetric
    /// ones exist: `none` and `HS*` are config errors.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<Algorithm>,
    /// A JWKS file, relative to the config file's directory, read when the config is loaded.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// The IdP's JWKS URL: https (http only to a loopback address).
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Find the JWKS through `{issuer}/.well-known/openid-configuration`.
    #[serde(default)]
    pub discovery: bool,
    /// A PEM file of CA certificates trusted for the IdP, besides the system's; relative to
    /// the config file.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Age after which a fetched JWKS is refreshed in the background (default 5 min).
    #[serde(default = "default_jwks_ttl", with = "humantime_serde")]
    pub jwks_ttl: Duration,
    /// Least time between two fetches of the JWKS, whatever started them (default 30 s).
    #[serde(default = "default_refetch_interval", with = "humantime_serde")]
    pub refetch_interval: Duration,
    /// Longest a fetch from the IdP may take, connecting included (default 5 s).
    #[serde(default = "default_fetch_timeout", with = "humantime_serde")]
    pub fetch_timeout: Duration,
    /// Clock skew allowed on `exp`, `nbf` and `iat` (default 30 s, at most 5 min).
    #[serde(default = "default_leeway", with = "humantime_serde")]
    pub leeway: Duration,
    /// Longest token accepted, in bytes (default 8192).
    #[serde(default = "default_max_token_bytes")]
    pub max_token_bytes: usize,
    /// Scopes a token must all have, else 403 `insufficient_scope`.
    #[serde(default)]
    pub required_scopes: Vec<String>,
    /// The claim that names the consumer (default `sub`).
    #[serde(default = "default_consumer_claim")]
    pub consumer_claim: String,
    /// Claims tried in order when the token has no usable `consumer_claim` (e.g. `azp`,
    /// `client_id`); none by default.
    #[serde(default)]
    pub consumer_fallback_claims: Vec<String>,
    /// Claims sent upstream as request headers, `claim = "header"`.
    #[serde(default)]
    pub forward_claims: BTreeMap<String, String>,
    /// Keep the `Authorization` header on the request to the upstream (default true).
    #[serde(default = "default_true")]
    pub forward_token: bool,
    /// Refuse tokens that are not bound to a client certificate (default false).
    #[serde(default)]
    pub require_bound_tokens: bool,
    /// Verified tokens kept in memory (default 10000; 0 turns the cache off).
    #[serde(default = "default_cache_size")]
    pub cache_size: usize,
    /// The realm of the `WWW-Authenticate` challenges (default `corridor`).
    #[serde(default = "default_realm")]
    pub realm: String,
}

fn default_algorithms() -> Vec<Algorithm> {
    vec![
        Algorithm::Rs256,
        Algorithm::Ps256,
        Algorithm::Es256,
        Algorithm::EdDsa,
    ]
}
fn default_jwks_ttl() -> Duration {
    Duration::from_secs(300)
}
fn default_refetch_interval() -> Duration {
    Duration::from_secs(30)
}
fn default_fetch_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_leeway() -> Duration {
    Duration::from_secs(30)
}
fn default_max_token_bytes() -> usize {
    8192
}
fn default_consumer_claim() -> String {
    "sub".to_owned()
}
fn default_true() -> bool {
    true
}
fn default_cache_size() -> usize {
    10_000
}
fn default_realm() -> String {
    "corridor".to_owned()
}

const MAX_LEEWAY: Duration = Duration::from_secs(300);
const MAX_TOKEN_BYTES: usize = 64 * 1024;
const MAX_CACHE_SIZE: usize = 10_000_000;

fn bad(why: impl std::fmt::Display) -> BuildError {
    BuildError(format!("jwt: {why}"))
}

impl JwtConfig {
    pub fn build(&self, ctx: &BuildContext) -> Result<Arc<dyn Filter>, BuildError> {
        Ok(Arc::new(self.compile(ctx)?))
    }

    fn compile(&self, ctx: &BuildContext) -> Result<JwtFilter, BuildError> {
        self.check_limits()?;
        self.check_realm()?;
        let rules = self.claim_rules()?;
        let claim_headers = rules.forward.iter().map(|(_, h)| h.clone()).collect();
        Ok(JwtFilter {
            verifier: Verifier {
                algorithms: self.algorithms.clone(),
                keys: self.key_store(ctx)?,
                rules,
            },
            cache: TokenCache::new(self.cache_size),
            max_token_bytes: self.max_token_bytes,
            claim_headers,
            forward_token: self.forward_token,
            require_bound_tokens: self.require_bound_tokens,
            challenges: Challenges::new(&self.realm, &self.required_scopes, self.refetch_interval),
        })
    }

    fn check_limits(&self) -> Result<(), BuildError> {
        if self.algorithms.is_empty() {
            return Err(bad("algorithms must name at least one algorithm"));
        }
        if self.leeway > MAX_LEEWAY {
            return Err(bad("leeway must be at most 5m"));
        }
        if self.jwks_ttl < Duration::from_secs(1) || self.jwks_ttl > Duration::from_secs(86_400) {
            return Err(bad("jwks_ttl must be between 1s and 1day"));
        }
        if self.refetch_interval.is_zero() {
            return Err(bad("refetch_interval must be more than 0"));
        }
        if self.fetch_timeout.is_zero() || self.fetch_timeout > Duration::from_secs(60) {
            return Err(bad("fetch_timeout must be more than 0 and at most 1m"));
        }
        if !(1..=MAX_TOKEN_BYTES).contains(&self.max_token_bytes) {
            return Err(bad(format_args!(
                "max_token_bytes must be between 1 and {MAX_TOKEN_BYTES}"
            )));
        }
        if self.cache_size > MAX_CACHE_SIZE {
            return Err(bad(format_args!(
                "cache_size must be at most {MAX_CACHE_SIZE}"
            )));
        }
        Ok(())
    }

    fn claim_rules(&self) -> Result<ClaimRules, BuildError> {
        if self.issuer.is_empty() {
            return Err(bad("issuer must not be empty"));
        }
        if self.audiences.is_empty() || self.audiences.iter().any(String::is_empty) {
            return Err(bad(
                "audiences must list at least one audience, none of them empty",
            ));
        }
        for scope in &self.required_scopes {
            // RFC 6749 §3.3 scope-token: it also goes into the challenge's quoted string.
            let valid = !scope.is_empty()
                && scope
                    .bytes()
                    .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E));
            if !valid {
                return Err(bad(format_args!(
                    "required_scopes: {scope:?} is not a scope (visible ASCII without spaces, \
                     quotes or backslashes)"
                )));
            }
        }
        let consumer_claims: Vec<String> = std::iter::once(&self.consumer_claim)
            .chain(&self.consumer_fallback_claims)
            .cloned()
            .collect();
        if consumer_claims.iter().any(String::is_empty) {
            return Err(bad("consumer claim names must not be empty"));
        }
        let mut forward = Vec::new();
        for (claim, raw) in &self.forward_claims {
            let header = config_header_name(raw, true, "jwt: forward_claims")?;
            if header == header::AUTHORIZATION {
                return Err(bad(
                    "forward_claims: the Authorization header carries the token itself",
                ));
            }
            if forward.iter().any(|(_, h)| *h == header) {
                return Err(bad(format_args!(
                    "forward_claims: header {header:?} is named twice"
                )));
            }
            forward.push((claim.clone(), header));
        }
        Ok(ClaimRules {
            issuer: self.issuer.clone(),
            audiences: self.audiences.clone(),
            leeway: i64::try_from(self.leeway.as_secs()).expect("at most 5 minutes"),
            required_scopes: self.required_scopes.clone(),
            consumer_claims,
            forward,
        })
    }

    fn key_store(&self, ctx: &BuildContext) -> Result<KeyStore, BuildError> {
        let source = match (&self.jwks_file, &self.jwks_url, self.discovery) {
            (Some(path), None, false) => {
                if self.ca_file.is_some() {
                    return Err(bad("ca_file is for a remote JWKS, not jwks_file"));
                }
                // Read through the context, so a changed file reloads the filter.
                let document = ctx
                    .read_file(path)
                    .map_err(|e| bad(format_args!("jwks_file: {e}")))?;
                let keys = KeySet::parse(&document).map_err(|e| {
                    bad(format_args!(
                        "jwks_file {}: {e}",
                        ctx.resolve(path).display()
                    ))
                })?;
                return Ok(KeyStore::Static(Arc::new(keys)));
            }
            (None, Some(url), false) => {
                Source::Jwks(remote_url(url).map_err(|e| bad(format_args!("jwks_url {e}")))?)
            }
            (None, None, true) => {
                let document = format!(
                    "{}/.well-known/openid-configuration",
                    self.issuer.trim_end_matches('/')
                );
                Source::Discovery {
                    document: remote_url(&document)
                        .map_err(|e| bad(format_args!("discovery: the issuer URL {e}")))?,
                    issuer: self.issuer.clone(),
                }
            }
            _ => {
                return Err(bad(
                    "set exactly one of jwks_file, jwks_url and discovery = true",
                ))
            }
        };
        let ca_pem = match &self.ca_file {
            Some(path) => {
                let pem = ctx
                    .read_file(path)
                    .map_err(|e| bad(format_args!("ca_file: {e}")))?;
                Some((ctx.resolve(path), pem))
            }
            None => None,
        };
        let fetcher = Fetcher::new(source, ca_pem, self.fetch_timeout).map_err(bad)?;
        Ok(KeyStore::Remote(Arc::new(RemoteKeys::new(
            fetcher,
            self.jwks_ttl,
            self.refetch_interval,
        ))))
    }

    /// The realm goes into quoted strings of `WWW-Authenticate`.
    fn check_realm(&self) -> Result<(), BuildError> {
        let valid = (1..=64).contains(&self.realm.len())
            && self
                .realm
                .bytes()
                .all(|b| (0x20..0x7F).contains(&b) && b != b'"' && b != b'\\');
        if !valid {
            return Err(bad(
                "realm must be 1 to 64 printable ASCII characters without quotes or backslashes",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
