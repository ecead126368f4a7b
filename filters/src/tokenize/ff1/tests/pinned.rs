//! Tokens made by the `fpe`-only implementation, before the fixed-width FF1: every layout,
//! lengths on both sides of the fixed-width range (38 digits, 20 alphanumeric and 24 upper
//! alphanumeric characters), and several key versions. Tokens already given to partners must
//! keep detokenizing, and new ones must be the same.

use super::{build, detokenize, tokenize};

/// (options, key versions, active, value)
const CASES: &[(&str, &[u32], u32, &str)] = &[
    ("kind = \"pan\"\ntweak = \"partner-a\"", &[1], 1, "4111111111111111"),
    ("kind = \"pan\"\ntweak = \"partner-a\"", &[1, 2], 2, "4222222222222"),
    ("kind = \"pan\"\ntweak = \"partner-a\"", &[1], 1, "6011000990139424124"),
    ("kind = \"pan\"\ntweak = \"partner-a\"\nkeep_first = 6\nmin_length = 17", &[1], 1, "60110009901394249"),
    ("kind = \"pan\"\ntweak = \"\"\nkeep_first = 6\nkeep_last = 0", &[3], 3, "4000000000006"),
    ("kind = \"pan\"\ntweak = \"partner-b\"\nluhn = \"valid\"\nkeep_last = 0", &[2], 2, "5555555555554444"),
    ("kind = \"iban\"\ntweak = \"partner-a\"", &[1], 1, "DE89370400440532013000"),
    ("kind = \"iban\"\ntweak = \"partner-a\"", &[2], 2, "FR1420041010050500013M02606"),
    ("kind = \"iban\"\ntweak = \"partner-a\"", &[1], 1, "GB29NWBK60161331926819"),
    ("kind = \"iban\"\ntweak = \"x\"", &[1], 1, "PL61109010140000071219812874"),
    ("kind = \"account\"\ntweak = \"partner-a\"", &[1], 1, "123456"),
    ("kind = \"account\"\ntweak = \"partner-a\"", &[1, 2], 2, "0532013000"),
    ("kind = \"account\"\ntweak = \"partner-a\"\nmax_length = 128", &[1], 1, "12345678901234567890123456789012345678"),
    ("kind = \"account\"\ntweak = \"partner-a\"\nmax_length = 128", &[1], 1, "123456789012345678901234567890123456789"),
    ("kind = \"account\"\ntweak = \"partner-a\"\nmax_length = 128", &[1], 1, "98765432109876543210987654321098765432109876543210987654321098765432109876543210987654321098765432109876543210987654321098765432"),
    ("kind = \"string\"\ntweak = \"partner-a\"", &[1], 1, "AbC1"),
    ("kind = \"string\"\ntweak = \"partner-a\"", &[1], 1, "Ref2024xK9mQ7tZ1"),
    ("kind = \"string\"\ntweak = \"partner-a\"", &[1], 1, "Ref2024xK9mQ7tZ1abcd"),
    ("kind = \"string\"\ntweak = \"partner-a\"", &[1], 1, "Ref2024xK9mQ7tZ1abcde"),
    ("kind = \"string\"\ntweak = \"partner-a\"", &[1], 1, "0123456789abcdefghijABCDEFGHIJ0123456789abcdefghijABCDEFGHIJxyzw"),
    ("kind = \"string\"\ntweak = \"t\"\nalphabet = \"upper_alphanumeric\"", &[1], 1, "REF2024ABCDEFGHIJKLMNOPQ"),
    ("kind = \"string\"\ntweak = \"t\"\nalphabet = \"upper_alphanumeric\"", &[1], 1, "REF2024ABCDEFGHIJKLMNOPQR"),
    ("kind = \"string\"\ntweak = \"t\"\nalphabet = \"digits\"", &[1], 1, "000000"),
];

/// What each case tokenized to.
const TOKENS: [&str; CASES.len()] = [
    "3223371222561111",
    "0710795112222",
    "2820787028632174124",
    "60110074895164249",
    "4000007689929",
    "1960499394325302",
    "DE79280043997360650413",
    "FR5596985484474946070M42654",
    "GB18NWBK65183636183106",
    "PL21630833321442207126527285",
    "1171351",
    "28738409184",
    "121360752634998225591369873542151732920",
    "1706462091563388452855084717189333424463",
    "158104966703370940592850929763809167665048723942396654964100317330142450879137776210321830718332655712003967530115903505401160855",
    "13Fnr",
    "1PQ6y5LRfLoVRXTd7",
    "1KCOPXb1IBecdnea26R9e",
    "12X9s6gSw4sH4lWCUrfOEi",
    "1WAG5rIsH6zdX0fIsrDKBUrDX7ftX5QM9gS7FCx7liN3wZEwSOjtFtKPDe3I3HyPp",
    "1RY9LXDRS3RTPJ33D5L283TN1",
    "1UQM53J6DUNLP6KX72ZPI5XOOD",
    "1801758",
];

#[test]
fn tokens_are_the_same_as_before() {
    for ((options, versions, active, value), token) in CASES.iter().zip(TOKENS) {
        let engine = build(options, versions, *active).unwrap();
        assert_eq!(tokenize(&*engine, value).unwrap(), token, "{options}");
        let back = detokenize(&*engine, token).unwrap();
        assert_eq!(back.value, *value, "{options}");
        assert_eq!(back.key_version, *active);
    }
}
