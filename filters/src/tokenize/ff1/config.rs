//! The `ff1` engine's options, their checks, and the engine they build.

use std::ops::RangeInclusive;
use std::sync::Arc;

use serde::Deserialize;

use super::cipher::{min_numerals, Ff1, Tweak};
use super::iban::IbanEngine;
use super::pan::PanEngine;
use super::prefixed::PrefixedEngine;
use crate::tokenize::{KeySet, KeySetConfig, TokenEngine, ValueKind};
use crate::{BuildContext, BuildError};

/// Longest rule tweak, in bytes: FF1 hashes the tweak on every call.
const MAX_TWEAK_BYTES: usize = 256;

/// Longest account or string value: FF1's cost grows with the square of the length.
pub(super) const MAX_VALUE_LENGTH: usize = 128;

/// PAN lengths (ISO/IEC 7812-1).
const PAN_LENGTHS: RangeInclusive<usize> = 13..=19;

/// Options of the `ff1` engine for one rule. Options that do not apply to the rule's `kind`
/// are refused.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Ff1Config {
    /// What the values are.
    pub kind: ValueKind,
    /// The AES-256 keys, by version.
    pub keys: KeySetConfig,
    /// Binds the tokens to the rule: the same value gives unrelated tokens under different
    /// tweaks. Set it per partner (e.g. the partner's id), so that partners cannot join their
    /// data on tokens; the detokenizing rule needs the same. Required, so that sharing tokens
    /// is a decision: `""` gives the same tokens as every other rule with `""`, the same
    /// keys and kind. At most 256 bytes.
    pub tweak: String,
    /// pan: leading digits shown in clear, 0 (the default) or 6 (the issuer's BIN).
    pub keep_first: Option<usize>,
    /// pan: trailing digits shown in clear, 4 (the default) or 0.
    pub keep_last: Option<usize>,
    /// pan: the Luhn check of the tokens, `invalid` (the default) or `valid`.
    pub luhn: Option<Luhn>,
    /// pan, account, string: shortest value accepted. Defaults: pan 13, account 6, string
    /// the fewest characters NIST allows for the alphabet (4, or 6 for digits).
    pub min_length: Option<usize>,
    /// pan, account, string: longest value accepted. Defaults: pan 19, account 20, string 64;
    /// at most 19 for PANs, 128 otherwise.
    pub max_length: Option<usize>,
    /// string: the characters of values and tokens, `alphanumeric` (the default).
    pub alphabet: Option<Alphabet>,
}

/// The Luhn check of PAN tokens.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Luhn {
    /// Tokens fail the Luhn check, so no token can be taken for a card number (PCI DSS
    /// asks that tokens be told apart from PANs), and a real PAN sent to be detokenized is
    /// refused. Their Luhn remainder carries the key version.
    #[default]
    Invalid,
    /// Tokens pass the Luhn check, for partners whose systems validate card numbers. Such a
    /// token has no room for a key version: the key set must have exactly one.
    Valid,
}

/// Characters of `string` values and tokens.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Alphabet {
    /// `0-9`: FF1 radix 10.
    Digits,
    /// `0-9A-Z`: FF1 radix 36.
    UpperAlphanumeric,
    /// `0-9A-Za-z`, case-sensitive: FF1 radix 62.
    #[default]
    Alphanumeric,
}

impl Alphabet {
    /// The symbols, numeral 0 first.
    fn symbols(self) -> &'static [u8] {
        match self {
            Alphabet::Digits => b"0123456789",
            Alphabet::UpperAlphanumeric => b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ",
            Alphabet::Alphanumeric => {
                b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
            }
        }
    }

    fn radix(self) -> u32 {
        self.symbols().len() as u32
    }

    fn name(self) -> &'static str {
        match self {
            Alphabet::Digits => "digits",
            Alphabet::UpperAlphanumeric => "upper_alphanumeric",
            Alphabet::Alphanumeric => "alphanumeric",
        }
    }
}

/// A checked config, defaults filled in.
enum Layout {
    Pan {
        keep_first: usize,
        keep_last: usize,
        luhn: Luhn,
        lengths: RangeInclusive<usize>,
    },
    Iban,
    Prefixed {
        alphabet: Alphabet,
        lengths: RangeInclusive<usize>,
    },
}

impl Ff1Config {
    /// Checks the options (every problem at once), loads the keys, and builds the engine.
    pub fn build(&self, ctx: &BuildContext) -> Result<Arc<dyn TokenEngine>, BuildError> {
        let layout = self.check()?;
        let keys = KeySet::load(&self.keys, ctx)?;
        let tweak = Tweak::new(self.kind.as_str(), &self.tweak);
        Ok(match layout {
            Layout::Pan {
                keep_first,
                keep_last,
                luhn,
                lengths,
            } => Arc::new(PanEngine {
                ff1: Ff1::new(&keys, 10)?,
                tweak,
                keep_first,
                keep_last,
                luhn,
                lengths,
            }),
            Layout::Iban => Arc::new(IbanEngine {
                ff1: Ff1::new(&keys, 10)?,
                tweak,
            }),
            Layout::Prefixed { alphabet, lengths } => Arc::new(PrefixedEngine {
                ff1: Ff1::new(&keys, alphabet.radix())?,
                tweak,
                alphabet: alphabet.symbols(),
                lengths,
                kind: self.kind.as_str(),
            }),
        })
    }

