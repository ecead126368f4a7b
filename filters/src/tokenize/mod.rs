//! Tokenization: partners hold tokens, the core holds real values. Engines turn values into
//! tokens and back for one rule each; the `tokenize` and `detokenize` filters apply rules to
//! bodies, headers, query and path parameters.

pub mod engine;
pub mod ff1;
pub mod keys;
pub mod vault;

pub use engine::{Detokenized, TokenEngine, TokenError, ValueKind};
pub use keys::{KeySet, KeySetConfig};
