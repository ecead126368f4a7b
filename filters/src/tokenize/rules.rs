//! What `tokenize` and `detokenize` rules share: the engine a rule names (built once, with
//! the filter), what to do with a body that is not JSON, and the answers for failures.

use std::sync::Arc;

use http::StatusCode;
use serde::Deserialize;

use super::ff1::Ff1Config;
use super::json_path::RulePath;
use super::mask::MaskConfig;
use super::vault::VaultConfig;
use super::{TokenEngine, TokenError};
use crate::{BuildContext, BuildError, Flow, Problem};

/// A rule's engine: `engine = { type = "ff1", kind = "pan", tweak = "…", keys = {…} }`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EngineConfig {
    /// Format-preserving encryption: no store, deterministic.
    Ff1(Ff1Config),
    /// Random tokens, values sealed in a store (redb or Redis).
    Vault(VaultConfig),
    /// Masking, `tokenize` only: it cannot be undone.
    Mask(MaskConfig),
}

/// A rule's engine, built.
pub(crate) enum Engine {
    Token(Arc<dyn TokenEngine>),
    Mask(MaskConfig),
}

impl EngineConfig {
    pub(crate) fn build(&self, ctx: &BuildContext) -> Result<Engine, BuildError> {
        Ok(match self {
            EngineConfig::Ff1(config) => Engine::Token(config.build(ctx)?),
            EngineConfig::Vault(config) => Engine::Token(config.build(ctx)?),
            EngineConfig::Mask(config) => Engine::Mask(config.clone()),
        })
    }
}

/// What a filter does with a body its rules cannot read: not JSON (by Content-Type or by
/// syntax) or compressed.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnInvalidBody {
    /// Answer with a problem: the body is not let through untranslated.
    #[default]
    Reject,
    /// Let the body through as it is.
    Pass,
}

/// Every rule's errors, each prefixed with `rules[i]: `, or the built rules.
pub(crate) fn build_rules<R, T>(
    rules: &[R],
    mut build: impl FnMut(&R) -> Result<T, String>,
) -> Result<Vec<T>, BuildError> {
    if rules.is_empty() {
        return Err(BuildError("rules is empty (give at least one)".into()));
    }
    let mut built = Vec::with_capacity(rules.len());
    let mut errors = Vec::new();
    for (index, rule) in rules.iter().enumerate() {
        match build(rule) {
            Ok(rule) => built.push(rule),
            Err(e) => errors.push(format!("rules[{index}]: {e}")),
        }
    }
    if errors.is_empty() {
        Ok(built)
    } else {
        Err(BuildError(errors.join("; ")))
    }
}

/// A rule's JSONPath (RFC 9535).
pub(crate) fn parse_path(option: &str, path: &str) -> Result<RulePath, String> {
    RulePath::parse(path).map_err(|e| format!("{option}: {path:?} is not a JSONPath: {e}"))
}

/// The answer when an engine's store or keys are unavailable: nothing goes on half
/// translated. The reason (never a value) is logged, not shown.
pub(crate) fn unavailable(filter: &str, field: &str, error: &TokenError) -> Flow {
    tracing::warn!(filter, field, %error, "tokenization unavailable");
    Flow::reject(Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "tokenization-unavailable",
        "Tokenization unavailable",
    ))
}
