//! `ff1`: vaultless tokenization. A token is the value encrypted with FF1 (NIST SP 800-38G,
//! over AES-256; `fixed.rs` says why it is hand-written and how it is checked) in the
//! value's own alphabet: it keeps the value's shape and turns back into the value with the
//! key alone, with no store to keep or replicate. Tokens are deterministic: the same value,
//! tweak and key version always give the same token.
//!
//! ```toml
//! kind = "pan"                # "pan", "iban", "account" or "string"
//! tweak = "partner-acme"      # required: binds the tokens to the rule (one per partner)
//! keys = { active = 2, versions = [
//!   { version = 1, file = "keys/pan-v1.key" },
//!   { version = 2, env = "CORRIDOR_PAN_KEY_V2" },
//! ] }
//! keep_first = 0              # pan: 0 (default) or 6 leading digits in clear
//! keep_last = 4               # pan: 4 (default) or 0 trailing digits in clear
//! luhn = "invalid"            # pan: "invalid" (default) or "valid"
//! min_length = 13             # pan, account, string (defaults 13, 6, the NIST minimum)
//! max_length = 19             # pan, account, string (defaults 19, 20, 64)
//! # alphabet = "alphanumeric" # string: "digits", "upper_alphanumeric" or "alphanumeric"
//! ```
//!
//! # Tokens
//!
//! The FF1 tweak is `corridor/ff1/<kind>`, a zero byte, the rule's `tweak` (its length in
//! four bytes, big-endian, then its bytes), then what the token shows of the value in
//! clear, as said below. Kinds, rules and values differing only in their visible part
//! therefore never share an encryption.
//!
//! **pan**: 13 to 19 digits that pass the Luhn check. The token has the same length L:
//!
//! ```text
//! [keep_first digits][FF1 radix 10: L - keep_first - keep_last - 1 digits][Luhn digit][keep_last digits]
//! ```
//!
//! The PAN's own digit in the Luhn digit's place is not encrypted: the PAN's Luhn check gives
//! it back. In the token that place holds the one digit that sets the token's Luhn remainder
//! (its Luhn sum mod 10). With `luhn = "invalid"` the remainder *is the key version*, 1 to 9:
//! no token passes the Luhn check, and detokenizing reads the version from it (remainder 0,
//! a real card number, is not a token). With `luhn = "valid"` the remainder is 0 and the
//! token carries no version. The tweak's visible part is the kept first digits, then the
//! kept last ones. NIST SP 800-38G wants a domain of at least 10^6, so the shortest PAN
//! accepted must leave 6 digits to encrypt: `min_length ≥ keep_first + keep_last + 7`,
//! checked at build (BIN and last four need PANs of 17 digits or more).
//!
//! **iban**: `CCkkBBAN` in electronic format (capitals and digits, no spaces). The token keeps
//! the country `CC`, the length, and every letter of the BBAN in its place (IBAN letters
//! name the bank, as a BIN does). The BBAN's digits, read in order, are encrypted as one
//! FF1 radix-10 string, and the check digits `kk` are computed anew: the token is a valid
//! IBAN of the same country and shape. The tweak's visible part is the country, then the
//! BBAN with each digit written `#`. An IBAN with fewer than 6 digits in its BBAN (a domain
//! under 10^6) is refused as an invalid value when it comes: lengths are per country, so the
//! build cannot check them. The token carries no version.
//!
//! **account** and **string**: `[version][FF1 of the whole value]`, the version being one
//! character, `1` to `9`. The token is one character longer than the value. Accounts are
//! digits (radix 10); strings are in their alphabet (radix 10, 36 or 62).
//!
//! # Key versions and rotation
//!
//! When the token carries its version (pan with `luhn = "invalid"`, account, string),
//! rotating is adding version 2 and making it active: new tokens use it, and tokens of
//! version 1 still detokenize (reporting `key_version` 1) while the set keeps version 1.
//! Once it is removed, its tokens are [`TokenError::NotAToken`](crate::tokenize::TokenError).
//!
//! Why not in every token: a token of the value's length and alphabet has exactly as many
//! possible values as the value, so a version needs room that only redundancy in the value
//! can give. A PAN has one redundant digit, its Luhn check, which leaves a Luhn-invalid
//! token nine remainders to spare: just the nine versions. A Luhn-valid token spends it on
//! its own check, and an IBAN token spends the IBAN's check digits on its own. Those rules
//! take a key set of exactly one version, and rotating its key changes every token.
//! Accounts and strings have no redundancy, so their tokens grow by the version character.

mod cipher;
mod config;
mod fixed;
mod iban;
mod luhn;
mod pan;
mod prefixed;

#[cfg(test)]
mod tests;

pub use crate::tokenize::ValueKind;
pub use config::{Alphabet, Ff1Config, Luhn};
