//! Tests of the `ff1` engine, with AES-256 keys written to a temporary directory at test time.

mod config;
mod engines;
mod fixed;
mod nist;
mod pinned;
mod props;

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use super::Ff1Config;
use crate::tokenize::{Detokenized, TokenEngine, TokenError};
use crate::{BuildContext, BuildError};

/// Test keys of versions 1 to 3 (random, for these tests only).
const KEYS: [&str; 3] = [
    "575d8b2d5604585f6d37c0583e14c8be5c557f7d68a5c264e223767d862f30cf",
    "e4282c034abe29838f0b5042220f922e87aaec72b92676637cd55807e7d9b82a",
    "62e46792effdf0a3f44a9d29e597e7103a5744506db66905d80dedfe6fd845be",
];

/// The `keys` option naming versions `versions` (files in the directory of [`build`]),
/// `active` making new tokens.
fn keys_option(versions: &[u32], active: u32) -> String {
    let list: Vec<String> = versions
        .iter()
        .map(|v| format!("{{ version = {v}, file = \"v{v}.key\" }}"))
        .collect();
    format!(
        "keys = {{ active = {active}, versions = [{}] }}",
        list.join(", ")
    )
}

/// Builds an engine from its other options (TOML lines) and a key set of `versions`.
fn build(options: &str, versions: &[u32], active: u32) -> Result<Arc<dyn TokenEngine>, BuildError> {
    let dir = tempfile::tempdir().unwrap();
    for (i, key) in KEYS.iter().enumerate() {
        std::fs::write(dir.path().join(format!("v{}.key", i + 1)), key).unwrap();
    }
    let text = format!("{options}\n{}", keys_option(versions, active));
    let config: Ff1Config = toml::from_str(&text).unwrap();
    config.build(&BuildContext::new(dir.path()))
}

/// [`build`] with version 1 only.
fn engine(options: &str) -> Arc<dyn TokenEngine> {
    build(options, &[1], 1).unwrap()
}

/// Runs an engine call to its end. FF1 engines never wait, so one poll finishes it.
fn now<T>(future: impl Future<Output = T>) -> T {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("an FF1 engine waited"),
    }
}

fn tokenize(engine: &dyn TokenEngine, value: &str) -> Result<String, TokenError> {
    now(engine.tokenize(value))
}

fn detokenize(engine: &dyn TokenEngine, token: &str) -> Result<Detokenized, TokenError> {
    now(engine.detokenize(token))
}

/// `value` tokenized, checked to come back with key version `version`.
fn round_trip(engine: &dyn TokenEngine, value: &str, version: u32) -> String {
    let token = tokenize(engine, value).unwrap();
    let back = detokenize(engine, &token).unwrap();
    assert_eq!(back.value, value, "token {token}");
    assert_eq!(back.key_version, version);
    token
}

/// The Luhn remainder of a digit string.
fn luhn_remainder(digits: &str) -> u8 {
    let digits: Vec<u8> = digits.bytes().map(|b| b - b'0').collect();
    super::luhn::remainder(&digits)
}
