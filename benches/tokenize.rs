//! What one FF1 field costs: `tokenize` and `detokenize` of the `ff1` tokenization engine
//! for a PAN (last four kept; then BIN and last four), an IBAN, an account number and an
//! alphanumeric string, through the `TokenEngine` trait as the filters call it. Issue #6
//! asks for at most 10 µs per field. Then the whole `tokenize` filter on the answer of
//! benches/tokenize.sh (10 cards), with the mask and the FF1 engine: the filter's own cost
//! (checking the JSON, following the path, splicing) beside the engines'.
//!
//! FF1 engines and the filter never wait, so one poll finishes each call: no runtime is
//! measured.

use std::future::Future;
use std::hint::black_box;
use std::path::Path;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use corridor_filters::tokenize::ff1::Ff1Config;
use corridor_filters::tokenize::TokenEngine;
use corridor_filters::{BuildContext, Filter, FilterConfig, Flow, RequestContext};
use criterion::{criterion_group, criterion_main, Criterion};
use http::header::CONTENT_TYPE;

/// A key for this benchmark only.
const KEY: &str = "8c1f5e2a7b3d9064f1e2d3c4b5a69788a7b6c5d4e3f2019f8e7d6c5b4a392817";

fn engine(dir: &Path, options: &str) -> Arc<dyn TokenEngine> {
    let text = format!(
        "{options}\ntweak = \"partner-bench\"\n\
         keys = {{ active = 1, versions = [{{ version = 1, file = \"bench.key\" }}] }}"
    );
    toml::from_str::<Ff1Config>(&text)
        .unwrap()
        .build(&BuildContext::new(dir))
        .unwrap()
}

fn now<T>(future: impl Future<Output = T>) -> T {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("an FF1 engine waited"),
    }
}

fn ff1(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bench.key"), KEY).unwrap();
    let mut group = c.benchmark_group("ff1");
    for (name, options, value) in [
        ("pan", "kind = \"pan\"", "4111111111111111"),
        (
            "pan_bin_last4",
            "kind = \"pan\"\nkeep_first = 6\nmin_length = 17",
            "6011000990139424124",
        ),
        ("iban", "kind = \"iban\"", "DE89370400440532013000"),
        ("account", "kind = \"account\"", "0532013000"),
        ("string", "kind = \"string\"", "Ref2024xK9mQ7tZ1"),
    ] {
        let engine = engine(dir.path(), options);
        let token = now(engine.tokenize(value)).unwrap();
        assert_eq!(now(engine.detokenize(&token)).unwrap().value, value);
        group.bench_function(format!("{name}/tokenize"), |b| {
            b.iter(|| now(engine.tokenize(black_box(value))).unwrap())
        });
        group.bench_function(format!("{name}/detokenize"), |b| {
            b.iter(|| now(engine.detokenize(black_box(&token))).unwrap())
        });
    }
    group.finish();
}

/// The backend's answer in benches/tokenize.sh: 10 cards of 5 members each.
fn cards_body() -> String {
    let cards: Vec<String> = [
        "4111111111111111",
        "4012888888881881",
        "5555555555554444",
        "5105105105105100",
        "4000056655665556",
        "5200828282828210",
        "4242424242424242",
        "4000002500003155",
        "4000000000003220",
        "6011111111111117",
    ]
    .iter()
    .map(|pan| {
        format!(r#"{{"pan":"{pan}","expiry":"12/28","holder":"Ada Lovelace","limit":2500.00}}"#)
    })
    .collect();
    format!(
        r#"{{"account_id":"ACC-1001","cards":[{}]}}"#,
        cards.join(",")
    )
}

fn filter(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bench.key"), KEY).unwrap();
    let body = Bytes::from(cards_body());
    let (mut resp, _) = http::Response::new(()).into_parts();
    resp.headers
        .insert(CONTENT_TYPE, "application/json".parse().unwrap());
    let mut group = c.benchmark_group("tokenize_filter");
    for (name, engine) in [
        ("mask_10_pans", r#"{ type = "mask", keep_last = 4 }"#),
        (
            "ff1_10_pans",
            r#"{ type = "ff1", kind = "pan", tweak = "bench", keys = { active = 1, versions = [{ version = 1, file = "bench.key" }] } }"#,
        ),
    ] {
        let text = format!(
            "type = \"tokenize\"\nrules = [{{ path = \"$.cards[*].pan\", engine = {engine} }}]"
        );
        let filter: Arc<dyn Filter> = toml::from_str::<FilterConfig>(&text)
            .unwrap()
            .build(&BuildContext::new(dir.path()))
            .unwrap();
        let mut run = || {
            let mut ctx = RequestContext::new("r-1".into(), "route".into(), None);
            let mut out = body.clone();
            let flow = now(filter.on_response_body(&mut resp, &mut out, &mut ctx));
            assert!(matches!(flow, Flow::Continue));
            out
        };
        assert!(!std::str::from_utf8(&run())
            .unwrap()
            .contains("4111111111111111"));
        group.bench_function(name, |b| b.iter(&mut run));
    }
    group.finish();
}

criterion_group!(benches, ff1, filter);
criterion_main!(benches);
