//! NIST's FF1 samples for AES-256 (samples 7, 8 and 9 of FF1samples.pdf, from NIST's
//! "Examples with Intermediate Values" for SP 800-38G), through the engine's cipher wrapper
//! and a key set loaded like any other.

use super::super::cipher::Ff1;
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

fn numerals(text: &str) -> Vec<u16> {
    (text.bytes())
        .map(|c| BASE36.iter().position(|&s| s == c).unwrap() as u16)
        .collect()
}

fn text(numerals: &[u16]) -> String {
    numerals
        .iter()
        .map(|&n| char::from(BASE36[usize::from(n)]))
        .collect()
}

#[test]
fn samples_7_8_9() {
    for (sample, radix, tweak, plain, cipher) in [
        (7, 10, "", "0123456789", "6657667009"),
        (8, 10, "39383736353433323130", "0123456789", "1001623463"),
        (
            9,
            36,
            "3737373770717273373737",
            "0123456789abcdefghi",
            "xs8a0azh2avyalyzuwd",
        ),
    ] {
        let ff1 = ff1(radix);
        let tweak = hex::decode(tweak).unwrap();
        let encrypted = ff1.encrypt(1, &tweak, numerals(plain)).unwrap();
        assert_eq!(text(&encrypted), cipher, "sample {sample}");
        let decrypted = ff1.decrypt(1, &tweak, numerals(cipher)).unwrap();
        assert_eq!(text(&decrypted), plain, "sample {sample}");
    }
}

#[test]
fn versions_pick_their_keys() {
    let ff1 = ff1(10);
    let other = ff1.encrypt(2, &[], numerals("0123456789")).unwrap();
    assert_ne!(text(&other), "6657667009");
    assert_eq!(text(&ff1.decrypt(2, &[], other).unwrap()), "0123456789");
    assert!(ff1.encrypt(3, &[], numerals("0123456789")).is_none());
    assert!(ff1.decrypt(0, &[], numerals("0123456789")).is_none());
    let shown = format!("{ff1:?}");
    assert!(
        !shown.contains("2b7e") && !shown.contains(&KEYS[1][..8]),
        "{shown}"
    );
}

#[test]
fn refuses_domains_under_nist_minimum() {
    let ff1 = ff1(10);
    assert!(ff1.encrypt(1, &[], numerals("12345")).is_none());
    assert!(ff1.encrypt(1, &[], numerals("123456")).is_some());
    assert_eq!(super::super::cipher::min_numerals(10), 6);
    assert_eq!(super::super::cipher::min_numerals(36), 4);
    assert_eq!(super::super::cipher::min_numerals(62), 4);
}
