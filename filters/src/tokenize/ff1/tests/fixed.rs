//! The hand-written fixed-width FF1 against `fpe`, its reference: random keys, tweaks (cut
//! into random parts), radixes and every length the fixed-width code takes, both
//! directions; then where its range ends, and the engine's wrapper on both sides of it.

use aes::Aes256;
use fpe::ff1::{FlexibleNumeralString, FF1};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, TestRunner};

use super::super::cipher::{min_numerals, Ff1, Job};
use super::super::fixed::{Direction, FixedFf1};
use super::KEYS;
use crate::tokenize::{KeySet, KeySetConfig};
use crate::BuildContext;

/// The longest input whose halves fit in a `u64` (radix^⌈n/2⌉ ≤ 2^64), worked out apart
/// from the code under test.
fn longest_fixed(radix: u32) -> usize {
    let fits = |v: u32| {
        u128::from(radix)
            .checked_pow(v)
            .is_some_and(|p| p <= 1 << 64)
    };
    let v = (1..).take_while(|&v| fits(v)).last().unwrap();
    2 * v as usize
}

/// The fixed-width FF1 alone, one run: `false`, with `numerals` untouched, when it does not
/// take them.
pub(super) fn run_fixed(
    fixed: &FixedFf1,
    direction: Direction,
    tweak: &[&[u8]],
    numerals: &mut [u8],
) -> bool {
    let Some(mut run) = fixed.prepare(tweak, numerals) else {
        return false;
    };
    fixed.rounds(direction, std::slice::from_mut(&mut run));
    fixed.finish(&run, numerals);
    true
}

/// `fpe`'s FF1 of `numerals`, one way or the other.
fn reference(key: &[u8; 32], radix: u32, direction: Direction, tweak: &[u8], x: &[u8]) -> Vec<u8> {
    let ff1 = FF1::<Aes256>::new(key, radix).unwrap();
    let ns = FlexibleNumeralString::from(x.iter().map(|&n| u16::from(n)).collect::<Vec<_>>());
    let out = match direction {
        Direction::Encrypt => ff1.encrypt(tweak, &ns),
        Direction::Decrypt => ff1.decrypt(tweak, &ns),
    };
    Vec::from(out.unwrap())
        .into_iter()
        .map(|n| n as u8)
        .collect()
}

/// (key, radix, numerals, tweak, where the tweak is cut into parts)
fn cases() -> impl Strategy<Value = ([u8; 32], u32, Vec<u8>, Vec<u8>, Vec<usize>)> {
    // The engines' radixes, and others around powers of two (exact `b`) and odd ones.
    let radix = select(vec![10u32, 36, 62, 10, 36, 62, 2, 7, 16, 255, 256]);
    radix.prop_flat_map(|radix| {
        let lengths = min_numerals(radix)..=longest_fixed(radix);
        // Extremes more often than by chance: all-highest numerals are radix^n − 1.
        let top = (radix - 1) as u8;
        let numeral = prop_oneof![4 => 0..=top, 1 => Just(top), 1 => Just(0)];
        let numerals =
            lengths.prop_flat_map(move |n| proptest::collection::vec(numeral.clone(), n));
        (
            any::<[u8; 32]>(),
            Just(radix),
            numerals,
            // Long enough for the tweak to span several blocks and land at every offset.
            proptest::collection::vec(any::<u8>(), 0..80),
            proptest::collection::vec(0..80usize, 0..3),
        )
    })
}

/// `tweak` cut at `cuts` (clamped, in order) into parts.
fn parts<'t>(tweak: &'t [u8], cuts: &[usize]) -> Vec<&'t [u8]> {
    let mut cuts: Vec<usize> = cuts.iter().map(|&c| c.min(tweak.len())).collect();
    cuts.sort_unstable();
    let mut parts = Vec::new();
    let mut at = 0;
    for cut in cuts {
        parts.push(&tweak[at..cut]);
        at = cut;
    }
    parts.push(&tweak[at..]);
    parts
}

