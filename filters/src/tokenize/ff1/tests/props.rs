//! Properties over random values: PANs of every length in several layouts, IBANs of several
//! countries, accounts and strings. Each check builds its engines once, then runs many cases.

use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, TestRunner};

use super::{build, detokenize, luhn_remainder, tokenize};
use crate::tokenize::TokenError;

const DIGITS: &[u8] = b"0123456789";
const LETTERS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const ALPHANUMERIC: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: 512,
        failure_persistence: None,
        ..Config::default()
    })
}

/// Random PANs of `min` to 19 digits that pass the Luhn check.
fn pans(min: usize) -> impl Strategy<Value = String> {
    (min..=19usize)
        .prop_flat_map(|len| proptest::collection::vec(0..10u8, len - 1))
        .prop_map(|mut digits| {
            digits.push(0);
            let last = digits.len() - 1;
            super::super::luhn::solve(&mut digits, last, 0);
            digits.iter().map(|&d| char::from(b'0' + d)).collect()
        })
}

#[test]
fn pans_round_trip_in_every_layout() {
    // (options, key versions (the last active), keep_first, keep_last, Luhn remainder,
    // shortest PAN)
    for (options, versions, first, last, remainder, min) in [
        ("", &[1, 2][..], 0, 4, 2, 13),
        ("keep_first = 6\nmin_length = 17", &[1, 2], 6, 4, 2, 17),
        ("keep_first = 6\nkeep_last = 0", &[3], 6, 0, 3, 13),
        ("keep_last = 0\nluhn = \"valid\"", &[2], 0, 0, 0, 13),
        (
            "keep_first = 6\nluhn = \"valid\"\nmin_length = 17",
            &[1],
            6,
            4,
            0,
            17,
        ),
    ] {
        let active = *versions.last().unwrap();
        let options = format!("kind = \"pan\"\ntweak = \"partner-a\"\n{options}");
        let engine = build(&options, versions, active).unwrap();
        let result = runner().run(&pans(min), |pan| {
            let token = tokenize(&*engine, &pan).unwrap();
            let len = pan.len();
            prop_assert_eq!(token.len(), len);
            prop_assert!(token.bytes().all(|b| b.is_ascii_digit()));
            prop_assert_eq!(&token[..first], &pan[..first]);
            prop_assert_eq!(&token[len - last..], &pan[len - last..]);
            prop_assert_eq!(luhn_remainder(&token), remainder);
            let back = detokenize(&*engine, &token).unwrap();
            prop_assert_eq!(&back.value, &pan);
            prop_assert_eq!(back.key_version, active);
            prop_assert_eq!(tokenize(&*engine, &pan).unwrap(), token);
            Ok(())
        });
        result.unwrap_or_else(|e| panic!("{options}: {e}"));
    }
}

/// BBAN layouts (ISO 13616 registry): `n` a digit, `a` a capital, `c` either.
const COUNTRIES: [(&str, &str); 12] = [
    ("DE", "18n"),
    ("GB", "4a14n"),
    ("FR", "10n11c2n"),
    ("NL", "4a10n"),
    ("ES", "20n"),
    ("IT", "1a10n12c"),
    ("BE", "12n"),
    ("CH", "5n12c"),
    ("NO", "11n"),
    ("MT", "4a5n18c"),
    ("PL", "24n"),
    ("LU", "3n13c"),
];

/// One strategy per BBAN character of `layout`.
fn bban(layout: &str) -> Vec<BoxedStrategy<u8>> {
    let mut characters = Vec::new();
    let mut count = 0;
    for c in layout.chars() {
        if let Some(digit) = c.to_digit(10) {
            count = count * 10 + digit as usize;
            continue;
        }
        let symbols = match c {
            'n' => DIGITS,
            'a' => LETTERS,
            _ => ALPHANUMERIC,
        };
        characters.extend((0..count).map(|_| select(symbols).boxed()));
        count = 0;
    }
    characters
}

/// Random valid IBANs of the countries above.
fn ibans() -> impl Strategy<Value = String> {
    (0..COUNTRIES.len()).prop_flat_map(|i| {
        let (country, layout) = COUNTRIES[i];
        bban(layout).prop_map(move |bban| {
            let bban = String::from_utf8(bban).unwrap();
            let check = 98 - mod97(&format!("{bban}{country}00"));
            format!("{country}{check:02}{bban}")
        })
    })
}

