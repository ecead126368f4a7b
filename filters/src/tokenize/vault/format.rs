//! The kinds of value a vault rule holds, what a valid value of each looks like, and the
//! random tokens that stand for them.
//!
//! | kind | value | token |
//! | --- | --- | --- |
//! | `pan` | 13 to 19 digits, Luhn-valid | same length, last four kept, other digits random, Luhn-**invalid** |
//! | `iban` | 15 to 34 characters, electronic form (no spaces, upper case), valid check digits, at least 6 BBAN digits | same country and length, BBAN digits random (letters kept), valid check digits |
//! | `account` | 6 to 34 digits | same length, random digits |
//! | `string` | 1 to 256 bytes of UTF-8 | `tok_` and 22 base62 characters (131 random bits) |
//!
//! A PAN token is Luhn-invalid on purpose (PCI DSS wants tokens told apart from PANs): no
//! system downstream can take it for a card, and it never equals an `ff1` token made with
//! `luhn = "valid"` (`ff1`'s default tokens are Luhn-invalid too: the rule, not the token's
//! shape, says which engine made it). The same property lets `pan` refuse to tokenize a
//! token (a Luhn-invalid value) and lets detokenization refuse a real card (Luhn-valid)
//! without looking in the store; likewise `string` refuses values shaped like its tokens.
//! An IBAN or account token looks like any other IBAN or account number: a token is never
//! the value it stands for, but it may be someone else's real number, which is why tokens
//! only mean something to the vault.

use ring::rand::SecureRandom;

use super::MAX_VALUE_BYTES;
use crate::tokenize::ValueKind;

/// Prefix of `string` tokens.
const STRING_TOKEN_PREFIX: &str = "tok_";
/// Random base62 characters in a `string` token: 22 × log2(62) ≈ 131 bits.
const STRING_TOKEN_CHARS: usize = 22;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Fewest BBAN digits an IBAN must have: fewer would leave too few tokens to draw from.
const MIN_IBAN_DIGITS: usize = 6;

/// The system's random generator failed: nothing can be tokenized safely.
#[derive(Debug)]
pub(super) struct RandomFailed;

impl ValueKind {
    /// Whether `value` is a value of this kind that may be tokenized.
    pub(super) fn is_value(self, value: &str) -> bool {
        match self {
            ValueKind::Pan => is_pan_shaped(value) && luhn_valid(value.as_bytes()),
            ValueKind::Iban => is_iban(value),
            ValueKind::Account => is_account(value),
            ValueKind::String => {
                !value.is_empty() && value.len() <= MAX_VALUE_BYTES && !is_string_token(value)
            }
        }
    }

    /// Whether `token` has the shape of a token of this kind; anything else is not looked up.
    pub(super) fn is_token(self, token: &str) -> bool {
        match self {
            ValueKind::Pan => is_pan_shaped(token) && !luhn_valid(token.as_bytes()),
            ValueKind::Iban => is_iban(token),
            ValueKind::Account => is_account(token),
            ValueKind::String => is_string_token(token),
        }
    }

    /// A fresh random token for `value` (a value of this kind), never equal to it.
    pub(super) fn random_token(
        self,
        value: &str,
        rng: &dyn SecureRandom,
    ) -> Result<String, RandomFailed> {
        let mut draw = Draw::new(rng);
        loop {
            let token = match self {
                ValueKind::Pan => pan_token(value, &mut draw)?,
                ValueKind::Iban => iban_token(value, &mut draw)?,
                ValueKind::Account => {
                    let mut token = String::with_capacity(value.len());
                    for _ in 0..value.len() {
                        token.push(char::from(b'0' + draw.below(10)?));
                    }
                    token
                }
                ValueKind::String => {
                    let mut token = String::from(STRING_TOKEN_PREFIX);
                    for _ in 0..STRING_TOKEN_CHARS {
                        token.push(char::from(BASE62[usize::from(draw.below(62)?)]));
                    }
                    token
                }
            };
            // A token equal to its value would hand the value out; odds are 10^-len.
            if token != value {
                return Ok(token);
            }
        }
    }
}

fn is_pan_shaped(text: &str) -> bool {
    (13..=19).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit())
}

fn is_account(text: &str) -> bool {
    (6..=34).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit())
}

