//! `kind = "iban"`: account numbers in IBAN electronic format (ISO 13616-1). The token keeps
//! the country, the length, and every letter of the BBAN in place; the BBAN's digits are
//! encrypted together with FF1 in radix 10, and the check digits are computed anew, so the
//! token is a valid IBAN of the same country and shape.

use async_trait::async_trait;

use super::cipher::{min_numerals, Ff1, Tweak};
use crate::tokenize::{Detokenized, TokenEngine, TokenError};

const NOT_AN_IBAN: TokenError = TokenError::InvalidValue("iban");

/// Longest IBAN (ISO 13616-1): country, check digits and at most 30 BBAN characters.
const MAX_LEN: usize = 34;

#[derive(Debug)]
pub(super) struct IbanEngine {
    pub(super) ff1: Ff1,
    pub(super) tweak: Tweak,
}

impl IbanEngine {
    /// Both ways are the same steps with FF1 run forwards or backwards: the input must be a
    /// valid IBAN, and so is the output.
    fn convert(&self, text: &str, forwards: bool) -> Option<String> {
        let mut iban = parse(text)?;
        let digits: Vec<usize> = (4..iban.len())
            .filter(|&i| iban[i].is_ascii_digit())
            .collect();
        // Letters stay in clear, so the BBAN's digits alone must give NIST's minimum domain.
        if digits.len() < min_numerals(10) {
            return None;
        }
        let numerals = digits.iter().map(|&i| u16::from(iban[i] - b'0')).collect();
        let tweak = self.tweak(&iban);
        let version = self.ff1.active();
        let converted = if forwards {
            self.ff1.encrypt(version, &tweak, numerals)
        } else {
            self.ff1.decrypt(version, &tweak, numerals)
        }?;
        for (&i, numeral) in digits.iter().zip(converted) {
            iban[i] = b'0' + numeral as u8;
        }
        set_check_digits(&mut iban);
        Some(iban.into_iter().map(char::from).collect())
    }

    /// The rule's tweak, then the country and the BBAN with its digits masked: everything the
    /// token shows in clear (letters and where the digits are), the same for value and token.
    fn tweak(&self, iban: &[u8]) -> Vec<u8> {
        let mask: Vec<u8> = iban[4..]
            .iter()
            .map(|&c| if c.is_ascii_digit() { b'#' } else { c })
            .collect();
        self.tweak.with(&[&iban[..2], &mask])
    }
}

#[async_trait]
impl TokenEngine for IbanEngine {
    async fn tokenize(&self, value: &str) -> Result<String, TokenError> {
        self.convert(value, true).ok_or(NOT_AN_IBAN)
    }

    async fn detokenize(&self, token: &str) -> Result<Detokenized, TokenError> {
        let value = self.convert(token, false).ok_or(TokenError::NotAToken)?;
        Ok(Detokenized {
            value,
            // IBAN tokens carry no version: the set has exactly one (config checks).
            key_version: self.ff1.active(),
        })
    }
}

/// The bytes of `text` when it is an IBAN in electronic format: two capital letters, two
/// check digits from 02 to 98, then capital letters and digits, at most 34 in all, with
/// the whole number ≡ 1 (mod 97). The country is not looked up in the registry.
fn parse(text: &str) -> Option<Vec<u8>> {
    let iban = text.as_bytes();
    let well_formed = (5..=MAX_LEN).contains(&iban.len())
        && iban[..2].iter().all(u8::is_ascii_uppercase)
        && iban[2..4].iter().all(u8::is_ascii_digit)
        && (*b"02"..=*b"98").contains(&[iban[2], iban[3]])
        && iban[4..]
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    (well_formed && mod97(iban) == 1).then(|| iban.to_vec())
}

/// The IBAN's number modulo 97: the BBAN, then country and check digits, each letter read as
/// the two digits of 10 (A) to 35 (Z).
fn mod97(iban: &[u8]) -> u32 {
    iban[4..].iter().chain(&iban[..4]).fold(0, |rest, &c| {
        if c.is_ascii_digit() {
            (rest * 10 + u32::from(c - b'0')) % 97
        } else {
            (rest * 100 + u32::from(c - b'A') + 10) % 97
        }
    })
}

/// Sets the check digits to the ones that make `iban` valid (ISO 7064 MOD 97-10).
fn set_check_digits(iban: &mut [u8]) {
    iban[2..4].copy_from_slice(b"00");
    let check = 98 - mod97(iban);
    iban[2] = b'0' + (check / 10) as u8;
    iban[3] = b'0' + (check % 10) as u8;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_ibans_only() {
        for valid in [
            "DE89370400440532013000",
            "GB29NWBK60161331926819",
            "FR1420041010050500013M02606",
            "NL91ABNA0417164300",
            "NO9386011117947",
        ] {
            assert!(parse(valid).is_some(), "{valid}");
            let mut recomputed = valid.as_bytes().to_vec();
            set_check_digits(&mut recomputed);
            assert_eq!(recomputed, valid.as_bytes());
        }
        for invalid in [
            "DE88370400440532013000",      // check digits
            "de89370400440532013000",      // lower case
            "DE89 3704 0044 0532 0130 00", // spaces
            "D189370400440532013000",      // country
            "DE8937040044053201300",       // one digit short
            "GB29NWBK6016133192681900000000000000",
            "DE8",
            "",
        ] {
            assert!(parse(invalid).is_none(), "{invalid}");
        }
    }

    #[test]
    fn refuses_check_digits_outside_02_to_98() {
        // 00 ≡ 97, 01 ≡ 98 and 99 ≡ 02 (mod 97): such twins pass the arithmetic, not ISO 13616.
        let mut twins = 0;
        for n in 0..1000 {
            let mut iban = format!("DE00{n:06}").into_bytes();
            set_check_digits(&mut iban);
            assert!(parse(std::str::from_utf8(&iban).unwrap()).is_some());
            let twin: &[u8; 2] = match &iban[2..4] {
                b"97" => b"00",
                b"98" => b"01",
                b"02" => b"99",
                _ => continue,
            };
            iban[2..4].copy_from_slice(twin);
            assert_eq!(mod97(&iban), 1);
            assert!(parse(std::str::from_utf8(&iban).unwrap()).is_none());
            twins += 1;
        }
        assert!(twins > 0);
    }
}
