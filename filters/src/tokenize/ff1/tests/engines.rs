//! Token layouts, refusals, determinism, tweaks and key rotation, on fixed values.

use super::{build, detokenize, engine, luhn_remainder, round_trip, tokenize, KEYS};
use crate::tokenize::TokenError;

const PAN: &str = "4111111111111111";

#[test]
fn pan_token_keeps_length_and_last_four_and_fails_luhn_with_the_version() {
    let pan = engine("kind = \"pan\"\ntweak = \"partner-a\"");
    let token = round_trip(&*pan, PAN, 1);
    assert_eq!(token.len(), 16);
    assert!(token.bytes().all(|b| b.is_ascii_digit()));
    assert!(token.ends_with("1111"));
    assert_ne!(token, PAN);
    assert_eq!(luhn_remainder(&token), 1);
    assert_eq!(tokenize(&*pan, PAN).unwrap(), token, "deterministic");
    // A 13-digit PAN (the default shortest) and a 19-digit one.
    for pan_value in ["4222222222222", "6011000990139424123"] {
        let pan_value = &with_check_digit(&pan_value[..pan_value.len() - 1]);
        let token = round_trip(&*pan, pan_value, 1);
        assert_eq!(token.len(), pan_value.len());
    }
}

#[test]
fn pan_keeps_bin_and_last_four_when_asked() {
    let pan = engine(
        "kind = \"pan\"\ntweak = \"partner-a\"\nkeep_first = 6\nkeep_last = 4\nmin_length = 17",
    );
    let value = with_check_digit("411111222233334444");
    let token = round_trip(&*pan, &value, 1);
    assert_eq!(token[..6], value[..6]);
    assert_eq!(token[15..], value[15..]);
    assert_eq!(luhn_remainder(&token), 1);
    assert_eq!(
        tokenize(&*pan, PAN),
        Err(TokenError::InvalidValue("pan")),
        "16 digits is under min_length"
    );
}

#[test]
fn pan_luhn_valid_tokens() {
    let pan = engine("kind = \"pan\"\ntweak = \"partner-a\"\nluhn = \"valid\"\nkeep_last = 0");
    let token = round_trip(&*pan, PAN, 1);
    assert_eq!(luhn_remainder(&token), 0);
    assert_ne!(token[12..], PAN[12..]);
    // A Luhn-invalid string cannot be one of these tokens.
    let mut wrong = token.into_bytes();
    wrong[0] = b'0' + (wrong[0] - b'0' + 1) % 10;
    let wrong = String::from_utf8(wrong).unwrap();
    assert_eq!(detokenize(&*pan, &wrong), Err(TokenError::NotAToken));
}

#[test]
fn pan_refusals() {
    let pan = engine("kind = \"pan\"\ntweak = \"partner-a\"");
    for value in [
        "4111111111111112",     // fails the Luhn check
        "4111 1111 1111 1111",  // not digits only
        "411111111111",         // 12 digits
        "41111111111111111113", // 20 digits
        "",
        "4111111111111111\n",
        "４111111111111111",
    ] {
        assert_eq!(
            tokenize(&*pan, value),
            Err(TokenError::InvalidValue("pan")),
            "{value}"
        );
    }
    // A real card number passes the Luhn check: with luhn = "invalid" it is never a token.
    assert_eq!(detokenize(&*pan, PAN), Err(TokenError::NotAToken));
    let token = tokenize(&*pan, PAN).unwrap();
    for not_token in [&token[1..], "4111-1111-1111-1111", ""] {
        assert_eq!(detokenize(&*pan, not_token), Err(TokenError::NotAToken));
    }
}

