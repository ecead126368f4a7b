//! Specs, messages and mappings end to end: golden wire bytes, round trips, malformed input,
//! spec errors, and the demo host's operations.

use std::collections::BTreeMap;

use corridor_filters::Consumer;
use http::StatusCode;
use proptest::prelude::*;
use serde_json::json;

use super::*;

const DEMO: &str = include_str!("../../conf/iso8583/demo-host.toml");

fn demo() -> Spec {
    Spec::from_toml(DEMO).unwrap()
}

fn spec(text: &str) -> Spec {
    Spec::from_toml(text).unwrap_or_else(|e| panic!("{e}"))
}

fn spec_error(text: &str) -> String {
    Spec::from_toml(text).unwrap_err().to_string()
}

fn message(mti: &[u8; 4], fields: &[(u8, &str)]) -> Message {
    let mut msg = Message::new(*mti);
    for (field, value) in fields {
        msg.set(*field, *value);
    }
    msg
}

fn authorization_request() -> Message {
    message(
        b"0100",
        &[
            (2, "4761739001010119"),
            (3, "000000"),
            (4, "000000001000"),
            (7, "1231235959"),
            (11, "000042"),
            (12, "235959"),
            (13, "1231"),
            (22, "010"),
            (32, "4711"),
            (37, "512312000042"),
            (41, "T0000001"),
            (42, "M00000000000001"),
            (49, "978"),
        ],
    )
}

#[test]
fn demo_spec_encodes_golden_bytes() {
    let wire = demo().encode(&authorization_request()).unwrap();
    let mut expected = b"0100".to_vec();
    expected.extend(hex::decode("7238040108C08000").unwrap());
    expected.extend_from_slice(
        b"164761739001010119000000000000001000123123595900004223595912310100447115123120000\
          42T0000001M00000000000001978",
    );
    assert_eq!(wire, expected);
    assert_eq!(demo().decode(&wire).unwrap(), authorization_request());
}

