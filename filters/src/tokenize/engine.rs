//! What a tokenization engine does for one rule: turn a value into a token and back.
//! Engines are built per rule (value kind, options, tweak and keys already bound), so their
//! methods take only the value.

use std::fmt;

use async_trait::async_trait;

/// What a rule's values are: decides the shape of its values and of its tokens, whatever
/// the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueKind {
    /// A card number (primary account number): 13 to 19 digits passing the Luhn check.
    Pan,
    /// An international bank account number, electronic format (capitals and digits).
    Iban,
    /// A domestic account number: digits only.
    Account,
    /// Anything else.
    String,
}

impl ValueKind {
    /// The kind's name, as in config.
    pub fn as_str(self) -> &'static str {
        match self {
            ValueKind::Pan => "pan",
            ValueKind::Iban => "iban",
            ValueKind::Account => "account",
            ValueKind::String => "string",
        }
    }
}

/// A tokenization engine bound to one rule.
#[async_trait]
pub trait TokenEngine: Send + Sync + fmt::Debug {
    /// The token for `value`. Deterministic engines give the same token for the same value.
    async fn tokenize(&self, value: &str) -> Result<String, TokenError>;

    /// What [`TokenEngine::tokenize`] gives for each of `values`, in order, stopping after
    /// the first [`TokenError::Unavailable`]. Engines that do several values at once faster
    /// than one by one (FF1 runs their AES blocks side by side) override it.
    async fn tokenize_all(&self, values: &[&str]) -> Vec<Result<String, TokenError>> {
        let mut tokens = Vec::with_capacity(values.len());
        for value in values {
            let token = self.tokenize(value).await;
            let unavailable = matches!(token, Err(TokenError::Unavailable(_)));
            tokens.push(token);
            if unavailable {
                break;
            }
        }
        tokens
    }

    /// The value behind `token`, with the key version that made it (for the audit record).
    async fn detokenize(&self, token: &str) -> Result<Detokenized, TokenError>;
}

/// The result of a detokenization.
#[derive(Clone, PartialEq, Eq)]
pub struct Detokenized {
    pub value: String,
    /// Version of the key that made the token (FF1), or of the vault entry's key.
    pub key_version: u32,
}

// The value is what tokenization protects: never in debug output.
impl fmt::Debug for Detokenized {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Detokenized")
            .field("value", &"<redacted>")
            .field("key_version", &self.key_version)
            .finish()
    }
}

/// Why an engine could not do its job. Messages never contain the value or the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The input is not a value of the rule's kind (a PAN that is not digits, an IBAN whose
    /// check digits are wrong...).
    #[error("not a valid {0}")]
    InvalidValue(&'static str),
    /// The input is not a token this rule could have made (wrong format, unknown key
    /// version, no vault entry, expired).
    #[error("not a valid token")]
    NotAToken,
    /// A store or key the engine needs is unavailable; the request must fail, never pass a
    /// raw value or an untranslated token.
    #[error("tokenization unavailable: {0}")]
    Unavailable(String),
}