#[test]
fn many_values_at_once_give_what_each_gives_alone() {
    // More values than one batch holds, refused ones among them, lengths that vary.
    let mut pans: Vec<String> = (0..40u64)
        .map(|n| with_check_digit(&format!("4{:013}", n * 7_919_111)))
        .collect();
    pans.insert(3, "4111111111111112".into());
    pans.insert(7, "4111x11111111111".into());
    pans.insert(11, "".into());
    pans.push(with_check_digit("601100099013942412"));
    pans.push(with_check_digit("422222222222"));
    let ibans: Vec<String> = [
        "DE89370400440532013000",
        "DE88370400440532013000",
        "GB29NWBK60161331926819",
        "MT57MALT12345ABCDEFGHIJKLMNOPQR",
        "FR1420041010050500013M02606",
    ]
    .iter()
    .cycle()
    .take(35)
    .map(|iban| iban.to_string())
    .collect();
    // 21 or more alphanumeric characters are past the fixed-width FF1: `fpe` does them.
    let mut strings: Vec<String> = (4..70)
        .map(|n| format!("{:x}", n * n * 7919).repeat(n % 9 + 1))
        .collect();
    strings.extend(["bad-char".into(), "abc".into(), "x".repeat(65)]);
    for (options, versions, values) in [
        ("kind = \"pan\"\ntweak = \"partner-a\"", &[1, 2][..], &pans),
        (
            "kind = \"pan\"\ntweak = \"p\"\nkeep_first = 6\nkeep_last = 0",
            &[2],
            &pans,
        ),
        ("kind = \"iban\"\ntweak = \"partner-a\"", &[1], &ibans),
        ("kind = \"account\"\ntweak = \"partner-a\"", &[1], &pans),
        (
            "kind = \"string\"\ntweak = \"partner-a\"",
            &[1, 2],
            &strings,
        ),
    ] {
        let engine = build(options, versions, versions[versions.len() - 1]).unwrap();
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        let one_by_one: Vec<_> = values.iter().map(|v| tokenize(&*engine, v)).collect();
        assert_eq!(
            super::now(engine.tokenize_all(&values)),
            one_by_one,
            "{options}"
        );
        let tokenized = one_by_one.iter().filter(|t| t.is_ok()).count();
        assert!(
            tokenized > 20 && tokenized < values.len(),
            "{options}: {tokenized}"
        );
        assert!(super::now(engine.tokenize_all(&[])).is_empty());
    }
}

#[test]
fn iban_token_is_a_valid_iban_of_the_same_country_and_shape() {
    let iban = engine("kind = \"iban\"\ntweak = \"partner-a\"");
    for value in [
        "DE89370400440532013000",
        "GB29NWBK60161331926819",
        "FR1420041010050500013M02606",
        "NL91ABNA0417164300",
        "NO9386011117947",
    ] {
        let token = round_trip(&*iban, value, 1);
        assert_eq!(token.len(), value.len());
        assert_eq!(token[..2], value[..2]);
        assert_ne!(token[4..], value[4..]);
        for (t, v) in token.bytes().zip(value.bytes()).skip(4) {
            if v.is_ascii_uppercase() {
                assert_eq!(t, v, "{token}");
            } else {
                assert!(t.is_ascii_digit(), "{token}");
            }
        }
        assert!(super::props::valid_iban(&token), "{token}");
        assert_eq!(tokenize(&*iban, value).unwrap(), token, "deterministic");
    }
}

#[test]
fn iban_refusals() {
    let iban = engine("kind = \"iban\"\ntweak = \"partner-a\"");
    for value in [
        "DE88370400440532013000",      // check digits
        "de89370400440532013000",      // lower case
        "DE89 3704 0044 0532 0130 00", // spaces
        "DE89370400440532013000000000000000000",
        // A valid IBAN with only 5 digits in its BBAN: a domain under 10^6.
        "MT57MALT12345ABCDEFGHIJKLMNOPQR",
    ] {
        assert_eq!(
            tokenize(&*iban, value),
            Err(TokenError::InvalidValue("iban")),
            "{value}"
        );
    }
    assert!(super::props::valid_iban("MT57MALT12345ABCDEFGHIJKLMNOPQR"));
    assert_eq!(
        detokenize(&*iban, "DE88370400440532013000"),
        Err(TokenError::NotAToken)
    );
}

#[test]
fn account_and_string_tokens_lead_with_the_version() {
    let account = engine("kind = \"account\"\ntweak = \"partner-a\"");
    let token = round_trip(&*account, "0000123456", 1);
    assert_eq!(token.len(), 11);
    assert!(token.starts_with('1') && token.bytes().all(|b| b.is_ascii_digit()));
    for value in ["12345", "12345a", "123456789012345678901", ""] {
        assert_eq!(
            tokenize(&*account, value),
            Err(TokenError::InvalidValue("account")),
            "{value}"
        );
    }
    let mut wrong_version = token.clone().into_bytes();
    for version in [b'0', b'2', b'x'] {
        wrong_version[0] = version;
        let text = std::str::from_utf8(&wrong_version).unwrap();
        assert_eq!(detokenize(&*account, text), Err(TokenError::NotAToken));
    }
    assert_eq!(detokenize(&*account, "1"), Err(TokenError::NotAToken));
    assert_eq!(detokenize(&*account, ""), Err(TokenError::NotAToken));

    let string = engine("kind = \"string\"\ntweak = \"partner-a\"");
    let token = round_trip(&*string, "AbC123xyz", 1);
    assert_eq!(token.len(), 10);
    assert!(token.starts_with('1') && token.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(
        tokenize(&*string, "AbC-123"),
        Err(TokenError::InvalidValue("string"))
    );
    let upper = engine("kind = \"string\"\ntweak = \"t\"\nalphabet = \"upper_alphanumeric\"");
    let token = round_trip(&*upper, "REF2024ABC", 1);
    assert!(token
        .bytes()
        .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()));
    assert_eq!(
        tokenize(&*upper, "ref2024abc"),
        Err(TokenError::InvalidValue("string"))
    );
}