#[test]
fn matches_fpe_both_ways_on_every_length_it_takes() {
    let mut runner = TestRunner::new(Config {
        cases: 3000,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&cases(), |(key, radix, plain, tweak, cuts)| {
            let fixed = FixedFf1::new(&key, radix);
            let tweak_parts = parts(&tweak, &cuts);
            let mut x = plain.clone();
            prop_assert!(run_fixed(&fixed, Direction::Encrypt, &tweak_parts, &mut x));
            let expected = reference(&key, radix, Direction::Encrypt, &tweak, &plain);
            prop_assert_eq!(&x, &expected, "encrypt, radix {}", radix);
            // Decrypting an arbitrary string, not only a ciphertext, matches too.
            let mut y = plain.clone();
            prop_assert!(run_fixed(&fixed, Direction::Decrypt, &tweak_parts, &mut y));
            let expected = reference(&key, radix, Direction::Decrypt, &tweak, &plain);
            prop_assert_eq!(&y, &expected, "decrypt, radix {}", radix);
            prop_assert!(run_fixed(&fixed, Direction::Decrypt, &tweak_parts, &mut x));
            prop_assert_eq!(x, plain);
            Ok(())
        })
        .unwrap();
}

#[test]
fn leaves_longer_inputs_untouched_for_fpe() {
    let key = [7; 32];
    for (radix, longest) in [(10, 38), (36, 24), (62, 20), (2, 128), (256, 16)] {
        assert_eq!(longest_fixed(radix), longest, "radix {radix}");
        let fixed = FixedFf1::new(&key, radix);
        let mut x = vec![1; longest];
        assert!(run_fixed(&fixed, Direction::Encrypt, &[b"t"], &mut x));
        for n in [longest + 1, longest + 2] {
            let mut x = vec![1; n];
            assert!(
                !run_fixed(&fixed, Direction::Encrypt, &[b"t"], &mut x),
                "radix {radix}"
            );
            assert_eq!(x, vec![1; n]);
        }
    }
    // FF1 takes no fewer than two numerals: nothing to split.
    assert!(!run_fixed(
        &FixedFf1::new(&key, 10),
        Direction::Encrypt,
        &[],
        &mut [1]
    ));
}

/// The wrapper with [`KEYS`]' versions 1 and 2.
fn wrapper(radix: u32) -> Ff1 {
    let dir = tempfile::tempdir().unwrap();
    for (version, key) in KEYS[..2].iter().enumerate() {
        std::fs::write(dir.path().join(format!("v{}.key", version + 1)), key).unwrap();
    }
    let config: KeySetConfig = toml::from_str(
        r#"active = 2
versions = [{ version = 1, file = "v1.key" }, { version = 2, file = "v2.key" }]"#,
    )
    .unwrap();
    Ff1::new(
        &KeySet::load(&config, &BuildContext::new(dir.path())).unwrap(),
        radix,
    )
    .unwrap()
}

#[test]
fn the_wrapper_matches_fpe_on_both_sides_of_the_fixed_range() {
    let key: [u8; 32] = hex::decode(KEYS[1]).unwrap().try_into().unwrap();
    for radix in [10, 36, 62] {
        let ff1 = wrapper(radix);
        let mut runner = TestRunner::new(Config {
            cases: 200,
            failure_persistence: None,
            ..Config::default()
        });
        let lengths = min_numerals(radix)..=longest_fixed(radix) + 12;
        let strategy = lengths
            .prop_flat_map(move |n| proptest::collection::vec(0..radix as u8, n))
            .prop_flat_map(|x| (Just(x), proptest::collection::vec(any::<u8>(), 0..40)));
        runner
            .run(&strategy, |(plain, tweak)| {
                let (left, right) = tweak.split_at(tweak.len() / 3);
                let mut x = plain.clone();
                prop_assert!(ff1.encrypt(2, &[left, right], &mut x).is_some());
                let expected = reference(&key, radix, Direction::Encrypt, &tweak, &plain);
                prop_assert_eq!(&x, &expected, "radix {}, length {}", radix, plain.len());
                prop_assert!(ff1.decrypt(2, &[&tweak], &mut x).is_some());
                prop_assert_eq!(x, plain);
                Ok(())
            })
            .unwrap();
    }
}

#[test]
fn batches_give_what_single_runs_give() {
    // Lengths too short for NIST, for the fixed-width code and beyond it; some numerals out
    // of the radix; more jobs than one batch holds.
    let ff1 = wrapper(10);
    let job = (0..60usize).prop_flat_map(|n| {
        (
            proptest::collection::vec(prop_oneof![20 => 0..10u8, 1 => Just(10u8)], n),
            proptest::collection::vec(any::<u8>(), 0..40),
        )
    });
    let mut runner = TestRunner::new(Config {
        cases: 100,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(
            &(proptest::collection::vec(job, 0..40), any::<bool>()),
            |(inputs, forwards)| {
                let direction = if forwards {
                    Direction::Encrypt
                } else {
                    Direction::Decrypt
                };
                let tweaks: Vec<[&[u8]; 1]> = inputs.iter().map(|(_, t)| [&t[..]]).collect();
                let mut batched: Vec<Vec<u8>> = inputs.iter().map(|(x, _)| x.clone()).collect();
                let mut jobs: Vec<Job<'_>> = (tweaks.iter().zip(batched.iter_mut()))
                    .map(|(tweak, x)| Job::new(tweak, x))
                    .collect();
                ff1.run_all(direction, 2, &mut jobs);
                let done: Vec<bool> = jobs.iter().map(|job| job.done).collect();
                drop(jobs);
                for (((plain, tweak), out), done) in inputs.iter().zip(&batched).zip(done) {
                    let mut single = plain.clone();
                    let result = match direction {
                        Direction::Encrypt => ff1.encrypt(2, &[tweak], &mut single),
                        Direction::Decrypt => ff1.decrypt(2, &[tweak], &mut single),
                    };
                    prop_assert_eq!(result.is_some(), done);
                    prop_assert_eq!(out, &single);
                    let valid = plain.len() >= 6 && plain.iter().all(|&n| n < 10);
                    prop_assert_eq!(done, valid);
                }
                Ok(())
            },
        )
        .unwrap();
    // A version the set does not have: nothing is done.
    let mut x = vec![1; 10];
    let mut jobs = [Job::new(&[], &mut x)];
    ff1.run_all(Direction::Encrypt, 3, &mut jobs);
    assert!(!jobs[0].done);
}
