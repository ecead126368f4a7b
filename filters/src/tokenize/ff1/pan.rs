//! `kind = "pan"`: card numbers. The token has the PAN's length, shows `keep_first` and
//! `keep_last` digits in clear, and has the Luhn remainder the rule asks for; see the module
//! doc for the layout.

use std::ops::RangeInclusive;

use async_trait::async_trait;

use super::cipher::{Ff1, Parts, Tweak};
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

/// Longest PAN (ISO/IEC 7812-1); config holds `lengths` within it.
const MAX_DIGITS: usize = 19;

impl PanEngine {
    /// The tokens of `values`, in order. The FF1 runs of the valid ones go side by side.
    fn encrypt_all(&self, values: &[&str]) -> Vec<Result<String, TokenError>> {
        let version = self.ff1.active();
        // Each value's digits, when it is a PAN. The digit before the kept last ones is not
        // encrypted: the Luhn check of the PAN gives it back on the way out, which frees its
        // place for the token's Luhn digit.
        let mut pans: Vec<Option<([u8; MAX_DIGITS], usize)>> = (values.iter())
            .map(|value| {
                let mut buffer = [0; MAX_DIGITS];
                let len = self.digits(value, &mut buffer)?.len();
                (luhn::remainder(&buffer[..len]) == 0).then_some((buffer, len))
            })
            .collect();
        let mut work: Vec<_> = (pans.iter_mut().flatten())
            .map(|(buffer, len)| self.split(&mut buffer[..*len]))
            .collect();
        let mut done = self.ff1.encrypt_each(version, &mut work).into_iter();
        let remainder = match self.luhn {
            // Versions are 1 to 9: never 0, so the token never passes a Luhn check.
            Luhn::Invalid => version as u8,
            Luhn::Valid => 0,
        };
        (pans.into_iter())
            .map(|pan| {
                let (mut buffer, len) = pan.ok_or(NOT_A_PAN)?;
                if !done.next().expect("a job per PAN") {
                    return Err(NOT_A_PAN);
                }
                let digits = &mut buffer[..len];
                luhn::solve(digits, self.luhn_digit(len), remainder);
                Ok(text(digits))
            })
            .collect()
    }

    fn decrypt(&self, token: &str) -> Result<Detokenized, TokenError> {
        let mut buffer = [0; MAX_DIGITS];
        let digits = (self.digits(token, &mut buffer)).ok_or(TokenError::NotAToken)?;
        let version = match (self.luhn, luhn::remainder(digits)) {
            (Luhn::Invalid, 0) => return Err(TokenError::NotAToken),
            (Luhn::Invalid, remainder) => u32::from(remainder),
            (Luhn::Valid, 0) => self.ff1.active(),
            (Luhn::Valid, _) => return Err(TokenError::NotAToken),
        };
        let (tweak, hidden) = self.split(digits);
        // `None` also when the set no longer has the token's version.
        (self.ff1)
            .decrypt(version, &tweak, hidden)
            .ok_or(TokenError::NotAToken)?;
        let luhn_digit = self.luhn_digit(digits.len());
        luhn::solve(digits, luhn_digit, 0);
        Ok(Detokenized {
            value: text(digits),
            key_version: version,
        })
    }

    /// The digits of `text` (each 0 to 9) in `buffer`, when it is all ASCII digits of an
    /// accepted length.
    fn digits<'b>(&self, text: &str, buffer: &'b mut [u8; MAX_DIGITS]) -> Option<&'b mut [u8]> {
        if !self.lengths.contains(&text.len()) {
            return None;
        }
        let digits = buffer.get_mut(..text.len())?;
        for (digit, byte) in digits.iter_mut().zip(text.bytes()) {
            *digit = byte.wrapping_sub(b'0');
            if *digit > 9 {
                return None;
            }
        }
        Some(digits)
    }

    /// The FF1 tweak of a PAN or token, and its encrypted digits, which sit after the kept
    /// first ones and up to the Luhn digit. The tweak is the rule's, then the digits shown in
    /// clear (a fixed count of each), so that equal hidden digits under different BINs or
    /// last fours give unrelated tokens.
    fn split<'d>(&'d self, digits: &'d mut [u8]) -> (Parts<'d>, &'d mut [u8]) {
        let luhn_digit = self.luhn_digit(digits.len());
        let (first, rest) = digits.split_at_mut(self.keep_first);
        let (hidden, rest) = rest.split_at_mut(luhn_digit - self.keep_first);
        ([self.tweak.as_bytes(), first, &rest[1..]], hidden)
    }

    /// Where the Luhn digit is in a PAN or token of `len` digits: just before the kept last
    /// ones.
    fn luhn_digit(&self, len: usize) -> usize {
        len - self.keep_last - 1
    }
}

#[async_trait]
impl TokenEngine for PanEngine {
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

fn text(digits: &[u8]) -> String {
    let ascii = digits.iter().map(|&d| b'0' + d).collect();
    String::from_utf8(ascii).expect("digits are ASCII")
}
