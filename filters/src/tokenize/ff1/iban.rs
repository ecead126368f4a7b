//! `kind = "iban"`: account numbers in IBAN electronic format (ISO 13616-1). The token keeps
//! the country, the length, and every letter of the BBAN in place; the BBAN's digits are
//! encrypted together with FF1 in radix 10, and the check digits are computed anew, so the
//! token is a valid IBAN of the same country and shape.

use async_trait::async_trait;

use super::cipher::{min_numerals, Ff1, Parts, Tweak};
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
        let mut split = Split::new(text)?;
        let (tweak, digits) = split.ff1_input(self.tweak.as_bytes());
        let version = self.ff1.active();
        if forwards {
            self.ff1.encrypt(version, &tweak, digits)
        } else {
            self.ff1.decrypt(version, &tweak, digits)
        }?;
        Some(split.into_iban())
    }

    /// The tokens of `values`, in order. The FF1 runs of the valid ones go side by side.
    fn encrypt_all(&self, values: &[&str]) -> Vec<Result<String, TokenError>> {
        let mut splits: Vec<Option<Split>> = values.iter().map(|value| Split::new(value)).collect();
        let mut work: Vec<_> = (splits.iter_mut().flatten())
            .map(|split| split.ff1_input(self.tweak.as_bytes()))
            .collect();
        let mut done = (self.ff1.encrypt_each(self.ff1.active(), &mut work)).into_iter();
        (splits.into_iter())
            .map(|split| {
                let split = split.ok_or(NOT_AN_IBAN)?;
                if !done.next().expect("a job per IBAN") {
                    return Err(NOT_AN_IBAN);
                }
                Ok(split.into_iban())
            })
            .collect()
    }
}

/// A valid IBAN taken apart for FF1.
struct Split {
    iban: [u8; MAX_LEN],
    len: usize,
    /// The BBAN's digits, read in order, and where each one is.
    digits: [u8; MAX_LEN],
    places: [u8; MAX_LEN],
    count: usize,
    /// The BBAN with its digits written `#`.
    mask: [u8; MAX_LEN],
}

impl Split {
    /// `None` when `text` is not a valid IBAN, or its BBAN has fewer digits than NIST's
    /// minimum domain needs (letters stay in clear, so the digits alone must give it).
    fn new(text: &str) -> Option<Split> {
        let iban = parse(text)?;
        let mut split = Split {
            iban,
            len: text.len(),
            digits: [0; MAX_LEN],
            places: [0; MAX_LEN],
            count: 0,
            mask: [0; MAX_LEN],
        };
        for (i, &c) in iban[..text.len()].iter().enumerate().skip(4) {
            if c.is_ascii_digit() {
                // At most 34 places: they fit a byte.
                (split.digits[split.count], split.places[split.count]) = (c - b'0', i as u8);
                split.count += 1;
            }
            split.mask[i - 4] = if c.is_ascii_digit() { b'#' } else { c };
        }
        (split.count >= min_numerals(10)).then_some(split)
    }

    /// The FF1 tweak, `rule` then the country and the masked BBAN (everything the token
    /// shows in clear: letters and where the digits are, the same for value and token), and
    /// the digits to run FF1 over.
    fn ff1_input<'a>(&'a mut self, rule: &'a [u8]) -> (Parts<'a>, &'a mut [u8]) {
        let tweak = [rule, &self.iban[..2], &self.mask[..self.len - 4]];
        (tweak, &mut self.digits[..self.count])
    }

    /// The IBAN with its digits as FF1 left them and its check digits made anew.
    fn into_iban(mut self) -> String {
        for (&place, &digit) in self.places[..self.count].iter().zip(&self.digits) {
            self.iban[usize::from(place)] = b'0' + digit;
        }
        let iban = &mut self.iban[..self.len];
        set_check_digits(iban);
        String::from_utf8(iban.to_vec()).expect("IBANs are ASCII")
    }
}

#[async_trait]
impl TokenEngine for IbanEngine {
    async fn tokenize(&self, value: &str) -> Result<String, TokenError> {
        self.convert(value, true).ok_or(NOT_AN_IBAN)
    }

    async fn tokenize_all(&self, values: &[&str]) -> Vec<Result<String, TokenError>> {
        self.encrypt_all(values)
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

/// The bytes of `text` (the first `text.len()`) when it is an IBAN in electronic format:
/// two capital letters, two check digits from 02 to 98, then capital letters and digits, at
/// most 34 in all, with the whole number ≡ 1 (mod 97). The country is not looked up in the
/// registry.
fn parse(text: &str) -> Option<[u8; MAX_LEN]> {
    let iban = text.as_bytes();
    let well_formed = (5..=MAX_LEN).contains(&iban.len())
        && iban[..2].iter().all(u8::is_ascii_uppercase)
        && iban[2..4].iter().all(u8::is_ascii_digit)
        && (*b"02"..=*b"98").contains(&[iban[2], iban[3]])
        && iban[4..]
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    if !well_formed || mod97(iban) != 1 {
        return None;
    }
    let mut bytes = [0; MAX_LEN];
    bytes[..iban.len()].copy_from_slice(iban);
    Some(bytes)
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
            assert_eq!(&parse(valid).unwrap()[..valid.len()], valid.as_bytes());
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