fn is_string_token(text: &str) -> bool {
    text.strip_prefix(STRING_TOKEN_PREFIX).is_some_and(|rest| {
        rest.len() == STRING_TOKEN_CHARS && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

/// Luhn (ISO/IEC 7812-1) over ASCII digits.
pub(super) fn luhn_valid(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 {
                    doubled - 9
                } else {
                    doubled
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Random digits but the last four, with the digit before them drawn again until the whole
/// is Luhn-invalid: exactly one of its ten values makes it valid, so the token is uniform
/// among the Luhn-invalid numbers ending in the same four digits.
fn pan_token(value: &str, draw: &mut Draw<'_>) -> Result<String, RandomFailed> {
    let mut digits = value.as_bytes().to_vec();
    let random = digits.len() - 4;
    for digit in &mut digits[..random] {
        *digit = b'0' + draw.below(10)?;
    }
    while luhn_valid(&digits) {
        digits[random - 1] = b'0' + draw.below(10)?;
    }
    Ok(digits.into_iter().map(char::from).collect())
}

/// Country code, check digits, then the BBAN: 15 to 34 upper-case ASCII letters and digits.
fn is_iban(text: &str) -> bool {
    let bytes = text.as_bytes();
    (15..=34).contains(&bytes.len())
        && bytes[..2].iter().all(u8::is_ascii_uppercase)
        && bytes[2..4].iter().all(u8::is_ascii_digit)
        && bytes[4..]
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        && bytes[4..].iter().filter(|b| b.is_ascii_digit()).count() >= MIN_IBAN_DIGITS
        && iban_remainder(&bytes[4..], &bytes[..4]) == 1
}

/// ISO 13616: the BBAN then the country code and check digits, letters as 10 to 35, mod 97.
fn iban_remainder(bban: &[u8], head: &[u8]) -> u32 {
    bban.iter().chain(head).fold(0, |acc, &b| {
        if b.is_ascii_digit() {
            (acc * 10 + u32::from(b - b'0')) % 97
        } else {
            (acc * 100 + u32::from(b - b'A') + 10) % 97
        }
    })
}

/// The value's country, its BBAN with every digit drawn at random, and the check digits
/// that make the result a valid IBAN.
fn iban_token(value: &str, draw: &mut Draw<'_>) -> Result<String, RandomFailed> {
    let mut bytes = value.as_bytes().to_vec();
    for b in &mut bytes[4..] {
        if b.is_ascii_digit() {
            *b = b'0' + draw.below(10)?;
        }
    }
    let check = 98 - iban_remainder(&bytes[4..], &[bytes[0], bytes[1], b'0', b'0']);
    // `check` is 1 to 98: two digits.
    bytes[2] = b'0' + (check / 10) as u8;
    bytes[3] = b'0' + (check % 10) as u8;
    Ok(bytes.into_iter().map(char::from).collect())
}

/// Uniform small numbers from the system CSPRNG, by rejection sampling over bytes, fetched
/// 64 at a time.
struct Draw<'a> {
    rng: &'a dyn SecureRandom,
    buf: [u8; 64],
    used: usize,
}

impl<'a> Draw<'a> {
    fn new(rng: &'a dyn SecureRandom) -> Self {
        Draw {
            rng,
            buf: [0; 64],
            used: 64,
        }
    }

    /// A number in `0..n` (`n` at most 256), each equally likely.
    fn below(&mut self, n: u16) -> Result<u8, RandomFailed> {
        // The largest multiple of n that fits a byte: bytes past it would bias the result.
        let limit = 256 - 256 % n;
        loop {
            if self.used == self.buf.len() {
                self.rng.fill(&mut self.buf).map_err(|_| RandomFailed)?;
                self.used = 0;
            }
            let b = u16::from(self.buf[self.used]);
            self.used += 1;
            if b < limit {
                return Ok((b % n) as u8);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;

    #[test]
    fn luhn_and_iban_checks() {
        assert!(luhn_valid(b"4111111111111111"));
        assert!(!luhn_valid(b"4111111111111112"));
        assert!(is_iban("DE89370400440532013000"));
        assert!(is_iban("GB82WEST12345698765432"));
        assert!(!is_iban("DE89370400440532013001"));
        assert!(!is_iban("de89370400440532013000"));
        assert!(!is_iban("DE89 3704 0044 0532 0130 00"));
    }

    #[test]
    fn values_and_tokens_by_kind() {
        assert!(ValueKind::Pan.is_value("4111111111111111"));
        assert!(!ValueKind::Pan.is_value("4111111111111112"));
        assert!(!ValueKind::Pan.is_value("41111111111"));
        assert!(!ValueKind::Pan.is_value("4111-1111-1111-1111"));
        assert!(ValueKind::Pan.is_token("4111111111111112"));
        assert!(!ValueKind::Pan.is_token("4111111111111111"));
        assert!(ValueKind::Account.is_value("000123"));
        assert!(!ValueKind::Account.is_value("12345"));
        assert!(ValueKind::String.is_value("any text, even ünicode"));
        assert!(!ValueKind::String.is_value(""));
        assert!(!ValueKind::String.is_value(&"x".repeat(MAX_VALUE_BYTES + 1)));
        assert!(!ValueKind::String.is_value("tok_0123456789abcdefghijKL"));
        assert!(ValueKind::String.is_token("tok_0123456789abcdefghijKL"));
        assert!(!ValueKind::String.is_token("tok_0123456789abcdefghijK"));
        assert!(!ValueKind::String.is_token("tok_0123456789abcdefghij-L"));
    }

    #[test]
    fn tokens_keep_the_format() {
        let rng = SystemRandom::new();
        for _ in 0..500 {
            let pan = "4111111111111111";
            let token = ValueKind::Pan.random_token(pan, &rng).unwrap();
            assert!(
                ValueKind::Pan.is_token(&token) && !ValueKind::Pan.is_value(&token),
                "{token}"
            );
            assert!(token.ends_with("1111") && token.len() == pan.len());

            let iban = "GB82WEST12345698765432";
            let token = ValueKind::Iban.random_token(iban, &rng).unwrap();
            assert!(is_iban(&token) && token != iban, "{token}");
            assert_eq!(&token[..2], "GB");
            assert_eq!(&token[4..8], "WEST");

            let token = ValueKind::Account.random_token("000123", &rng).unwrap();
            assert!(is_account(&token) && token.len() == 6 && token != "000123");

            let token = ValueKind::String.random_token("x", &rng).unwrap();
            assert!(ValueKind::String.is_token(&token), "{token}");
        }
    }

    #[test]
    fn draws_are_uniform_enough() {
        let rng = SystemRandom::new();
        let mut draw = Draw::new(&rng);
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            counts[usize::from(draw.below(10).unwrap())] += 1;
        }
        // Each digit expects 10,000; 600 is about six standard deviations.
        assert!(
            counts.iter().all(|&c| c.abs_diff(10_000) < 600),
            "{counts:?}"
        );
    }
}
