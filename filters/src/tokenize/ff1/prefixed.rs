//! `kind = "account"` and `kind = "string"`: the whole value encrypted with FF1 in its
//! alphabet (digits for accounts), behind one character, `1` to `9`, naming the key version.
//! The token is one character longer than the value.

use std::ops::RangeInclusive;

use async_trait::async_trait;

use super::cipher::{Ff1, Tweak};
use crate::tokenize::{Detokenized, TokenEngine, TokenError};

#[derive(Debug)]
pub(super) struct PrefixedEngine {
    pub(super) ff1: Ff1,
    pub(super) tweak: Tweak,
    /// The symbols, numeral 0 first. ASCII, and the digits `1` to `9` are among them.
    pub(super) alphabet: &'static [u8],
    /// Accepted value lengths; tokens are one longer.
    pub(super) lengths: RangeInclusive<usize>,
    /// `"account"` or `"string"`, for errors.
    pub(super) kind: &'static str,
}

impl PrefixedEngine {
    fn encrypt(&self, value: &str) -> Result<String, TokenError> {
        let invalid = TokenError::InvalidValue(self.kind);
        let numerals = self.numerals(value.as_bytes()).ok_or(invalid.clone())?;
        let version = self.ff1.active();
        let encrypted = (self.ff1)
            .encrypt(version, self.tweak.as_bytes(), numerals)
            .ok_or(invalid)?;
        let mut token = String::with_capacity(encrypted.len() + 1);
        token.push(version_char(version));
        token.extend(encrypted.iter().map(|&n| self.symbol(n)));
        Ok(token)
    }

    fn decrypt(&self, token: &str) -> Result<Detokenized, TokenError> {
        let (&version, rest) = token
            .as_bytes()
            .split_first()
            .ok_or(TokenError::NotAToken)?;
        if !(b'1'..=b'9').contains(&version) {
            return Err(TokenError::NotAToken);
        }
        let version = u32::from(version - b'0');
        let numerals = self.numerals(rest).ok_or(TokenError::NotAToken)?;
        // `None` also when the set no longer has the token's version.
        let decrypted = (self.ff1)
            .decrypt(version, self.tweak.as_bytes(), numerals)
            .ok_or(TokenError::NotAToken)?;
        Ok(Detokenized {
            value: decrypted.iter().map(|&n| self.symbol(n)).collect(),
            key_version: version,
        })
    }

    /// The numerals of `text` when it has an accepted length and only symbols of the alphabet.
    fn numerals(&self, text: &[u8]) -> Option<Vec<u16>> {
        if !self.lengths.contains(&text.len()) {
            return None;
        }
        text.iter()
            .map(|c| {
                let position = self.alphabet.iter().position(|a| a == c)?;
                Some(position as u16)
            })
            .collect()
    }

    /// The symbol of a numeral FF1 returned (always below the radix).
    fn symbol(&self, numeral: u16) -> char {
        char::from(self.alphabet[usize::from(numeral)])
    }
}

#[async_trait]
impl TokenEngine for PrefixedEngine {
    async fn tokenize(&self, value: &str) -> Result<String, TokenError> {
        self.encrypt(value)
    }

    async fn detokenize(&self, token: &str) -> Result<Detokenized, TokenError> {
        self.decrypt(token)
    }
}

/// Key versions are 1 to 9 (`keys::MAX_KEY_VERSION`): one decimal digit.
fn version_char(version: u32) -> char {
    char::from(b'0' + version as u8)
}
