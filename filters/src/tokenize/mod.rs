//! Tokenization: partners hold tokens, the core holds real values. Engines turn values into
//! tokens and back for one rule each; the `tokenize` and `detokenize` filters apply rules to
//! bodies, headers, query and path parameters.

pub mod engine;
pub mod ff1;
pub mod keys;
pub mod vault;

mod detokenize_filter;
mod json_path;
mod mask;
mod rules;
#[cfg(test)]
mod tests;
mod tokenize_filter;

pub use detokenize_filter::{DetokenizeConfig, DetokenizeRule};
pub use engine::{Detokenized, TokenEngine, TokenError, ValueKind};
pub use keys::{KeySet, KeySetConfig};
pub use mask::MaskConfig;
pub use rules::{EngineConfig, OnInvalidBody};
pub use tokenize_filter::{TokenizeConfig, TokenizeRule};
