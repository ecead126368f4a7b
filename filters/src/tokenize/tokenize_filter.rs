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
use serde_json_path::JsonPath;

use super::json_path::{self, Selected};
use super::mask::mask_all;
use super::rules::{
    build_rules, json_string, parse_path, unavailable, Engine, EngineConfig, OnInvalidBody,
};
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
        let (paths, engines) = rules.into_iter().unzip();
        Ok(Arc::new(TokenizeFilter {
            paths,
            engines,
            fields: self.rules.iter().map(|r| r.path.clone()).collect(),
            on_invalid_body: self.on_invalid_body,
        }))
    }
}

struct TokenizeFilter {
    paths: Vec<JsonPath>,
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
        let (json, value) = json_path::parse(body).map_err(|_| self.invalid_body(ctx))?;
        let mut edits = Vec::new();
        for found in json_path::select(json, &value, self.paths.iter().enumerate()) {
            let replacement = match (&found.value, &self.engines[found.rule]) {
                (Selected::String(value), Engine::Mask(mask)) => mask.apply(value),
                (Selected::Number, Engine::Mask(mask)) => mask.apply(&json[found.span.clone()]),
                (Selected::String(value), Engine::Token(engine)) => {
                    match engine.tokenize(value).await {
                        Ok(token) => token,
                        Err(e @ TokenError::Unavailable(_)) => {
                            return Err(unavailable("tokenize", &self.fields[found.rule], &e));
                        }
                        Err(_) => {
                            ctx.events.push("tokenize_invalid_value");
                            mask_all(value)
                        }
                    }
                }
                (Selected::Number, Engine::Token(_)) => {
                    ctx.events.push("tokenize_invalid_value");
                    mask_all(&json[found.span.clone()])
                }
                (Selected::Null | Selected::Other, _) => continue,
            };
            edits.push((found.span, json_string(&replacement)));
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