#[test]
fn demo_echo_uses_the_secondary_bitmap() {
    assert!(demo().can_echo());
    let echo = message(b"0800", &[(7, "1231235959"), (11, "000001"), (70, "301")]);
    let wire = demo().encode(&echo).unwrap();
    assert_eq!(&wire[..4], b"0800");
    assert_eq!(
        wire[4..20],
        [0x82, 0x20, 0, 0, 0, 0, 0, 0, 0x04, 0, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(&wire[20..], b"1231235959000001301");
    assert_eq!(demo().decode(&wire).unwrap(), echo);
}

/// Fields 2, 7, 12, 28, 32, 39, 41, 42, 50, 53 and 62, with a hex primary bitmap.
const HEX_SPEC: &str = r#"
bitmap = "hex"
[fields]
2  = { name = "pan", type = "n", length = "llvar", max = 19 }
7  = { name = "transmission_time", type = "n", length = 10 }
12 = { name = "local_time", type = "n", length = 6 }
28 = { name = "fee", type = "an", length = 9 }
32 = { name = "acquirer_id", type = "n", length = "llvar", max = 11 }
39 = { name = "response_code", type = "an", length = 2 }
41 = { name = "terminal_id", type = "ans", length = 8 }
42 = { name = "merchant_id", type = "ans", length = 15 }
50 = { name = "settlement_currency", type = "n", length = 3 }
53 = { name = "security", type = "n", length = 16 }
62 = { name = "private", type = "ans", length = "lllvar", max = 999 }
"#;

#[test]
fn golden_bitmap_decodes_to_its_fields() {
    let wire = b"02104210001102C04804\
        164761739001010119\
        1231235959\
        235959\
        D00000150\
        06123456\
        00\
        T0000001\
        M00000000000001\
        978\
        2600000000000000\
        005hello";
    let msg = spec(HEX_SPEC).decode(wire).unwrap();
    assert_eq!(&msg.mti, b"0210");
    assert_eq!(
        msg.fields.keys().copied().collect::<Vec<_>>(),
        [2, 7, 12, 28, 32, 39, 41, 42, 50, 53, 62]
    );
    assert_eq!(msg.get(28), Some(&b"D00000150"[..]));
    assert_eq!(msg.get(62), Some(&b"hello"[..]));
    assert_eq!(spec(HEX_SPEC).encode(&msg).unwrap(), wire);
}

/// An all-EBCDIC host with BCD numbers, as mainframe switches speak.
const MAINFRAME_SPEC: &str = r#"
mti = "bcd"
bitmap = "binary"
[fields]
2  = { name = "pan", type = "n", length = "llvar", max = 19, encoding = "bcd" }
4  = { name = "amount", type = "n", length = 12, encoding = "bcd" }
35 = { name = "track2", type = "z", length = "llvar", max = 37, encoding = "bcd", pad = "right" }
41 = { name = "terminal_id", type = "ans", length = 8, encoding = "ebcdic" }
43 = { name = "card_acceptor", type = "ans", length = "lllvar", max = 40, encoding = "ebcdic" }
49 = { name = "currency", type = "n", length = 3, encoding = "bcd" }
52 = { name = "pin_block", type = "b", length = 8 }
55 = { name = "icc", type = "b", length = "lllvar", max = 255, length_encoding = "binary" }
"#;

#[test]
fn ebcdic_and_bcd_fields_on_the_wire() {
    let mut msg = message(
        b"0200",
        &[
            (2, "4761739001010119"),
            (4, "000000001000"),
            (35, "4761739001010119=2512"),
            (41, "ATM 0001"),
            (43, "A"),
            (49, "978"),
        ],
    );
    msg.set(52, vec![0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF]);
    msg.set(55, vec![0x9F, 0x26]);
    let wire = spec(MAINFRAME_SPEC).encode(&msg).unwrap();
    let mut expected = vec![0x02, 0x00];
    expected.extend(hex::decode("5000000020A09200").unwrap());
    expected.extend([0x16, 0x47, 0x61, 0x73, 0x90, 0x01, 0x01, 0x01, 0x19]);
    expected.extend([0x00, 0x00, 0x00, 0x00, 0x10, 0x00]);
    // 21 digits of track 2, the separator as D, a right pad nibble F.
    expected.extend([
        0x21, 0x47, 0x61, 0x73, 0x90, 0x01, 0x01, 0x01, 0x19, 0xD2, 0x51, 0x2F,
    ]);
    expected.extend([0xC1, 0xE3, 0xD4, 0x40, 0xF0, 0xF0, 0xF0, 0xF1]);
    // EBCDIC 'A' is 0xC1, after an EBCDIC length prefix of 001.
    expected.extend([0xF0, 0xF0, 0xF1, 0xC1]);
    expected.extend([0x09, 0x78]);
    expected.extend([0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF]);
    expected.extend([0x00, 0x02, 0x9F, 0x26]);
    assert_eq!(wire, expected);
    assert_eq!(spec(MAINFRAME_SPEC).decode(&wire).unwrap(), msg);
}

#[test]
fn malformed_messages_are_clean_errors() {
    let demo = demo();
    let wire = demo.encode(&authorization_request()).unwrap();
    assert_eq!(demo.decode(b"01"), Err(CodecError::TruncatedMti));
    assert_eq!(demo.decode(b"01X0\0\0\0\0\0\0\0\0"), Err(CodecError::Mti));
    assert_eq!(
        demo.decode(b"0100\x72\x38"),
        Err(CodecError::Bitmap(super::bitmap::BitmapError::Truncated))
    );
    // Cut anywhere inside the fields: the field that was cut is named.
    for cut in 13..wire.len() {
        match demo.decode(&wire[..cut]) {
            Err(CodecError::Field {
                error: FieldError::Truncated,
                ..
            }) => {}
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
    let mut trailing = wire.clone();
    trailing.push(b'0');
    assert_eq!(demo.decode(&trailing), Err(CodecError::Trailing(1)));
    // Field 5 is not in the demo spec.
    let mut unknown = wire.clone();
    unknown[4] |= 0x08;
    assert_eq!(demo.decode(&unknown), Err(CodecError::UnknownField(5)));
    // A PAN length over the field's max of 19.
    let mut long_pan = wire.clone();
    long_pan[12..14].copy_from_slice(b"20");
    let error = demo.decode(&long_pan).unwrap_err();
    assert_eq!(
        error.to_string(),
        "field 2 (pan): the length prefix is over the field's maximum of 19"
    );
    // A letter in the amount: named, without the value.
    let mut letter = wire.clone();
    letter[36] = b'A';
    let error = demo.decode(&letter).unwrap_err();
    assert_eq!(error.to_string(), "field 4 (amount): must hold digits only");
}

#[test]
fn messages_the_spec_cannot_carry_are_refused() {
    let demo = demo();
    let mut msg = authorization_request();
    msg.set(5, "1");
    assert_eq!(demo.encode(&msg), Err(CodecError::UnknownField(5)));
    let mut msg = authorization_request();
    msg.set(1, "1");
    assert_eq!(demo.encode(&msg), Err(CodecError::UnknownField(1)));
    let mut msg = authorization_request();
    msg.set(200, "1");
    assert_eq!(demo.encode(&msg), Err(CodecError::UnknownField(200)));
    let mut msg = authorization_request();
    msg.mti = *b"01A0";
    assert_eq!(demo.encode(&msg), Err(CodecError::Mti));
    let mut msg = authorization_request();
    msg.set(4, "12.50");
    assert_eq!(
        demo.encode(&msg).unwrap_err().to_string(),
        "field 4 (amount): must be exactly 12 long"
    );
}

#[test]
fn max_message_len_bounds_every_message() {
    let demo = demo();
    let fields: [(u8, &str); 18] = [
        (2, "1234567890123456789"),
        (3, "000000"),
        (4, "000000000001"),
        (7, "1231235959"),
        (11, "000001"),
        (12, "235959"),
        (13, "1231"),
        (14, "2712"),
        (22, "010"),
        (32, "12345678901"),
        (37, "ABCDEFGHIJKL"),
        (38, "ABC123"),
        (39, "00"),
        (41, "12345678"),
        (42, "123456789012345"),
        (49, "978"),
        (70, "301"),
        (90, "000000000000000000000000000000000000000000"),
    ];
    let wire = demo.encode(&message(b"0100", &fields)).unwrap();
    assert_eq!(wire.len(), demo.max_message_len());
}

/// Values that fit each demo field.
fn demo_values() -> impl Strategy<Value = Message> {
    let digits = |n: usize| proptest::string::string_regex(&format!("[0-9]{{{n}}}")).unwrap();
    let text = |pattern: &str| proptest::string::string_regex(pattern).unwrap();
    (
        prop_oneof![Just(*b"0100"), Just(*b"0210"), Just(*b"0800")],
        proptest::option::of(text("[0-9]{0,19}")),
        proptest::option::of(digits(12)),
        proptest::option::of(digits(6)),
        proptest::option::of(text("[0-9]{0,11}")),
        proptest::option::of(text("[A-Za-z0-9 ]{12}")),
        proptest::option::of(text("[ -~]{15}")),
        proptest::option::of(digits(3)),
        proptest::option::of(digits(42)),
    )
        .prop_map(
            |(mti, pan, amount, stan, acquirer, rrn, merchant, network, original)| {
                let mut msg = Message::new(mti);
                for (field, value) in [
                    (2, pan),
                    (4, amount),
                    (11, stan),
                    (32, acquirer),
                    (37, rrn),
                    (42, merchant),
                    (70, network),
                    (90, original),
                ] {
                    if let Some(value) = value {
                        msg.set(field, value);
                    }
                }
                msg
            },
        )
}

proptest! {
    #[test]
    fn demo_messages_round_trip(msg in demo_values()) {
        let demo = demo();
        let wire = demo.encode(&msg).unwrap();
        prop_assert!(wire.len() <= demo.max_message_len());
        prop_assert_eq!(demo.decode(&wire), Ok(msg));
    }

    #[test]
    fn mainframe_messages_round_trip(
        pan in "[0-9]{0,19}",
        track2 in "[0-9]{1,19}=[0-9]{4,17}",
        acceptor in "[ -~]{0,40}",
        icc in proptest::collection::vec(any::<u8>(), 0..=255),
    ) {
        let spec = spec(MAINFRAME_SPEC);
        let mut msg = message(b"0100", &[(2, &pan), (35, &track2), (43, &acceptor)]);
        msg.set(55, icc);
        let wire = spec.encode(&msg).unwrap();
        prop_assert_eq!(spec.decode(&wire), Ok(msg));
    }
}

// ---- spec errors -------------------------------------------------------------------------

/// A minimal spec with one operation, to break one piece at a time.
fn minimal(extra_fields: &str, operation: &str) -> String {
    format!(
        r#"[fields]
4  = {{ name = "amount", type = "n", length = 12 }}
11 = {{ name = "stan", type = "n", length = 6 }}
39 = {{ name = "response_code", type = "an", length = 2 }}
41 = {{ name = "terminal_id", type = "ans", length = "llvar", max = 16 }}
{extra_fields}
[operations.pay]
request_mti = "0200"
response_mti = "0210"
request.11 = {{ generate = "stan" }}
{operation}
"#
    )
}

#[test]
fn minimal_spec_loads() {
    let spec = spec(&minimal("", "request.4 = { json = \"$.amount\" }"));
    assert_eq!(spec.operation_names().collect::<Vec<_>>(), ["pay"]);
    let pay = spec.operation("pay").unwrap();
    assert_eq!(pay.generated(), [(11, Generated::Stan)]);
    assert_eq!(pay.request_mti(), *b"0200");
    assert_eq!(pay.response_mti(), *b"0210");
    assert!(spec.operation("refund").is_none());
    assert!(!spec.can_echo(), "no field 70");
}

#[test]
fn spec_errors_name_the_place_and_the_problem() {
    let cases: &[(&str, &str, &str)] = &[
        ("", "request.5 = { json = \"$.x\" }", "11:13: operations.pay: request.5: field 5 is not in [fields]"),
        ("", "request.4 = { value = \"12\" }", "11:13: operations.pay: request.4: value does not fit field 4 (amount): it must be exactly 12 long"),
        ("", "request.4 = { value = \"12\", pad = \"zeros\" }", ""),
        ("", "request.41 = { json = \"$.t\", pad = \"spaces\" }", "operations.pay: request.41: pad is for fixed-length fields"),
        ("", "request.4 = { json = \"$.a\", value = \"000000000000\" }", "give exactly one of json, value, context, format or generate"),
        ("", "request.4 = { generate = \"local_date\" }", "request.4: field 4 (amount) cannot hold a generated local_date: it must be exactly 12 long"),
        ("", "request.4 = { generate = \"rrn\" }", "request.4: rrn is generated into field 37 only"),
        ("12 = { name = \"local_time\", type = \"n\", length = 6 }", "request.12 = { generate = \"stan\" }", "request.12: stan is already generated by another field"),
        ("", "request.4 = { jsn = \"$.a\" }", "11:15: unknown field `jsn`"),
        ("", "request.4 = { json = \"pan\" }", "\"pan\" is not a JSON path"),
        ("", "request.4 = { context = \"consumer\" }", "is not \"consumer.id\""),
        ("", "request.4 = { value = \"000000000000\", optional = true }", "optional is for json and context fields"),
        ("", "request.41 = { format = \"T{field.4}\" }", "request.41: {field.4}: field 4 is not a json, value or context field"),
        ("", "request.41 = { format = \"T{field.11}\" }", "field 11 is generated by the link"),
        ("", "request.41 = { format = \"T{$.a\" }", "a '{' without its '}'"),
        ("", "request.41 = { format = \"T{$.a:0}\" }", "a width is 1 to 999"),
        ("", "response.x = 5", "response.x: field 5 is not in [fields]"),
        ("", "response.x = { field = 41, type = \"number\" }", "type = \"number\" is for n fields"),
        ("", "response.x = { field = 4, value = 1 }", "give exactly one of field or value"),
        ("", "approved = []", "approved needs at least one response code"),
        ("", "approved = [\"000\"]", "response code \"000\": field 39 must be exactly 2 long"),
        ("", "declines.\"00\" = { status = 402, detail = \"x\" }", "response code \"00\" is both approved and declined"),
        ("", "declines.\"05\" = { status = 200, detail = \"x\" }", "a decline's status is 400 to 599"),
        ("5 = { name = \"x\", type = \"n\", length = \"llvar\" }", "", "6:5: field 5: llvar and lllvar fields need a max"),
        ("5 = { name = \"x\", type = \"n\", length = \"lllvar\", max = 1000 }", "", "an lllvar max is 1 to 999"),
        ("5 = { name = \"x\", type = \"n\", length = 1000 }", "", "a fixed length is 1 to 999"),
        ("5 = { name = \"x\", type = \"n\", length = \"var\" }", "", "expected a fixed length (a number), \"llvar\" or \"lllvar\""),
        ("5 = { name = \"x\", type = \"an\", length = 2, encoding = \"bcd\" }", "", "type \"an\" cannot be encoded as \"bcd\""),
        ("5 = { name = \"x\", type = \"b\", length = 2, encoding = \"ascii\" }", "", "type \"b\" cannot be encoded as \"ascii\""),
        ("5 = { name = \"x\", type = \"n\", length = 2, pad = \"right\" }", "", "pad is for bcd fields"),
        ("5 = { name = \"x\", type = \"n\", length = 2, length_encoding = \"bcd\" }", "", "length_encoding is for llvar and lllvar fields"),
        ("5 = { name = \"amount\", type = \"n\", length = 2 }", "", "the name \"amount\" is also field 4's"),
        ("5 = { name = \"x\", type = \"q\", length = 2 }", "", "unknown variant `q`"),
        ("129 = { name = \"x\", type = \"n\", length = 2 }", "", "fields.129: field numbers are 2 to 128"),
        ("1 = { name = \"x\", type = \"n\", length = 2 }", "", "fields.1: field numbers are 2 to 128"),
        ("70 = { name = \"network\", type = \"n\", length = 3 }", "", "field 70: fields 7, 11, 39 and 70 must carry the echo test (0800/0810): field 7 is not in the spec"),
    ];
    for (fields, operation, expected) in cases {
        let text = minimal(fields, operation);
        match Spec::from_toml(&text) {
            Ok(_) if expected.is_empty() => {}
            Ok(_) => panic!("{operation}{fields}: loaded, expected {expected}"),
            Err(e) => assert!(
                !expected.is_empty() && e.to_string().contains(expected),
                "{operation}{fields}: {e}"
            ),
        }
    }
}

#[test]
fn reversals_name_an_operation_that_is_not_reversed_in_turn() {
    let with = |pay: &str, refund: &str| {
        minimal("", pay)
            + "[operations.refund]\nrequest_mti = \"0400\"\nresponse_mti = \"0410\"\n"
            + "request.11 = { generate = \"stan\" }\n"
            + refund
    };
    let loaded = spec(&with("reversed_by = \"refund\"", ""));
    assert_eq!(
        loaded.operation("pay").unwrap().reversed_by(),
        Some("refund")
    );
    assert_eq!(loaded.operation("refund").unwrap().reversed_by(), None);
    assert!(spec_error(&with("reversed_by = \"void\"", ""))
        .contains("operations.pay.reversed_by: no operation \"void\""));
    assert!(
        spec_error(&with("reversed_by = \"refund\"", "reversed_by = \"pay\"\n"))
            .contains("is reversed in turn")
    );
    assert!(spec_error(&with("reversed_by = \"pay\"", "")).contains("is reversed in turn"));
}

#[test]
fn operations_need_a_stan_and_a_response_code() {
    let no_stan = minimal("", "").replace("request.11 = { generate = \"stan\" }", "");
    assert!(spec_error(&no_stan).contains("the link matches answers by STAN"));
    let no_39 = minimal("", "").replace(
        "39 = { name = \"response_code\", type = \"an\", length = 2 }",
        "",
    );
    assert!(spec_error(&no_39).contains("field 39 (the response code) must be in [fields]"));
    let binary_39 = minimal("", "").replace(
        "39 = { name = \"response_code\", type = \"an\", length = 2 }",
        "39 = { name = \"response_code\", type = \"b\", length = 2 }",
    );
    assert!(spec_error(&binary_39).contains("must be a text field, not b"));
    let bad_mti = minimal("", "").replace("\"0200\"", "\"200\"");
    assert_eq!(
        spec_error(&bad_mti),
        "8:15: operations.pay: request_mti must be 4 digits"
    );
    let unknown_key = format!("{}\nverbose = true\n", minimal("", ""));
    assert!(spec_error(&unknown_key).contains("unknown field `verbose`"));
    assert!(spec_error("mti = \"ascii\"").contains("missing field `fields`"));
}

// ---- mapping -----------------------------------------------------------------------------

fn body() -> serde_json::Value {
    json!({
        "pan": "4761739001010119",
        "amount_minor": 1000,
        "currency": "978",
        "terminal_id": "T1",
        "merchant_id": "M00000000000001",
        "expiry": "2712",
    })
}

#[test]
fn demo_authorization_request_from_json() {
    let demo = demo();
    let authorization = demo.operation("authorization").unwrap();
    let msg = authorization
        .request(&body(), &MappingContext::default())
        .unwrap();
    assert_eq!(&msg.mti, b"0100");
    assert_eq!(msg.get(2), Some(&b"4761739001010119"[..]));
    assert_eq!(msg.get(4), Some(&b"000000001000"[..]));
    assert_eq!(msg.get(14), Some(&b"2712"[..]));
    assert_eq!(msg.get(41), Some(&b"T1      "[..]));
    assert_eq!(msg.get(49), Some(&b"978"[..]));
    assert_eq!(msg.get(32), Some(&b"4711"[..]));
    // The link fills these.
    for field in [7, 11, 12, 13, 37] {
        assert_eq!(msg.get(field), None);
    }
    assert_eq!(
        authorization.generated(),
        [
            (7, Generated::TransmissionTime),
            (11, Generated::Stan),
            (12, Generated::LocalTime),
            (13, Generated::LocalDate),
            (37, Generated::Rrn),
        ]
    );
    // Once the link has filled them, the request encodes.
    let mut msg = msg;
    for (field, value) in [
        (7, "1231235959"),
        (11, "000001"),
        (12, "235959"),
        (13, "1231"),
        (37, "512312000001"),
    ] {
        msg.set(field, value);
    }
    demo.encode(&msg).unwrap();

    // An optional member may be left out; amounts may be strings.
    let mut short = body();
    short.as_object_mut().unwrap().remove("expiry");
    short["amount_minor"] = json!("250");
    let msg = authorization
        .request(&short, &MappingContext::default())
        .unwrap();
    assert_eq!(msg.get(14), None);
    assert_eq!(msg.get(4), Some(&b"000000000250"[..]));
}

#[test]
fn mapping_errors_name_the_member_never_the_value() {
    let demo = demo();
    let authorization = demo.operation("authorization").unwrap();
    let ctx = MappingContext::default();
    let with = |member: &str, value: serde_json::Value| {
        let mut body = body();
        body[member] = value;
        authorization.request(&body, &ctx).unwrap_err()
    };
    let cases = [
        (with("pan", json!(null)), "$.pan is required"),
        (
            with("pan", json!("4761 7390 0101 0119")),
            "$.pan: field 2 (pan) must hold digits only",
        ),
        (
            with("pan", json!("47617390010101190000")),
            "$.pan: field 2 (pan) must be at most 19 long",
        ),
        (
            with("amount_minor", json!(12.5)),
            "$.amount_minor must be a string or a whole number",
        ),
        (
            with("amount_minor", json!(-5)),
            "$.amount_minor must be a string or a whole number",
        ),
        (
            with("amount_minor", json!(1234567890123u64)),
            "$.amount_minor: field 4 (amount) must be exactly 12 long",
        ),
        (
            with("amount_minor", json!({"value": 5})),
            "$.amount_minor must be a string or a whole number",
        ),
        (
            with("terminal_id", json!("TERMINAL-0001")),
            "$.terminal_id: field 41 (terminal_id) must be exactly 8 long",
        ),
        (
            with("merchant_id", json!("Mérchant")),
            "$.merchant_id: field 42 (merchant_id) must hold printable ASCII characters only",
        ),
        (
            with("currency", json!(true)),
            "$.currency must be a string or a whole number",
        ),
    ];
    for (error, expected) in cases {
        assert_eq!(error.to_string(), expected);
    }
    assert!(!with("pan", json!("4761 7390 0101 0119"))
        .to_string()
        .contains("4761"));
}

#[test]
fn reversal_formats_the_original_data() {
    let demo = demo();
    let reversal = demo.operation("reversal").unwrap();
    let mut body = body();
    body["original"] = json!({"stan": 42, "transmission_time": "1231235959"});
    let msg = reversal.request(&body, &MappingContext::default()).unwrap();
    assert_eq!(
        msg.get(90),
        Some(&b"010000004212312359590000000471100000000000"[..])
    );
    body["original"]["stan"] = json!("1234567");
    assert_eq!(
        reversal
            .request(&body, &MappingContext::default())
            .unwrap_err()
            .to_string(),
        "$.original.stan must be at most 6 characters"
    );
    body["original"] = json!({"stan": "000042"});
    assert_eq!(
        reversal
            .request(&body, &MappingContext::default())
            .unwrap_err()
            .to_string(),
        "$.original.transmission_time is required"
    );
    body["original"] = json!({"stan": "00004A", "transmission_time": "1231235959"});
    assert_eq!(
        reversal
            .request(&body, &MappingContext::default())
            .unwrap_err()
            .to_string(),
        "format of field 90: field 90 (original_data) must hold digits only"
    );
}

#[test]
fn context_sources_read_the_consumer_and_attributes() {
    let spec = spec(&minimal(
        "42 = { name = \"merchant_id\", type = \"ans\", length = 15 }\n\
         48 = { name = \"note\", type = \"ans\", length = \"lllvar\", max = 99 }\n\
         52 = { name = \"pin_block\", type = \"b\", length = 8 }",
        "request.41 = { context = \"consumer.id\" }\n\
         request.42 = { context = \"consumer.metadata.merchant\", pad = \"spaces\" }\n\
         request.48 = { format = \"{attributes.channel}/{consumer.id}\" }\n\
         request.52 = { json = \"$.pin_block\", optional = true }",
    ));
    let pay = spec.operation("pay").unwrap();
    let consumer = Consumer {
        id: "acme".into(),
        metadata: BTreeMap::from([("merchant".into(), "M42".into())]),
    };
    let attributes = BTreeMap::from([("channel".into(), "web".into())]);
    let ctx = MappingContext {
        consumer: Some(&consumer),
        attributes: Some(&attributes),
    };
    let msg = pay
        .request(&json!({"pin_block": "0123456789abcdef"}), &ctx)
        .unwrap();
    assert_eq!(msg.get(41), Some(&b"acme"[..]));
    assert_eq!(msg.get(42), Some(&b"M42            "[..]));
    assert_eq!(msg.get(48), Some(&b"web/acme"[..]));
    assert_eq!(
        msg.get(52),
        Some(&[0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF][..])
    );
    assert_eq!(
        pay.request(&json!({"pin_block": "xyz"}), &ctx)
            .unwrap_err()
            .to_string(),
        "$.pin_block must be a hexadecimal string"
    );
    assert_eq!(
        pay.request(&json!({}), &MappingContext::default())
            .unwrap_err()
            .to_string(),
        "consumer.id is required"
    );

    let mut request_context =
        corridor_filters::RequestContext::new("r-1".into(), "route".into(), None);
    request_context.consumer = Some(consumer);
    request_context.attributes = attributes;
    let from_request = pay
        .request(&json!({}), &MappingContext::from(&request_context))
        .unwrap();
    assert_eq!(from_request.get(48), Some(&b"web/acme"[..]));
}

fn answer(mti: &[u8; 4], code: &str) -> Message {
    let mut msg = authorization_request();
    msg.mti = *mti;
    msg.set(39, code);
    if code == "00" {
        msg.set(38, "A1B2C3");
    }
    msg
}

#[test]
fn approved_answers_become_json() {
    let demo = demo();
    let authorization = demo.operation("authorization").unwrap();
    assert_eq!(
        authorization.response(&answer(b"0110", "00")).unwrap(),
        json!({
            "approved": true,
            "approval_code": "A1B2C3",
            "response_code": "00",
            "stan": "000042",
            "rrn": "512312000042",
            "transmission_time": "1231235959",
            "amount_minor": 1000,
        })
    );
}

#[test]
fn declines_and_host_failures_become_problems() {
    let demo = demo();
    let authorization = demo.operation("authorization").unwrap();
    let declined = authorization.response(&answer(b"0110", "51")).unwrap_err();
    assert_eq!(declined.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(declined.code.as_deref(), Some("51"));
    assert_eq!(declined.kind(), "card-declined");
    let problem = declined.problem();
    assert_eq!(problem.type_uri(), "urn:corridor:problem:card-declined");
    assert_eq!(problem.title, "Declined by the card host");
    assert_eq!(
        problem.detail.as_deref(),
        Some("Insufficient funds (response code 51)")
    );

    let invalid = authorization.response(&answer(b"0110", "14")).unwrap_err();
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    // A code the spec does not list: the default decline.
    let other = authorization.response(&answer(b"0110", "62")).unwrap_err();
    assert_eq!(
        (other.status, other.detail.as_str()),
        (StatusCode::PAYMENT_REQUIRED, "Declined")
    );

    let unavailable = authorization.response(&answer(b"0110", "91")).unwrap_err();
    assert_eq!(unavailable.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(unavailable.kind(), "card-host-failed");
    assert_eq!(unavailable.problem().title, "The card host failed");

    let wrong_mti = authorization.response(&answer(b"0210", "00")).unwrap_err();
    assert_eq!(
        (wrong_mti.status, wrong_mti.kind()),
        (StatusCode::BAD_GATEWAY, "card-host-failed")
    );
    let mut no_code = answer(b"0110", "00");
    no_code.fields.remove(&39);
    let no_code = authorization.response(&no_code).unwrap_err();
    assert_eq!(
        no_code.detail,
        "The card host's answer has no response code"
    );
    assert_eq!(no_code.code, None);
    let mut no_approval = answer(b"0110", "00");
    no_approval.fields.remove(&38);
    assert_eq!(
        authorization.response(&no_approval).unwrap_err().detail,
        "The card host's answer lacks field 38 (approval_code)"
    );

    // The reversal's own code, on top of the spec's.
    let reversal = demo.operation("reversal").unwrap();
    let not_found = reversal.response(&answer(b"0410", "25")).unwrap_err();
    assert_eq!(not_found.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(not_found.detail, "Original transaction not found");
    assert_eq!(
        reversal
            .response(&answer(b"0410", "05"))
            .unwrap_err()
            .detail,
        "Do not honour"
    );
}