#[test]
fn tweaks_and_kinds_separate_tokens() {
    let a = engine("kind = \"pan\"\ntweak = \"partner-a\"");
    let b = engine("kind = \"pan\"\ntweak = \"partner-b\"");
    for n in 0..100u64 {
        let pan = with_check_digit(&format!("4{:014}", n * 7_919_111));
        let (ta, tb) = (tokenize(&*a, &pan).unwrap(), tokenize(&*b, &pan).unwrap());
        assert_ne!(ta, tb, "{pan}");
        // A token is tied to its tweak: the other rule reads another value from it.
        assert_ne!(detokenize(&*b, &ta).unwrap().value, pan);
    }
    // The same digits as an account and as a digits string: the kind is in the tweak.
    let account = engine("kind = \"account\"\ntweak = \"partner-a\"");
    let digits = engine("kind = \"string\"\ntweak = \"partner-a\"\nalphabet = \"digits\"");
    assert_ne!(
        tokenize(&*account, "1234567890").unwrap(),
        tokenize(&*digits, "1234567890").unwrap()
    );
    // The visible digits are in the tweak: equal hidden digits, different last four.
    let (t1, t2) = (
        tokenize(&*a, &with_check_digit("400000123456789")).unwrap(),
        tokenize(&*a, &with_check_digit("400000123456788")).unwrap(),
    );
    assert_ne!(t1[..11], t2[..11]);
}

#[test]
fn rotation_keeps_old_tokens_until_their_version_goes() {
    for (options, value) in [
        ("kind = \"pan\"\ntweak = \"partner-a\"", PAN),
        ("kind = \"account\"\ntweak = \"partner-a\"", "12345678"),
        ("kind = \"string\"\ntweak = \"partner-a\"", "Ref42xyz"),
    ] {
        let v1 = build(options, &[1], 1).unwrap();
        let old = round_trip(&*v1, value, 1);
        let v2 = build(options, &[1, 2], 2).unwrap();
        let new = round_trip(&*v2, value, 2);
        assert_ne!(old, new);
        let back = detokenize(&*v2, &old).unwrap();
        assert_eq!((back.value.as_str(), back.key_version), (value, 1));
        let only_v2 = build(options, &[2], 2).unwrap();
        assert_eq!(detokenize(&*only_v2, &old), Err(TokenError::NotAToken));
        assert_eq!(detokenize(&*only_v2, &new).unwrap().value, value);
        // Version 3 was never in the set.
        let v3 = build(options, &[3], 3).unwrap();
        let unknown = tokenize(&*v3, value).unwrap();
        assert_eq!(detokenize(&*v2, &unknown), Err(TokenError::NotAToken));
    }
}

#[test]
fn debug_and_errors_show_no_key_and_no_value() {
    for (options, versions) in [
        ("kind = \"pan\"\ntweak = \"partner-a\"", &[1, 2][..]),
        ("kind = \"iban\"\ntweak = \"partner-a\"", &[1]),
        ("kind = \"account\"\ntweak = \"partner-a\"", &[1, 2]),
        ("kind = \"string\"\ntweak = \"partner-a\"", &[1, 2]),
    ] {
        let engine = build(options, versions, 1).unwrap();
        let shown = format!("{engine:?}");
        for key in KEYS {
            assert!(!shown.contains(&key[..12]), "{shown}");
        }
        assert!(!shown.contains("partner-a"), "{shown}");
        for value in [PAN, "DE89370400440532013000", "4111x"] {
            if let Err(e) = tokenize(&*engine, value) {
                assert!(!e.to_string().contains(value), "{e}");
            }
            if let Err(e) = detokenize(&*engine, value) {
                assert!(!e.to_string().contains(value), "{e}");
            }
        }
    }
}

/// `digits` followed by the check digit that makes them pass the Luhn check.
fn with_check_digit(digits: &str) -> String {
    let mut number: Vec<u8> = digits.bytes().map(|b| b - b'0').collect();
    number.push(0);
    let last = number.len() - 1;
    super::super::luhn::solve(&mut number, last, 0);
    number.iter().map(|&d| char::from(b'0' + d)).collect()
}
