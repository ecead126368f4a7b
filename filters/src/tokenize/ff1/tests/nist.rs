//! NIST's FF1 samples for AES-256 (samples 7, 8 and 9 of FF1samples.pdf, from NIST's
//! "Examples with Intermediate Values" for SP 800-38G): through the hand-written FF1 alone,
//! through `fpe` alone, and through the engine's cipher wrapper and a key set loaded like
//! any other.

use aes::Aes256;
use fpe::ff1::{FlexibleNumeralString, FF1};

use super::super::cipher::Ff1;
use super::super::fixed::{Direction, FixedFf1};
use super::fixed::run_fixed;
use super::KEYS;
use crate::tokenize::{KeySet, KeySetConfig};
use crate::BuildContext;

/// The AES-256 key of samples 7 to 9.
const NIST_KEY: &str = "2b7e151628aed2a6abf7158809cf4f3cef4359d8d580aa4f7f036d6f04fc6a94";

const BASE36: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// Version 1 holds NIST's key, version 2 another.
fn ff1(radix: u32) -> Ff1 {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("nist.key"), NIST_KEY).unwrap();
    std::fs::write(dir.path().join("other.key"), KEYS[1]).unwrap();
    let config: KeySetConfig = toml::from_str(
        r#"active = 1
versions = [{ version = 1, file = "nist.key" }, { version = 2, file = "other.key" }]"#,
    )
    .unwrap();
    let keys = KeySet::load(&config, &BuildContext::new(dir.path())).unwrap();
    Ff1::new(&keys, radix).unwrap()
}

/// (sample, radix, tweak in hex, plaintext, ciphertext), numerals written in base 36.
const SAMPLES: [(u32, u32, &str, &str, &str); 3] = [
    (7, 10, "", "0123456789", "6657667009"),
    (8, 10, "39383736353433323130", "0123456789", "1001623463"),
    (
        9,
        36,
        "3737373770717273373737",
        "0123456789abcdefghi",
        "xs8a0azh2avyalyzuwd",
    ),
];

fn numerals(text: &str) -> Vec<u8> {
    (text.bytes())
        .map(|c| BASE36.iter().position(|&s| s == c).unwrap() as u8)
        .collect()
}

fn text(numerals: &[u8]) -> String {
    numerals
        .iter()
        .map(|&n| char::from(BASE36[usize::from(n)]))
        .collect()
}

#[test]
fn samples_7_8_9_through_the_wrapper() {
    for (sample, radix, tweak, plain, cipher) in SAMPLES {
        let ff1 = ff1(radix);
        let tweak = hex::decode(tweak).unwrap();
        let mut x = numerals(plain);
        ff1.encrypt(1, &[&tweak], &mut x).unwrap();
        assert_eq!(text(&x), cipher, "sample {sample}");
        ff1.decrypt(1, &[&tweak], &mut x).unwrap();
        assert_eq!(text(&x), plain, "sample {sample}");
    }
}

#[test]
fn samples_7_8_9_through_each_implementation() {
    let key: [u8; 32] = hex::decode(NIST_KEY).unwrap().try_into().unwrap();
    for (sample, radix, tweak, plain, cipher) in SAMPLES {
        let tweak = hex::decode(tweak).unwrap();
        // The tweak in two parts, split where it would cross a block boundary or not.
        let (left, right) = tweak.split_at(tweak.len() / 2);
        let fixed = FixedFf1::new(&key, radix);
        let mut x = numerals(plain);
        assert!(run_fixed(
            &fixed,
            Direction::Encrypt,
            &[left, right],
            &mut x
        ));
        assert_eq!(text(&x), cipher, "sample {sample}, fixed");
        assert!(run_fixed(&fixed, Direction::Decrypt, &[&tweak], &mut x));
        assert_eq!(text(&x), plain, "sample {sample}, fixed");

        let general = FF1::<Aes256>::new(&key, radix).unwrap();
        let wide = |text: &str| -> FlexibleNumeralString {
            numerals(text)
                .into_iter()
                .map(u16::from)
                .collect::<Vec<_>>()
                .into()
        };
        let encrypted = Vec::from(general.encrypt(&tweak, &wide(plain)).unwrap());
        assert_eq!(encrypted, Vec::from(wide(cipher)), "sample {sample}, fpe");
    }
}

#[test]
fn versions_pick_their_keys() {
    let ff1 = ff1(10);
    let mut x = numerals("0123456789");
    ff1.encrypt(2, &[], &mut x).unwrap();
    assert_ne!(text(&x), "6657667009");
    ff1.decrypt(2, &[], &mut x).unwrap();
    assert_eq!(text(&x), "0123456789");
    assert!(ff1.encrypt(3, &[], &mut x).is_none());
    assert!(ff1.decrypt(0, &[], &mut x).is_none());
    assert_eq!(text(&x), "0123456789", "left untouched");
    let shown = format!("{ff1:?}");
    assert!(
        !shown.contains("2b7e") && !shown.contains(&KEYS[1][..8]),
        "{shown}"
    );
}

#[test]
fn refuses_domains_under_nist_minimum_and_numerals_out_of_the_radix() {
    let ff1 = ff1(10);
    assert!(ff1.encrypt(1, &[], &mut numerals("12345")).is_none());
    assert!(ff1.encrypt(1, &[], &mut numerals("123456")).is_some());
    let mut out_of_radix = numerals("12345a");
    assert!(ff1.encrypt(1, &[], &mut out_of_radix).is_none());
    assert_eq!(text(&out_of_radix), "12345a");
    assert_eq!(super::super::cipher::min_numerals(10), 6);
    assert_eq!(super::super::cipher::min_numerals(36), 4);
    assert_eq!(super::super::cipher::min_numerals(62), 4);
}
