//! `kind = "account"` and `kind = "string"`: the whole value encrypted with FF1 in its
//! alphabet (digits for accounts), behind one character, `1` to `9`, naming the key version.
//! The token is one character longer than the value.

use std::ops::RangeInclusive;

use async_trait::async_trait;

use super::cipher::{Ff1, Parts, Tweak};
use super::config::MAX_VALUE_LENGTH;
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
    /// The tokens of `values`, in order. The FF1 runs of the valid ones go side by side.
    fn encrypt_all(&self, values: &[&str]) -> Vec<Result<String, TokenError>> {
        let invalid = TokenError::InvalidValue(self.kind);
        let version = self.ff1.active();
        let mut buffers: Vec<Option<([u8; MAX_VALUE_LENGTH], usize)>> = (values.iter())
            .map(|value| {
                let mut buffer = [0; MAX_VALUE_LENGTH];
                let len = self.numerals(value.as_bytes(), &mut buffer)?.len();
                Some((buffer, len))
            })
            .collect();
        let tweak: Parts<'_> = [self.tweak.as_bytes(), &[], &[]];
        let mut work: Vec<_> = (buffers.iter_mut().flatten())
            .map(|(buffer, len)| (tweak, &mut buffer[..*len]))
            .collect();
        let mut done = self.ff1.encrypt_each(version, &mut work).into_iter();
        (buffers.into_iter())
            .map(|buffer| {
                let (buffer, len) = buffer.ok_or(invalid.clone())?;
                if !done.next().expect("a job per value") {
                    return Err(invalid.clone());
                }
                let mut token = Vec::with_capacity(len + 1);
                token.push(version_digit(version));
                token.extend(buffer[..len].iter().map(|&n| self.symbol(n)));
                Ok(ascii(token))
            })
            .collect()
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
        let mut buffer = [0; MAX_VALUE_LENGTH];
        let numerals = (self.numerals(rest, &mut buffer)).ok_or(TokenError::NotAToken)?;
        // `None` also when the set no longer has the token's version.
        (self.ff1)
            .decrypt(version, &[self.tweak.as_bytes()], numerals)
            .ok_or(TokenError::NotAToken)?;
        Ok(Detokenized {
            value: ascii(numerals.iter().map(|&n| self.symbol(n)).collect()),
            key_version: version,
        })
    }

    /// The numerals of `text` in `buffer`, when it has an accepted length and only symbols
    /// of the alphabet.
    fn numerals<'b>(
        &self,
        text: &[u8],
        buffer: &'b mut [u8; MAX_VALUE_LENGTH],
    ) -> Option<&'b mut [u8]> {
        if !self.lengths.contains(&text.len()) {
            return None;
        }
        let numerals = buffer.get_mut(..text.len())?;
        for (numeral, c) in numerals.iter_mut().zip(text) {
            // At most 62 symbols: the position fits a byte.
            *numeral = self.alphabet.iter().position(|a| a == c)? as u8;
        }
        Some(numerals)
    }

    /// The symbol of a numeral FF1 returned (always below the radix).
    fn symbol(&self, numeral: u8) -> u8 {
        self.alphabet[usize::from(numeral)]
    }
}

#[async_trait]
impl TokenEngine for PrefixedEngine {
    async fn tokenize(&self, value: &str) -> Result<String, TokenError> {
        let mut tokens = self.encrypt_all(&[value]);
        tokens.pop().expect("a token per value")
    }

    async fn tokenize_all(&self, values: &[&str]) -> Vec<Result<String, TokenError>> {
        self.encrypt_all(values)
    }

    async fn detokenize(&self, token: &str) -> Result<Detokenized, TokenError> {
        self.decrypt(token)
    }
}

/// Key versions are 1 to 9 (`keys::MAX_KEY_VERSION`): one decimal digit.
fn version_digit(version: u32) -> u8 {
    b'0' + version as u8
}

/// Symbols of an alphabet and version digits, as text.
fn ascii(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).expect("alphabets are ASCII")
}