/// A number written in digits and capitals (A = 10 ... Z = 35), modulo 97, worked out in
/// pieces of 7 digits as ECBS TR 201 does by hand: a second computation beside the engine's.
fn mod97(text: &str) -> u64 {
    let digits: String = (text.chars())
        .map(|c| c.to_digit(36).unwrap().to_string())
        .collect();
    digits.as_bytes().chunks(7).fold(0, |rest, chunk| {
        let piece = format!("{rest}{}", std::str::from_utf8(chunk).unwrap());
        piece.parse::<u64>().unwrap() % 97
    })
}

/// Whether `text` is an IBAN in electronic format with valid check digits.
pub(super) fn valid_iban(text: &str) -> bool {
    let b = text.as_bytes();
    (5..=34).contains(&b.len())
        && b[..2].iter().all(u8::is_ascii_uppercase)
        && b[2..4].iter().all(u8::is_ascii_digit)
        && (2..=98).contains(&text[2..4].parse::<u32>().unwrap())
        && b[4..].iter().all(|c| ALPHANUMERIC.contains(c))
        && mod97(&format!("{}{}", &text[4..], &text[..4])) == 1
}

#[test]
fn ibans_round_trip_as_valid_ibans_of_their_country() {
    let engine = build("kind = \"iban\"\ntweak = \"partner-a\"", &[2], 2).unwrap();
    runner()
        .run(&ibans(), |iban| {
            prop_assert!(valid_iban(&iban), "{}", iban);
            let result = tokenize(&*engine, &iban);
            let digits = iban[4..].bytes().filter(u8::is_ascii_digit).count();
            if digits < 6 {
                prop_assert_eq!(result, Err(TokenError::InvalidValue("iban")));
                return Ok(());
            }
            let token = result.unwrap();
            prop_assert_eq!(token.len(), iban.len());
            prop_assert_eq!(&token[..2], &iban[..2]);
            prop_assert!(valid_iban(&token), "{}", token);
            for (t, v) in token.bytes().zip(iban.bytes()).skip(4) {
                if v.is_ascii_digit() {
                    prop_assert!(t.is_ascii_digit());
                } else {
                    prop_assert_eq!(t, v);
                }
            }
            let back = detokenize(&*engine, &token).unwrap();
            prop_assert_eq!(&back.value, &iban);
            prop_assert_eq!(back.key_version, 2);
            prop_assert_eq!(tokenize(&*engine, &iban).unwrap(), token);
            Ok(())
        })
        .unwrap();
}

#[test]
fn accounts_round_trip_behind_their_version() {
    let engine = build("kind = \"account\"\ntweak = \"partner-a\"", &[1, 2], 2).unwrap();
    runner()
        .run(&"[0-9]{6,20}", |account| {
            let token = tokenize(&*engine, &account).unwrap();
            prop_assert_eq!(token.len(), account.len() + 1);
            prop_assert!(token.starts_with('2'));
            prop_assert!(token.bytes().all(|b| b.is_ascii_digit()));
            let back = detokenize(&*engine, &token).unwrap();
            prop_assert_eq!(&back.value, &account);
            prop_assert_eq!(back.key_version, 2);
            prop_assert_eq!(tokenize(&*engine, &account).unwrap(), token);
            Ok(())
        })
        .unwrap();
}

#[test]
fn strings_round_trip_and_differ_between_tweaks() {
    let a = build("kind = \"string\"\ntweak = \"partner-a\"", &[1], 1).unwrap();
    let b = build("kind = \"string\"\ntweak = \"partner-b\"", &[1], 1).unwrap();
    runner()
        .run(&"[0-9A-Za-z]{4,64}", |value| {
            let token = tokenize(&*a, &value).unwrap();
            prop_assert_eq!(token.len(), value.len() + 1);
            prop_assert!(token.starts_with('1'));
            prop_assert!(token.bytes().all(|b| b.is_ascii_alphanumeric()));
            prop_assert_eq!(&detokenize(&*a, &token).unwrap().value, &value);
            // 62^12 values: two tweaks giving one token would be a 1-in-10^21 accident.
            if value.len() >= 12 {
                prop_assert_ne!(tokenize(&*b, &value).unwrap(), token);
            }
            Ok(())
        })
        .unwrap();
}
