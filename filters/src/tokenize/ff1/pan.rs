//! `kind = "pan"`: card numbers. The token has the PAN's length, shows `keep_first` and
//! `keep_last` digits in clear, and has the Luhn remainder the rule asks for; see the module
//! doc for the layout.

use std::ops::{Range, RangeInclusive};

use async_trait::async_trait;

use super::cipher::{Ff1, Tweak};
use super::config::Luhn;
use super::luhn;
use crate::tokenize::{Detokenized, TokenEngine, TokenError};

const NOT_A_PAN: TokenError = TokenError::InvalidValue("pan");

#[derive(Debug)]
pub(super) struct PanEngine {
    pub(super) ff1: Ff1,
    pub(super) tweak: Tweak,
    pub(super) keep_first: usize,
    pub(super) keep_last: usize,
    pub(super) luhn: Luhn,
    /// Accepted PAN (and so token) lengths, within 13..=19.
    pub(super) lengths: RangeInclusive<usize>,
}

impl PanEngine {
    fn encrypt(&self, value: &str) -> Result<String, TokenError> {
        let mut digits = self.digits(value).ok_or(NOT_A_PAN)?;
        // The digit before the kept last ones is not encrypted: the Luhn check of the PAN
        // gives it back on the way out, which frees its place for the token's Luhn digit.
        if luhn::remainder(&digits) != 0 {
            return Err(NOT_A_PAN);
        }
        let version = self.ff1.active();
        let hidden = self.hidden(digits.len());
        let encrypted = self
            .ff1
            .encrypt(
                version,
                &self.tweak(&digits),
                numerals(&digits[hidden.clone()]),
            )
            .ok_or(NOT_A_PAN)?;
        put(&mut digits[hidden.clone()], &encrypted);
        let remainder = match self.luhn {
            // Versions are 1 to 9: never 0, so the token never passes a Luhn check.
            Luhn::Invalid => version as u8,
            Luhn::Valid => 0,
        };
        luhn::solve(&mut digits, hidden.end, remainder);
        Ok(text(&digits))
    }

    fn decrypt(&self, token: &str) -> Result<Detokenized, TokenError> {
        let mut digits = self.digits(token).ok_or(TokenError::NotAToken)?;
        let version = match (self.luhn, luhn::remainder(&digits)) {
            (Luhn::Invalid, 0) => return Err(TokenError::NotAToken),
            (Luhn::Invalid, remainder) => u32::from(remainder),
            (Luhn::Valid, 0) => self.ff1.active(),
            (Luhn::Valid, _) => return Err(TokenError::NotAToken),
        };
        let hidden = self.hidden(digits.len());
        // `None` also when the set no longer has the token's version.
        let decrypted = self
            .ff1
            .decrypt(
                version,
                &self.tweak(&digits),
                numerals(&digits[hidden.clone()]),
            )
            .ok_or(TokenError::NotAToken)?;
        put(&mut digits[hidden.clone()], &decrypted);
        luhn::solve(&mut digits, hidden.end, 0);
        Ok(Detokenized {
            value: text(&digits),
            key_version: version,
        })
    }

    /// The digits of `text` (each 0 to 9) when it is all ASCII digits of an accepted length.
    fn digits(&self, text: &str) -> Option<Vec<u8>> {
        if !self.lengths.contains(&text.len()) {
            return None;
        }
        text.bytes()
            .map(|b| b.is_ascii_digit().then(|| b - b'0'))
            .collect()
    }

    /// Where the encrypted digits are in a PAN or token of `len` digits: after the kept first
    /// ones, up to the Luhn digit, which sits just before the kept last ones.
    fn hidden(&self, len: usize) -> Range<usize> {
        self.keep_first..len - self.keep_last - 1
    }

    /// The rule's tweak, then the digits shown in clear (a fixed count of each), so that
    /// equal hidden digits under different BINs or last fours give unrelated tokens.
    fn tweak(&self, digits: &[u8]) -> Vec<u8> {
        let last = digits.len() - self.keep_last;
        self.tweak
            .with(&[&digits[..self.keep_first], &digits[last..]])
    }
}

#[async_trait]
impl TokenEngine for PanEngine {
    async fn tokenize(&self, value: &str) -> Result<String, TokenError> {
        self.encrypt(value)
    }

    async fn detokenize(&self, token: &str) -> Result<Detokenized, TokenError> {
        self.decrypt(token)
    }
}

fn numerals(digits: &[u8]) -> Vec<u16> {
    digits.iter().map(|&d| u16::from(d)).collect()
}

/// Writes FF1's output (radix 10, so each numeral is a digit) over `digits`.
fn put(digits: &mut [u8], numerals: &[u16]) {
    for (digit, &numeral) in digits.iter_mut().zip(numerals) {
        *digit = numeral as u8;
    }
}

fn text(digits: &[u8]) -> String {
    digits.iter().map(|&d| char::from(b'0' + d)).collect()
}
