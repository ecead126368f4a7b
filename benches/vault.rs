//! What the `vault` tokenization engine costs per call, on its two stores: redb in a
//! temporary directory (every new entry a durable commit, so an fsync), and the Redis on
//! 127.0.0.1:6379 (which must run).
//!
//! Per store: `tokenize_random` (a new entry each call), `tokenize_deterministic_known` (a
//! value already in the vault: a lookup, no write on redb; one script call on Redis) and
//! `detokenize` (over 1,000 tokens in turn). Each sample runs its iterations inside one
//! `block_on` of a current-thread runtime, so the runtime's cost is paid once per sample.
//! The Redis entries get a 10-minute TTL: they go away by themselves.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use corridor_filters::tokenize::vault::VaultConfig;
use corridor_filters::tokenize::TokenEngine;
use corridor_filters::BuildContext;
use criterion::{criterion_group, criterion_main, Criterion};
use tokio::runtime::Runtime;

const PAN: &str = "4111111111111111";
/// Tokens each `detokenize` benchmark cycles through.
const TOKENS: usize = 1_000;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A `pan` engine with the vault settings `settings`; its key file goes in `dir`.
fn engine(dir: &Path, settings: &str) -> Arc<dyn TokenEngine> {
    std::fs::write(
        dir.join("v1.key"),
        "2b7e151628aed2a6abf7158809cf4f3cef4369910f9a5e2e8c4d1b9a7f6e5d4c",
    )
    .unwrap();
    let config: VaultConfig = toml::from_str(&format!(
        "kind = \"pan\"\nkeys = {{ active = 1, versions = [{{ version = 1, file = \"v1.key\" }}] }}\n{settings}"
    ))
    .unwrap();
    config.build(&BuildContext::new(dir)).unwrap()
}

/// Runs `iters` calls of `call(n)` in one `block_on` and returns the time they took.
fn timed<F: std::future::Future<Output = ()>>(
    rt: &Runtime,
    iters: u64,
    mut call: impl FnMut(usize) -> F,
) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        for n in 0..iters {
            call(n as usize).await;
        }
        start.elapsed()
    })
}

/// The three benchmarks on the store the settings name.
fn bench_store(c: &mut Criterion, group: &str, random: &str, deterministic: &str) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let (random, deterministic) = (
        engine(dir.path(), random),
        engine(dir.path(), deterministic),
    );
    // References, which the async blocks below copy.
    let (random, deterministic) = (&random, &deterministic);
    // Connects or opens, and makes the entries the lookups measured find.
    let tokens: Vec<String> = (0..TOKENS)
        .map(|_| rt.block_on(random.tokenize(PAN)).unwrap())
        .collect();
    let known = &rt.block_on(deterministic.tokenize(PAN)).unwrap();

    let mut group = c.benchmark_group(group);
    group.bench_function("tokenize_random", |b| {
        b.iter_custom(|iters| {
            timed(&rt, iters, |_| async move {
                black_box(random.tokenize(PAN).await.unwrap());
            })
        })
    });
    group.bench_function("tokenize_deterministic_known", |b| {
        b.iter_custom(|iters| {
            timed(&rt, iters, |_| async move {
                assert_eq!(deterministic.tokenize(PAN).await.unwrap(), *known);
            })
        })
    });
    group.bench_function("detokenize", |b| {
        b.iter_custom(|iters| {
            timed(&rt, iters, |n| {
                let token = &tokens[n % TOKENS];
                async move {
                    assert_eq!(random.detokenize(token).await.unwrap().value, PAN);
                }
            })
        })
    });
    group.finish();
}

fn redb(c: &mut Criterion) {
    bench_store(
        c,
        "vault_redb",
        "data_dir = \"vault\"",
        "data_dir = \"vault\"\ndeterministic = true\nnamespace = \"det\"",
    );
}

fn redis(c: &mut Criterion) {
    let prefix = format!("corridor-bench:vault:{:016x}", fastrand::u64(..));
    let redis = format!("ttl = \"10m\"\nredis = {{ key_prefix = \"{prefix}\", timeout = \"1s\" }}");
    bench_store(
        c,
        "vault_redis",
        &format!("store = \"redis\"\n{redis}"),
        &format!("store = \"redis\"\ndeterministic = true\nnamespace = \"det\"\n{redis}"),
    );
}

criterion_group!(benches, redb, redis);
criterion_main!(benches);
