//! Options: defaults, and every refusal with its message.

use super::{build, keys_option};
use crate::tokenize::ff1::{Alphabet, Ff1Config, Luhn, ValueKind};

/// The build error of `options` with a key set of `versions`, version 1 active.
fn error(options: &str, versions: &[u32]) -> String {
    match build(options, versions, 1) {
        Ok(engine) => panic!("{options} built {engine:?}"),
        Err(e) => e.0,
    }
}

#[test]
fn defaults() {
    let text = format!("kind = \"pan\"\ntweak = \"\"\n{}", keys_option(&[1], 1));
    let config: Ff1Config = toml::from_str(&text).unwrap();
    assert_eq!(config.kind, ValueKind::Pan);
    assert_eq!(config.luhn.unwrap_or_default(), Luhn::Invalid);
    assert_eq!(config.alphabet.unwrap_or_default(), Alphabet::Alphanumeric);
    for kind in ["pan", "iban", "account", "string"] {
        build(&format!("kind = \"{kind}\"\ntweak = \"\""), &[1], 1).unwrap();
    }
    let shown = format!(
        "{:?}",
        build("kind = \"pan\"\ntweak = \"p\"", &[1], 1).unwrap()
    );
    assert!(
        shown.contains("keep_first: 0") && shown.contains("keep_last: 4"),
        "{shown}"
    );
    assert!(
        shown.contains("lengths: 13..=19") && shown.contains("Invalid"),
        "{shown}"
    );
}

#[test]
fn refuses_unknown_and_missing_options() {
    for text in [
        "kind = \"pan\"\ntweak = \"\"\nkeep_middle = 2",
        "kind = \"pan\"",
        "kind = \"card\"\ntweak = \"\"",
        "kind = \"pan\"\ntweak = \"\"\nluhn = \"maybe\"",
        "kind = \"string\"\ntweak = \"\"\nalphabet = \"base64\"",
    ] {
        let text = format!("{text}\n{}", keys_option(&[1], 1));
        assert!(toml::from_str::<Ff1Config>(&text).is_err(), "{text}");
    }
}

#[test]
fn pan_domain_under_nist_minimum() {
    let e = error("kind = \"pan\"\ntweak = \"\"\nkeep_first = 6", &[1]);
    assert_eq!(
        e,
        "keep_first = 6 with keep_last = 4 leaves 10^2 values for a 13-digit PAN (one more \
         digit is the Luhn digit); NIST SP 800-38G needs at least 10^6: raise min_length to \
         17 or keep fewer digits"
    );
    let e = error(
        "kind = \"pan\"\ntweak = \"\"\nkeep_first = 6\nmin_length = 16",
        &[1],
    );
    assert!(e.contains("leaves 10^5 values for a 16-digit PAN"), "{e}");
    build(
        "kind = \"pan\"\ntweak = \"\"\nkeep_first = 6\nmin_length = 17",
        &[1],
        1,
    )
    .unwrap();
    // BIN alone leaves 6 digits of a 13-digit PAN: just enough.
    build(
        "kind = \"pan\"\ntweak = \"\"\nkeep_first = 6\nkeep_last = 0",
        &[1],
        1,
    )
    .unwrap();
}

#[test]
fn pan_option_refusals() {
    for (options, expected) in [
        ("keep_first = 4", "keep_first must be 0 or 6, not 4"),
        ("keep_last = 6", "keep_last must be 0 or 4, not 6"),
        (
            "min_length = 12",
            "min_length = 12: PANs have 13 to 19 digits",
        ),
        (
            "max_length = 20",
            "max_length = 20: PANs have 13 to 19 digits",
        ),
        (
            "min_length = 18\nmax_length = 16",
            "min_length = 18 is more than max_length = 16",
        ),
        (
            "alphabet = \"digits\"",
            "alphabet does not apply to kind = \"pan\"",
        ),
    ] {
        let e = error(&format!("kind = \"pan\"\ntweak = \"\"\n{options}"), &[1]);
        assert!(e.contains(expected), "{options}: {e}");
    }
}

#[test]
fn kinds_without_room_for_a_version_take_one_key() {
    let e = error("kind = \"pan\"\ntweak = \"\"\nluhn = \"valid\"", &[1, 2]);
    assert!(
        e.contains("luhn = \"valid\" tokens have no room for a key version"),
        "{e}"
    );
    let e = error("kind = \"iban\"\ntweak = \"\"", &[1, 2]);
    assert!(
        e.contains("kind = \"iban\" tokens have no room for a key version"),
        "{e}"
    );
    build("kind = \"pan\"\ntweak = \"\"\nluhn = \"valid\"", &[2], 2).unwrap();
}

#[test]
fn account_and_string_refusals() {
    for (options, expected) in [
        (
            "kind = \"account\"\nmin_length = 5",
            "min_length = 5 leaves 10^5 values with the digits alphabet; NIST SP 800-38G \
             needs at least 10^6: min_length must be at least 6",
        ),
        (
            "kind = \"string\"\nmin_length = 3",
            "min_length = 3 leaves 62^3 values with the alphanumeric alphabet",
        ),
        (
            "kind = \"string\"\nalphabet = \"digits\"\nmin_length = 5",
            "min_length must be at least 6",
        ),
        (
            "kind = \"account\"\nmax_length = 129",
            "max_length = 129: at most 128",
        ),
        (
            "kind = \"account\"\nmin_length = 12\nmax_length = 10",
            "min_length = 12 is more than max_length = 10",
        ),
        (
            "kind = \"account\"\nalphabet = \"digits\"",
            "alphabet does not apply to kind = \"account\"",
        ),
        (
            "kind = \"string\"\nluhn = \"valid\"",
            "luhn does not apply to kind = \"string\"",
        ),
        (
            "kind = \"iban\"\nkeep_last = 4",
            "keep_last does not apply to kind = \"iban\"",
        ),
        (
            "kind = \"iban\"\nmin_length = 15",
            "min_length does not apply to kind = \"iban\"",
        ),
    ] {
        let e = error(&format!("tweak = \"\"\n{options}"), &[1]);
        assert!(e.contains(expected), "{options}: {e}");
    }
    build("kind = \"string\"\ntweak = \"\"\nmin_length = 4", &[1], 1).unwrap();
    build(
        "kind = \"account\"\ntweak = \"\"\nmax_length = 128",
        &[1],
        1,
    )
    .unwrap();
}

#[test]
fn tweak_length_and_all_errors_at_once() {
    let long = "x".repeat(257);
    let e = error(&format!("kind = \"account\"\ntweak = \"{long}\""), &[1]);
    assert_eq!(e, "tweak: at most 256 bytes");
    build(
        &format!("kind = \"account\"\ntweak = \"{}\"", &long[1..]),
        &[1],
        1,
    )
    .unwrap();
    let e = error(
        "kind = \"pan\"\ntweak = \"\"\nkeep_first = 3\nalphabet = \"digits\"\nluhn = \"valid\"",
        &[1, 2],
    );
    assert_eq!(e.matches("; ").count(), 2, "{e}");
}

#[test]
fn key_errors_come_through() {
    let e = error("kind = \"pan\"\ntweak = \"\"", &[1, 4]);
    assert!(e.starts_with("keys: version 4: cannot read"), "{e}");
}