    fn check(&self) -> Result<Layout, BuildError> {
        let mut errors = Vec::new();
        let kind = self.kind;
        if self.tweak.len() > MAX_TWEAK_BYTES {
            errors.push(format!("tweak: at most {MAX_TWEAK_BYTES} bytes"));
        }
        use ValueKind as K;
        let lengths = &[K::Pan, K::Account, K::String][..];
        for (option, set, kinds) in [
            ("keep_first", self.keep_first.is_some(), &[K::Pan][..]),
            ("keep_last", self.keep_last.is_some(), &[K::Pan]),
            ("luhn", self.luhn.is_some(), &[K::Pan]),
            ("min_length", self.min_length.is_some(), lengths),
            ("max_length", self.max_length.is_some(), lengths),
            ("alphabet", self.alphabet.is_some(), &[K::String]),
        ] {
            if set && !kinds.contains(&kind) {
                errors.push(format!(
                    "{option} does not apply to kind = \"{}\"",
                    kind.as_str()
                ));
            }
        }
        let layout = match kind {
            ValueKind::Pan => self.check_pan(&mut errors),
            ValueKind::Iban => {
                self.one_key_version("kind = \"iban\"", &mut errors);
                Layout::Iban
            }
            ValueKind::Account => {
                let lengths = self.check_lengths(Alphabet::Digits, 6, 20, &mut errors);
                Layout::Prefixed {
                    alphabet: Alphabet::Digits,
                    lengths,
                }
            }
            ValueKind::String => {
                let alphabet = self.alphabet.unwrap_or_default();
                let min = min_numerals(alphabet.radix());
                let lengths = self.check_lengths(alphabet, min, 64, &mut errors);
                Layout::Prefixed { alphabet, lengths }
            }
        };
        if errors.is_empty() {
            Ok(layout)
        } else {
            Err(BuildError(errors.join("; ")))
        }
    }

    fn check_pan(&self, errors: &mut Vec<String>) -> Layout {
        let keep_first = self.keep_first.unwrap_or(0);
        let keep_last = self.keep_last.unwrap_or(4);
        let luhn = self.luhn.unwrap_or_default();
        let (min, max) = (
            self.min_length.unwrap_or(*PAN_LENGTHS.start()),
            self.max_length.unwrap_or(*PAN_LENGTHS.end()),
        );
        let kept_ok = [0, 6].contains(&keep_first) && [0, 4].contains(&keep_last);
        if ![0, 6].contains(&keep_first) {
            errors.push(format!("keep_first must be 0 or 6, not {keep_first}"));
        }
        if ![0, 4].contains(&keep_last) {
            errors.push(format!("keep_last must be 0 or 4, not {keep_last}"));
        }
        for (option, length) in [("min_length", min), ("max_length", max)] {
            if !PAN_LENGTHS.contains(&length) {
                errors.push(format!("{option} = {length}: PANs have 13 to 19 digits"));
            }
        }
        if min > max {
            errors.push(format!(
                "min_length = {min} is more than max_length = {max}"
            ));
        }
        // Every digit not kept is encrypted but one, the Luhn digit (module doc).
        let encrypted = min.saturating_sub(keep_first + keep_last + 1);
        let needed = min_numerals(10);
        if kept_ok && PAN_LENGTHS.contains(&min) && encrypted < needed {
            errors.push(format!(
                "keep_first = {keep_first} with keep_last = {keep_last} leaves 10^{encrypted} \
                 values for a {min}-digit PAN (one more digit is the Luhn digit); NIST SP \
                 800-38G needs at least 10^6: raise min_length to {} or keep fewer digits",
                keep_first + keep_last + 1 + needed
            ));
        }
        if luhn == Luhn::Valid {
            self.one_key_version("luhn = \"valid\"", errors);
        }
        Layout::Pan {
            keep_first,
            keep_last,
            luhn,
            lengths: min..=max,
        }
    }

    /// `min_length..=max_length` of accounts and strings, defaults filled in.
    fn check_lengths(
        &self,
        alphabet: Alphabet,
        default_min: usize,
        default_max: usize,
        errors: &mut Vec<String>,
    ) -> RangeInclusive<usize> {
        let min = self.min_length.unwrap_or(default_min);
        let max = self.max_length.unwrap_or(default_max);
        let needed = min_numerals(alphabet.radix());
        if min < needed {
            errors.push(format!(
                "min_length = {min} leaves {}^{min} values with the {} alphabet; NIST SP \
                 800-38G needs at least 10^6: min_length must be at least {needed}",
                alphabet.radix(),
                alphabet.name(),
            ));
        }
        if max > MAX_VALUE_LENGTH {
            errors.push(format!("max_length = {max}: at most {MAX_VALUE_LENGTH}"));
        }
        if min > max {
            errors.push(format!(
                "min_length = {min} is more than max_length = {max}"
            ));
        }
        min..=max
    }

    /// Tokens that keep every character of the value's format have as many possible values
    /// as the values themselves: none is left to name a key version, so the set must have
    /// one. With two, a token made under the other key would decrypt to a wrong value, and
    /// nothing in it would tell.
    fn one_key_version(&self, what: &str, errors: &mut Vec<String>) {
        if self.keys.versions.len() != 1 {
            errors.push(format!(
                "{what} tokens have no room for a key version: keys must list exactly one \
                 version (rotating the key changes every token)"
            ));
        }
    }
}
