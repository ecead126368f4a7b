//! What one ISO 8583 message costs: `encode` and `decode` of the demo host's authorization
//! request (13 ASCII fields, binary bitmap) and its answer, and of a mainframe-style request
//! (BCD MTI and numbers, EBCDIC text, a secondary bitmap); and the JSON mapping of the demo
//! `authorization` operation both ways, as the proxy path calls it per request.

use std::hint::black_box;

use corridor::iso8583::{MappingContext, Message, Spec};
use criterion::{criterion_group, criterion_main, Criterion};

const DEMO: &str = include_str!("../conf/iso8583/demo-host.toml");

const MAINFRAME: &str = r#"
mti = "bcd"
[fields]
2  = { name = "pan", type = "n", length = "llvar", max = 19, encoding = "bcd" }
3  = { name = "processing_code", type = "n", length = 6, encoding = "bcd" }
4  = { name = "amount", type = "n", length = 12, encoding = "bcd" }
11 = { name = "stan", type = "n", length = 6, encoding = "bcd" }
35 = { name = "track2", type = "z", length = "llvar", max = 37, encoding = "bcd", pad = "right" }
41 = { name = "terminal_id", type = "ans", length = 8, encoding = "ebcdic" }
43 = { name = "card_acceptor", type = "ans", length = "lllvar", max = 40, encoding = "ebcdic" }
49 = { name = "currency", type = "n", length = 3, encoding = "bcd" }
52 = { name = "pin_block", type = "b", length = 8 }
102 = { name = "account", type = "ans", length = "llvar", max = 28, encoding = "ebcdic" }
"#;

fn message(mti: &[u8; 4], fields: &[(u8, &[u8])]) -> Message {
    let mut msg = Message::new(*mti);
    for (field, value) in fields {
        msg.set(*field, value.to_vec());
    }
    msg
}

fn demo_request() -> Message {
    message(
        b"0100",
        &[
            (2, b"4761739001010119"),
            (3, b"000000"),
            (4, b"000000001000"),
            (7, b"1231235959"),
            (11, b"000042"),
            (12, b"235959"),
            (13, b"1231"),
            (22, b"010"),
            (32, b"4711"),
            (37, b"512312000042"),
            (41, b"T0000001"),
            (42, b"M00000000000001"),
            (49, b"978"),
        ],
    )
}

fn codec(c: &mut Criterion) {
    let demo = Spec::from_toml(DEMO).unwrap();
    let mainframe = Spec::from_toml(MAINFRAME).unwrap();
    let mut answer = demo_request();
    answer.mti = *b"0110";
    answer.set(38, "A1B2C3");
    answer.set(39, "00");
    let mainframe_request = message(
        b"0200",
        &[
            (2, b"4761739001010119"),
            (3, b"000000"),
            (4, b"000000001000"),
            (11, b"000042"),
            (35, b"4761739001010119=2512101"),
            (41, b"ATM 0001"),
            (43, b"Bank of Examples, Main Street"),
            (49, b"978"),
            (52, &[0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF]),
            (102, b"DE89370400440532013000"),
        ],
    );
    let mut group = c.benchmark_group("iso8583");
    for (name, spec, msg) in [
        ("demo_0100", &demo, demo_request()),
        ("demo_0110", &demo, answer),
        ("mainframe_0200", &mainframe, mainframe_request),
    ] {
        let wire = spec.encode(&msg).unwrap();
        assert_eq!(spec.decode(&wire).unwrap(), msg);
        group.bench_function(format!("{name}/encode"), |b| {
            b.iter(|| spec.encode(black_box(&msg)).unwrap())
        });
        group.bench_function(format!("{name}/decode"), |b| {
            b.iter(|| spec.decode(black_box(&wire)).unwrap())
        });
    }
    group.finish();
}

fn mapping(c: &mut Criterion) {
    let demo = Spec::from_toml(DEMO).unwrap();
    let authorization = demo.operation("authorization").unwrap();
    let body = serde_json::json!({
        "pan": "4761739001010119",
        "amount_minor": 1000,
        "currency": "978",
        "terminal_id": "T0000001",
        "merchant_id": "M00000000000001",
        "expiry": "2712",
    });
    let ctx = MappingContext::default();
    let mut answer = demo_request();
    answer.mti = *b"0110";
    answer.set(38, "A1B2C3");
    answer.set(39, "00");
    let mut declined = answer.clone();
    declined.set(39, "51");
    authorization.request(&body, &ctx).unwrap();
    authorization.response(&answer).unwrap();
    let mut group = c.benchmark_group("iso8583_mapping");
    group.bench_function("authorization/request", |b| {
        b.iter(|| authorization.request(black_box(&body), &ctx).unwrap())
    });
    group.bench_function("authorization/response", |b| {
        b.iter(|| authorization.response(black_box(&answer)).unwrap())
    });
    group.bench_function("authorization/declined", |b| {
        b.iter(|| authorization.response(black_box(&declined)).unwrap_err())
    });
    group.finish();
}

criterion_group!(benches, codec, mapping);
criterion_main!(benches);
