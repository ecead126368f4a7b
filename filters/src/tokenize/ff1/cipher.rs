//! FF1 (NIST SP 800-38G) over AES-256, from the `fpe` crate, with one cipher per key version;
//! and the tweaks that bind a rule's tokens to the rule and the value kind.

use std::fmt;

use aes::Aes256;
use fpe::ff1::{FlexibleNumeralString, FF1};

use crate::tokenize::keys::{KeySet, MAX_KEY_VERSION};
use crate::BuildError;

/// The smallest domain NIST SP 800-38G (revision 1) allows FF1: radix^length ≥ 10^6.
const NIST_MIN_DOMAIN: u64 = 1_000_000;

/// The fewest numerals of `radix` whose domain meets NIST's minimum (6 digits, 4 base-36 or
/// base-62 characters). `fpe` refuses shorter inputs too; callers check first, to answer
/// with their own error.
pub(super) fn min_numerals(radix: u32) -> usize {
    let (mut numerals, mut domain) = (1, u64::from(radix));
    while domain < NIST_MIN_DOMAIN {
        domain *= u64::from(radix);
        numerals += 1;
    }
    numerals
}

/// FF1-AES-256 in one radix, one cipher per version of a key set. Keys are expanded once,
/// at build; `aes` wipes the key schedules when they are dropped.
pub(super) struct Ff1 {
    radix: u32,
    active: u32,
    /// Indexed by key version; `None` for versions the set does not have.
    ciphers: Vec<Option<FF1<Aes256>>>,
}

impl Ff1 {
    pub(super) fn new(keys: &KeySet, radix: u32) -> Result<Ff1, BuildError> {
        let ciphers = (0..=MAX_KEY_VERSION)
            .map(|version| {
                keys.get(version)
                    .map(|key| FF1::<Aes256>::new(key, radix))
                    .transpose()
            })
            .collect::<Result<_, _>>()
            .map_err(|e| BuildError(format!("ff1: {e}")))?;
        Ok(Ff1 {
            radix,
            active: keys.active().0,
            ciphers,
        })
    }

    /// The version that makes new tokens.
    pub(super) fn active(&self) -> u32 {
        self.active
    }

    /// `numerals` (each below the radix) encrypted with `version`'s key. `None` when the set
    /// has no such version, or when FF1 refuses the input: a numeral out of the radix, or a
    /// domain under NIST's minimum (callers rule out both first).
    pub(super) fn encrypt(
        &self,
        version: u32,
        tweak: &[u8],
        numerals: Vec<u16>,
    ) -> Option<Vec<u16>> {
        let ff1 = self.cipher(version)?;
        let ns = FlexibleNumeralString::from(numerals);
        ff1.encrypt(tweak, &ns).ok().map(Vec::from)
    }

    /// [`Ff1::encrypt`] undone.
    pub(super) fn decrypt(
        &self,
        version: u32,
        tweak: &[u8],
        numerals: Vec<u16>,
    ) -> Option<Vec<u16>> {
        let ff1 = self.cipher(version)?;
        let ns = FlexibleNumeralString::from(numerals);
        ff1.decrypt(tweak, &ns).ok().map(Vec::from)
    }

    fn cipher(&self, version: u32) -> Option<&FF1<Aes256>> {
        self.ciphers.get(usize::try_from(version).ok()?)?.as_ref()
    }
}

// Shows which versions are loaded, never key material.
impl fmt::Debug for Ff1 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let versions: Vec<usize> = (self.ciphers.iter().enumerate())
            .filter_map(|(version, cipher)| cipher.as_ref().map(|_| version))
            .collect();
        f.debug_struct("Ff1")
            .field("radix", &self.radix)
            .field("active", &self.active)
            .field("versions", &versions)
            .finish()
    }
}

/// The start of every FF1 tweak of one rule: a domain separator naming the engine and the
/// value kind, then the rule's tweak with its length in front. Kinds never share tweaks, and
/// the length prefix keeps (rule tweak, context) pairs from running into one another.
pub(super) struct Tweak(Vec<u8>);

impl Tweak {
    pub(super) fn new(kind: &str, rule_tweak: &str) -> Tweak {
        let mut bytes = format!("corridor/ff1/{kind}\0").into_bytes();
        // Config checks hold rule tweaks to a few hundred bytes.
        bytes.extend_from_slice(&(rule_tweak.len() as u32).to_be_bytes());
        bytes.extend_from_slice(rule_tweak.as_bytes());
        Tweak(bytes)
    }

    /// The tweak alone, for kinds whose tokens show nothing of the value in clear.
    pub(super) fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The tweak followed by `context`: what the token shows of the value in clear (kept
    /// digits, an IBAN's country and letters). Values that differ only there get unrelated
    /// encryptions; each kind lays its context out so that its parts are unambiguous.
    pub(super) fn with(&self, context: &[&[u8]]) -> Vec<u8> {
        let mut bytes = self.0.clone();
        for part in context {
            bytes.extend_from_slice(part);
        }
        bytes
    }
}

// The rule tweak is not secret, but it names partners: logs need only its size.
impl fmt::Debug for Tweak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tweak({} bytes)", self.0.len())
    }
}
