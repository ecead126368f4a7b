//! FF1 (NIST SP 800-38G) over AES-256, one cipher per key version: the hand-written
//! fixed-width FF1 of `fixed.rs` for inputs whose halves fit in a `u64` (every PAN and IBAN),
//! the `fpe` crate for longer ones; and the tweaks that bind a rule's tokens to the rule and
//! the value kind.

use std::fmt;

use aes::Aes256;
use fpe::ff1::{FlexibleNumeralString, FF1};

use super::fixed::{Direction, FixedFf1, Run, BATCH};
use crate::tokenize::keys::{KeySet, MAX_KEY_VERSION};
use crate::BuildError;

/// The smallest domain NIST SP 800-38G (revision 1) allows FF1: radix^length ≥ 10^6.
const NIST_MIN_DOMAIN: u64 = 1_000_000;

/// The fewest numerals of `radix` whose domain meets NIST's minimum (6 digits, 4 base-36 or
/// base-62 characters). Shorter inputs are refused; callers check first, to answer with
/// their own error.
pub(super) fn min_numerals(radix: u32) -> usize {
    let (mut numerals, mut domain) = (1, u64::from(radix));
    while domain < NIST_MIN_DOMAIN {
        domain *= u64::from(radix);
        numerals += 1;
    }
    numerals
}

/// FF1-AES-256 in one radix (10, 36 or 62 here), one cipher per version of a key set. Keys
/// are expanded once, at build; `aes` wipes the key schedules when they are dropped.
pub(super) struct Ff1 {
    radix: u32,
    active: u32,
    /// Indexed by key version; `None` for versions the set does not have.
    ciphers: Vec<Option<Ciphers>>,
}

/// One key version's FF1, in both implementations: they give the same results (tests).
struct Ciphers {
    fixed: FixedFf1,
    /// For inputs too long for `fixed`.
    general: FF1<Aes256>,
}

impl Ff1 {
    /// `radix` from 2 to 256: numerals are bytes.
    pub(super) fn new(keys: &KeySet, radix: u32) -> Result<Ff1, BuildError> {
        let ciphers = (0..=MAX_KEY_VERSION)
            .map(|version| {
                keys.get(version)
                    .map(|key| {
                        Ok::<_, fpe::ff1::InvalidRadix>(Ciphers {
                            fixed: FixedFf1::new(key, radix),
                            general: FF1::<Aes256>::new(key, radix)?,
                        })
                    })
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

    /// Encrypts `numerals` (each below the radix) in place with `version`'s key, under the
    /// tweak `tweak` (its parts end to end). `None`, with `numerals` untouched, when the set
    /// has no such version, or FF1 refuses the input: a numeral out of the radix, or a domain
    /// under NIST's minimum (callers rule out both first).
    pub(super) fn encrypt(&self, version: u32, tweak: &[&[u8]], numerals: &mut [u8]) -> Option<()> {
        self.run(Direction::Encrypt, version, tweak, numerals)
    }

    /// [`Ff1::encrypt`] undone.
    pub(super) fn decrypt(&self, version: u32, tweak: &[&[u8]], numerals: &mut [u8]) -> Option<()> {
        self.run(Direction::Decrypt, version, tweak, numerals)
    }

    fn run(
        &self,
        direction: Direction,
        version: u32,
        tweak: &[&[u8]],
        numerals: &mut [u8],
    ) -> Option<()> {
        let mut job = [Job::new(tweak, numerals)];
        self.run_all(direction, version, &mut job);
        job[0].done.then_some(())
    }

    /// [`Ff1::encrypt`] of each value's numerals under its tweak (three parts end to end),
    /// side by side; by value, whether it was done.
    pub(super) fn encrypt_each(
        &self,
        version: u32,
        values: &mut [(Parts<'_>, &mut [u8])],
    ) -> Vec<bool> {
        let mut jobs: Vec<Job<'_>> = (values.iter_mut())
            .map(|(tweak, numerals)| Job::new(&tweak[..], numerals))
            .collect();
        self.run_all(Direction::Encrypt, version, &mut jobs);
        jobs.iter().map(|job| job.done).collect()
    }

    /// [`Ff1::encrypt`] or [`Ff1::decrypt`] of every job with `version`'s key, the
    /// fixed-width ones side by side; `done` tells which ones were.
    pub(super) fn run_all(&self, direction: Direction, version: u32, jobs: &mut [Job<'_>]) {
        let Some(ciphers) =
            (usize::try_from(version).ok()).and_then(|version| self.ciphers.get(version)?.as_ref())
        else {
            return;
        };
        let min = min_numerals(self.radix);
        for chunk in jobs.chunks_mut(BATCH) {
            // Runs of the fixed-width FF1, and which job each one is.
            let mut runs = [Run::default(); BATCH];
            let mut of_job = [0; BATCH];
            let mut count = 0;
            for (index, job) in chunk.iter_mut().enumerate() {
                let in_radix = job.numerals.iter().all(|&n| u32::from(n) < self.radix);
                if !in_radix || job.numerals.len() < min {
                    continue;
                }
                match ciphers.fixed.prepare(job.tweak, job.numerals) {
                    Some(run) => {
                        (runs[count], of_job[count]) = (run, index);
                        count += 1;
                    }
                    None => job.done = ciphers.general(direction, job).is_some(),
                }
            }
            ciphers.fixed.rounds(direction, &mut runs[..count]);
            for (run, &index) in runs[..count].iter().zip(&of_job[..count]) {
                ciphers.fixed.finish(run, chunk[index].numerals);
                chunk[index].done = true;
            }
        }
    }
}

impl Ciphers {
    /// `fpe`'s FF1 over a job too long for the fixed-width one.
    fn general(&self, direction: Direction, job: &mut Job<'_>) -> Option<()> {
        let tweak = job.tweak.concat();
        let wide: Vec<u16> = job.numerals.iter().map(|&n| u16::from(n)).collect();
        let ns = FlexibleNumeralString::from(wide);
        let out = match direction {
            Direction::Encrypt => self.general.encrypt(&tweak, &ns),
            Direction::Decrypt => self.general.decrypt(&tweak, &ns),
        };
        for (numeral, out) in job.numerals.iter_mut().zip(Vec::from(out.ok()?)) {
            // Below the radix, so at most 255.
            *numeral = out as u8;
        }
        Some(())
    }
}

/// A tweak in three parts, laid end to end: the rule's, then what the token shows of the
/// value in clear, in up to two pieces.
pub(super) type Parts<'a> = [&'a [u8]; 3];

/// One FF1 call of [`Ff1::run_all`]: the tweak, in parts laid end to end, and the numerals
/// (each below the radix), turned in place when `done`.
pub(super) struct Job<'a> {
    pub(super) tweak: &'a [&'a [u8]],
    pub(super) numerals: &'a mut [u8],
    pub(super) done: bool,
}

impl<'a> Job<'a> {
    pub(super) fn new(tweak: &'a [&'a [u8]], numerals: &'a mut [u8]) -> Job<'a> {
        Job {
            tweak,
            numerals,
            done: false,
        }
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

    /// The tweak: to be followed, in each call, by what the token shows of the value in
    /// clear (kept digits, an IBAN's country and letters), so that values that differ only
    /// there get unrelated encryptions. Each kind lays its parts out unambiguously.
    pub(super) fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

// The rule tweak is not secret, but it names partners: logs need only its size.
impl fmt::Debug for Tweak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tweak({} bytes)", self.0.len())
    }
}
