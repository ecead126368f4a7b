//! `tokenize`: replaces values in JSON response bodies with tokens (or masks them) before the
//! answer reaches the partner.
//!
//! ```toml
//! [[chains.partner.filters]]
//! type = "tokenize"
//! rules = [
//!   { path = "$.accounts[*].iban", engine = { type = "ff1", kind = "iban", tweak = "acme", keys = { active = 1, versions = [{ version = 1, file = "keys/iban.key" }] } } },
//!   { path = "$..pan", engine = { type = "mask", keep_last = 4 } },
//! ]
//! on_invalid_body = "reject"   # default; or "pass"
//! ```
//!
//! Only strings are tokenized. A value the engine refuses (a PAN failing its Luhn check) is
//! masked whole and counted as `tokenize_invalid_value`, and so is a selected number (a PAN
//! sent as a JSON number): no selected value goes out raw. If an engine is unavailable the
//! whole answer becomes a 503, never a half-tokenized body.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use http::header::ACCEPT_ENCODING;
use http::StatusCode;
use serde::Deserialize;

use super::json_path::{self, Paths, Selected};
use super::mask::mask_all;
use super::rules::{build_rules, parse_path, unavailable, Engine, EngineConfig, OnInvalidBody};
use super::TokenError;
use crate::json_fields::{is_encoded, is_json, IDENTITY};
use crate::{
    BuildContext, BuildError, Filter, Flow, Problem, RequestContext, RequestHead, ResponseHead,
};

/// Config of the `tokenize` filter.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TokenizeConfig {
    /// At least one. A value several rules select is handled by the first of them.
    pub rules: Vec<TokenizeRule>,
    /// A response body that is not JSON, or is compressed: `reject` (the default) answers a
    /// 502 `tokenization-failed`, since the body might hold what the rules protect; `pass`
    /// lets it through untouched.
    #[serde(default)]
    pub on_invalid_body: OnInvalidBody,
}

/// One rule: which values, and the engine that turns them into tokens.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TokenizeRule {
    /// A JSONPath (RFC 9535) from the top of the body: `$.accounts[*].iban`, `$..pan`.
    pub path: String,
    pub engine: EngineConfig,
}

impl TokenizeConfig {
    pub fn build(&self, ctx: &BuildContext) -> Result<Arc<dyn Filter>, BuildError> {
        let rules = build_rules(&self.rules, |rule| {
            let path = parse_path("path", &rule.path);
            let engine = rule.engine.build(ctx).map_err(|e| format!("engine: {e}"));
            match (path, engine) {
                (Ok(path), Ok(engine)) => Ok((path, engine)),
                (Err(e), Ok(_)) | (Ok(_), Err(e)) => Err(e),
                (Err(a), Err(b)) => Err(format!("{a}; {b}")),
            }
        })?;
        let (paths, engines): (Vec<_>, _) = rules.into_iter().unzip();
        Ok(Arc::new(TokenizeFilter {
            paths: Paths::new(paths.iter().enumerate()),
            engines,
            fields: self.rules.iter().map(|r| r.path.clone()).collect(),
            on_invalid_body: self.on_invalid_body,
        }))
    }
}

struct TokenizeFilter {
    /// Each rule's path, by the index of the rule.
    paths: Paths,
    /// The engine of each rule, by the index of its path.
    engines: Vec<Engine>,
    /// Each rule's path as configured, for logs.
    fields: Vec<String>,
    on_invalid_body: OnInvalidBody,
}

impl TokenizeFilter {
    fn invalid_body(&self, ctx: &mut RequestContext) -> Flow {
        ctx.events.push("tokenize_invalid_body");
        match self.on_invalid_body {
            OnInvalidBody::Pass => Flow::Continue,
            // No detail: the client is owed no view of the upstream's internals.
            OnInvalidBody::Reject => Flow::reject(Problem::new(
                StatusCode::BAD_GATEWAY,
                "tokenization-failed",
                "The answer could not be tokenized",
            )),
        }
    }

    /// The body with every selected value tokenized (`None`: nothing selected, the body
    /// stays as it is), or the answer that replaces it.
    async fn tokenize(&self, body: &[u8], ctx: &mut RequestContext) -> Result<Option<Bytes>, Flow> {
        let found = (self.paths.select(body)).map_err(|_| self.invalid_body(ctx))?;
        let mut edits = Vec::with_capacity(found.len());
        // Each token rule's strings go to its engine together: FF1 does them side by side.
        for (rule, engine) in self.engines.iter().enumerate() {
            let Engine::Token(engine) = engine else {
                continue;
            };
            let (spans, values): (Vec<_>, Vec<&str>) = (found.iter())
                .filter(|found| found.rule == rule)
                .filter_map(|found| match &found.value {
                    Selected::String(value) => Some((found.span.clone(), &**value)),
                    _ => None,
                })
                .unzip();
            if values.is_empty() {
                continue;
            }
            let mut tokens = engine.tokenize_all(&values).await.into_iter();
            for (span, value) in spans.into_iter().zip(values) {
                // An engine stops after the first unavailable value: no value goes out raw.
                let token = tokens
                    .next()
                    .unwrap_or_else(|| Err(TokenError::Unavailable("no token for a value".into())));
                let replacement = match token {
                    Ok(token) => token,
                    Err(e @ TokenError::Unavailable(_)) => {
                        return Err(unavailable("tokenize", &self.fields[rule], &e));
                    }
                    Err(_) => {
                        ctx.events.push("tokenize_invalid_value");
                        mask_all(value)
                    }
                };
                edits.push((span, replacement));
            }
        }
        for found in &found {
            let replacement = match (&found.value, &self.engines[found.rule]) {
                (Selected::String(value), Engine::Mask(mask)) => mask.apply(value),
                (Selected::Number(number), Engine::Mask(mask)) => mask.apply(number),
                (Selected::Number(number), Engine::Token(_)) => {
                    ctx.events.push("tokenize_invalid_value");
                    mask_all(number)
                }
                // Strings of token rules are done above.
                (Selected::String(_), Engine::Token(_)) => continue,
                (Selected::Null | Selected::Other, _) => continue,
            };
            edits.push((found.span.clone(), replacement));
        }
        Ok((!edits.is_empty()).then(|| json_path::splice(body, edits)))
    }
}

#[async_trait]
impl Filter for TokenizeFilter {
    fn name(&self) -> &'static str {
        "tokenize"
    }

    fn wants_response_body(&self) -> bool {
        true
    }

    async fn on_request(&self, req: &mut dyn RequestHead, _ctx: &mut RequestContext) -> Flow {
        // A compressed answer could not be read (it would be refused): ask for plain text.
        req.set_header(ACCEPT_ENCODING, IDENTITY);
        Flow::Continue
    }

    async fn on_response_body(
        &self,
        resp: &mut dyn ResponseHead,
        body: &mut Bytes,
        ctx: &mut RequestContext,
    ) -> Flow {
        if body.is_empty() {
            return Flow::Continue;
        }
        if !is_json(resp.headers()) || is_encoded(resp.headers()) {
            return self.invalid_body(ctx);
        }
        match self.tokenize(body, ctx).await {
            Ok(tokenized) => {
                if let Some(tokenized) = tokenized {
                    *body = tokenized;
                }
                Flow::Continue
            }
            Err(answer) => answer,
        }
    }
}
