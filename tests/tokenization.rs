//! Tokenization through the real gateway, in front of the demo core: partners see only tokens,
//! the core only real values, each detokenization is audited, vault tokens outlive a restart
//! and are shared through Redis, and tokens of a rotated-out key version still work. No log
//! line ever holds a real card number or IBAN.
//!
//! Two chains, both after an api_key filter that names the consumer (acme or globex):
//!
//! - route "partner" (`/v1/...`, sent to the core without `/v1`): `detokenize` of path
//!   segment 2 (`/v1/cards/{token}`) for acme, then `tokenize` of every `pan` and `iban`;
//! - route "echo" (`/test/echo...`): `detokenize` only, in every location, so the core's
//!   echo shows the test what the core received.
//!
//! The Redis test needs Redis on 127.0.0.1:6379: it fails, not skips, without it.

mod common;
use common::*;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

const ACME_KEY: &str = "ak_test_acme_7d3f0b9e2c4a";
const GLOBEX_KEY: &str = "ak_test_globex_51c8e2a7d0f3";

/// The demo core's card numbers and IBANs: no partner answer and no log line may hold one.
const PANS: [&str; 3] = ["4111111111111111", "5555555555554444", "4000056655665556"];
const IBANS: [&str; 3] = [
    "DE89370400440532013000",
    "GB82WEST12345698765432",
    "NL91ABNA0417164300",
];

/// A directory of random keys (`pan-v1.key`, `pan-v2.key`, `iban.key`, 64 hex digits each)
/// and room for a vault; rules name them by absolute path, so any config can use them.
fn key_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in ["pan-v1", "pan-v2", "iban"] {
        let key: [u8; 32] = std::array::from_fn(|_| fastrand::u8(..));
        std::fs::write(dir.path().join(format!("{name}.key")), hex::encode(key)).unwrap();
    }
    dir
}

fn key_file(keys: &Path, name: &str) -> String {
    keys.join(format!("{name}.key")).display().to_string()
}

/// An ff1 engine for PANs, with key versions `versions` and `active` making new tokens.
fn ff1_pan(keys: &Path, versions: &[u32], active: u32) -> String {
    let versions: Vec<String> = versions
        .iter()
        .map(|v| {
            let file = key_file(keys, &format!("pan-v{v}"));
            format!(r#"{{ version = {v}, file = "{file}" }}"#)
        })
        .collect();
    format!(
        r#"{{ type = "ff1", kind = "pan", tweak = "acme", keys = {{ active = {active}, versions = [{}] }} }}"#,
        versions.join(", ")
    )
}

fn ff1_iban(keys: &Path) -> String {
    format!(
        r#"{{ type = "ff1", kind = "iban", tweak = "acme", keys = {{ active = 1, versions = [{{ version = 1, file = "{}" }}] }} }}"#,
        key_file(keys, "iban")
    )
}

/// A vault engine for PANs; `store` is its storage options.
fn vault_pan(keys: &Path, store: &str) -> String {
    format!(
        r#"{{ type = "vault", kind = "pan", {store}, keys = {{ active = 1, versions = [{{ version = 1, file = "{}" }}] }} }}"#,
        key_file(keys, "pan-v1")
    )
}

fn sha256_hex(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The gateway config (for [`Gateway::start_with_admin`]): the two chains and routes of the
/// module doc, with `pan` and `iban` (engine tables) as the engines, then `extra`.
fn config(core: SocketAddr, admin: u16, pan: &str, iban: &str, extra: &str) -> String {
    let api_key = format!(
        r#"type = "api_key"
keys = [{{ sha256 = "{}", consumer = "acme" }}, {{ sha256 = "{}", consumer = "globex" }}]"#,
        sha256_hex(ACME_KEY),
        sha256_hex(GLOBEX_KEY)
    );
    core_config(
        &[core],
        "config_rescan = \"1h\"",
        "",
        &format!(
            r#"
{admin}
[[chains.partner.filters]]
{api_key}

[[chains.partner.filters]]
type = "detokenize"

[[chains.partner.filters.rules]]
path_segment = 2
consumers = ["acme"]
engine = {pan}

[[chains.partner.filters]]
type = "tokenize"

[[chains.partner.filters.rules]]
path = "$..pan"
engine = {pan}

[[chains.partner.filters.rules]]
path = "$..iban"
engine = {iban}

[[chains.core_view.filters]]
{api_key}

[[chains.core_view.filters]]
type = "detokenize"

[[chains.core_view.filters.rules]]
path_segment = 2
consumers = ["acme"]
engine = {pan}

[[chains.core_view.filters.rules]]
header = "x-card-token"
consumers = ["acme"]
engine = {pan}

[[chains.core_view.filters.rules]]
query = "card"
consumers = ["acme"]
engine = {pan}

[[chains.core_view.filters.rules]]
body = "$.card.pan"
consumers = ["acme"]
engine = {pan}

[[chains.core_view.filters.rules]]
body = "$.to_iban"
consumers = ["acme"]
engine = {iban}

[[routes]]
id = "partner"
upstream = "core"
chain = "partner"
[routes.match]
path_prefix = "/v1"
[routes.rewrite]
strip_prefix = "/v1"

[[routes]]
id = "echo"
upstream = "core"
chain = "core_view"
[routes.match]
path_prefix = "/test/echo"

{extra}
"#,
            admin = admin_section(admin, ""),
        ),
    )
}

/// A gateway on `config`'s text, with its admin listener.
fn start(config: impl Fn(u16) -> String) -> Gateway {
    let admin = free_port();
    Gateway::start_with_admin(&config(admin), admin)
}

/// GET `path` as the consumer of `key`: the status and the body text.
async fn get(gw: &Gateway, path: &str, key: &str) -> (u16, String) {
    let resp = client()
        .get(gw.url(path))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// Asserts that `text` (an answer to a partner, or a log) holds no real PAN or IBAN.
fn assert_no_real_values(text: &str, what: &str) {
    for value in PANS.iter().chain(&IBANS) {
        assert!(!text.contains(value), "{what} holds {value}:\n{text}");
    }
}

/// Asserts that no line of the gateway's access log (audit lines included) or stderr holds a
/// real value.
fn assert_logs_clean(gw: &Gateway) {
    for log in ["access.log", "stderr.log"] {
        let text = std::fs::read_to_string(gw.dir.path().join(log)).unwrap_or_default();
        assert_no_real_values(&text, log);
    }
}

/// The cards as acme sees them: status 200, and the tokens in place of the PANs.
async fn card_tokens(gw: &Gateway) -> Vec<String> {
    let (status, body) = get(gw, "/v1/cards", ACME_KEY).await;
    assert_eq!(status, 200, "{body}");
    assert_no_real_values(&body, "GET /v1/cards");
    let cards: Value = serde_json::from_str(&body).unwrap();
    let tokens: Vec<String> = cards
        .as_array()
        .unwrap()
        .iter()
        .map(|card| card["pan"].as_str().unwrap().to_owned())
        .collect();
    for (token, pan) in tokens.iter().zip(PANS) {
        assert_eq!(token.len(), pan.len());
        assert_eq!(token[12..], pan[12..], "the last four digits stay");
    }
    tokens
}

/// The audit lines of the access log, after the lines of the answered requests are written.
async fn audit_lines(gw: &Gateway) -> Vec<Value> {
    gw.settled_access_log()
        .await
        .into_iter()
        .filter(|line| line["type"] == "audit")
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn partners_see_tokens_and_the_core_sees_real_values() {
    let keys = key_dir();
    let core = demo_core("core-1").await;
    let k = keys.path();
    let gw = start(|admin| config(core, admin, &ff1_pan(k, &[1], 1), &ff1_iban(k), ""));

    // Lists: every PAN and IBAN is a token, amounts are as the core wrote them.
    let tokens = card_tokens(&gw).await;
    let (status, body) = get(&gw, "/v1/accounts", ACME_KEY).await;
    assert_eq!(status, 200, "{body}");
    assert_no_real_values(&body, "GET /v1/accounts");
    let accounts: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(accounts[0]["balance"], "1520.35");
    assert_eq!(accounts[0]["pan"], tokens[0].as_str(), "one token per PAN");
    let iban_token = accounts[0]["iban"].as_str().unwrap().to_owned();
    assert!(iban_token.starts_with("DE") && iban_token.len() == IBANS[0].len());
    assert!(corridor_democore::iban_valid(&iban_token));

    // A token sent back reaches the core as the card number: the core finds the card, and
    // its answer is tokenized again (FF1 gives the same token).
    let (status, body) = get(&gw, &format!("/v1/cards/{}", tokens[1]), ACME_KEY).await;
    assert_eq!(status, 200, "{body}");
    let card: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(card["holder"], "Alan Turing");
    assert_eq!(card["pan"], tokens[1].as_str());

    // The core receives real values in every location.
    let resp = client()
        .post(gw.url(&format!("/test/echo/{}?x=1&card={}", tokens[0], tokens[2])))
        .header("x-api-key", ACME_KEY)
        .header("x-card-token", &tokens[1])
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"card":{{"pan":"{}","cvc":"123"}},"to_iban":"{iban_token}","amount":10.50}}"#,
            tokens[0]
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let echo: Value = resp.json().await.unwrap();
    assert_eq!(echo["path"], format!("/test/echo/{}", PANS[0]));
    assert_eq!(echo["query"], format!("x=1&card={}", PANS[2]));
    assert_eq!(echo["headers"]["x-card-token"], PANS[1]);
    let sent = format!(
        r#"{{"card":{{"pan":"{}","cvc":"123"}},"to_iban":"{}","amount":10.50}}"#,
        PANS[0], IBANS[0]
    );
    assert_eq!(echo["body"], sent.as_str());
    assert_eq!(
        echo["body_len"],
        sent.len(),
        "Content-Length follows the new body"
    );
    assert!(echo["headers"].get("x-api-key").is_none());

    // One audit line per detokenization: who, where, which key; never a value or a token.
    let audit = audit_lines(&gw).await;
    assert_eq!(audit.len(), 6, "{audit:?}");
    assert_eq!(audit[0]["route"], "partner");
    assert_eq!(audit[0]["field"], "path_segment 2");
    let echo_fields: Vec<&str> = audit[1..]
        .iter()
        .map(|line| line["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        echo_fields,
        [
            "path_segment 2",
            "header x-card-token",
            "query card",
            "body $.card.pan",
            "body $.to_iban",
        ]
    );
    for line in &audit {
        assert_eq!(line["action"], "detokenize", "{line}");
        assert_eq!(line["consumer"], "acme", "{line}");
        assert_eq!(line["key_version"], 1, "{line}");
        assert!(line["request_id"].as_str().is_some_and(|id| !id.is_empty()));
        let text = line.to_string();
        assert!(tokens.iter().all(|t| !text.contains(t.as_str())), "{text}");
    }
    assert!(audit[1..].iter().all(|line| line["route"] == "echo"));
    // The access log shows the path the client sent, with its token.
    let log = gw.access_log();
    assert!(log
        .iter()
        .any(|line| line["path"] == format!("/v1/cards/{}", tokens[1]).as_str()));
    assert_logs_clean(&gw);
}

#[tokio::test(flavor = "multi_thread")]
async fn amounts_key_order_and_lengths_survive_and_other_bodies_are_refused() {
    let keys = key_dir();
    let core = demo_core("core-1").await;
    let statement = format!(
        r#"{{"z":1,"amount":10.50,"cards":[{{"pan":"{}","limit":2500.00}}],"a":"\u00e9"}}"#,
        PANS[0]
    );
    let fixed = {
        let (statement, html) = (statement.clone(), format!("<p>card {}</p>", PANS[0]));
        serve(
            axum::Router::new()
                .route(
                    "/fixed/statement",
                    axum::routing::get(move || async move {
                        ([("content-type", "application/json")], statement)
                    }),
                )
                .route(
                    "/fixed/html",
                    axum::routing::get(move || async move { axum::response::Html(html) }),
                ),
        )
        .await
    };
    let extra = format!(
        r#"
[upstreams.fixed]
targets = ["{fixed}"]

[[routes]]
id = "fixed"
upstream = "fixed"
chain = "partner"
[routes.match]
path_prefix = "/fixed"
"#
    );
    let k = keys.path();
    let gw = start(|admin| config(core, admin, &ff1_pan(k, &[1], 1), &ff1_iban(k), &extra));

    let resp = client()
        .get(gw.url("/fixed/statement"))
        .header("x-api-key", ACME_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let length = header(&resp, "content-length").unwrap().parse::<usize>();
    let body = resp.text().await.unwrap();
    assert_eq!(length.unwrap(), body.len());
    assert_no_real_values(&body, "the statement");
    let token = &serde_json::from_str::<Value>(&body).unwrap()["cards"][0]["pan"];
    assert_eq!(body, statement.replace(PANS[0], token.as_str().unwrap()));

    let resp = client()
        .get(gw.url("/fixed/html"))
        .header("x-api-key", ACME_KEY)
        .send()
        .await
        .unwrap();
    let (text, _) = assert_titled_problem(resp, 502, "tokenization-failed").await;
    assert_no_real_values(&text, "the 502");
    assert_logs_clean(&gw);
}

#[tokio::test(flavor = "multi_thread")]
async fn other_consumers_tokens_pass_unchanged() {
    let keys = key_dir();
    let core = demo_core("core-1").await;
    let k = keys.path();
    let gw = start(|admin| config(core, admin, &ff1_pan(k, &[1], 1), &ff1_iban(k), ""));
    let tokens = card_tokens(&gw).await;

    // globex may hold tokens, not turn them back: the core gets the token, and knows no
    // such card.
    let (status, body) = get(&gw, &format!("/v1/cards/{}", tokens[0]), GLOBEX_KEY).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("CRD404"), "{body}");
    let resp = client()
        .post(gw.url(&format!("/test/echo/{}?card={}", tokens[0], tokens[1])))
        .header("x-api-key", GLOBEX_KEY)
        .header("x-card-token", &tokens[2])
        .header("content-type", "application/json")
        .body(format!(r#"{{"card":{{"pan":"{}"}}}}"#, tokens[1]))
        .send()
        .await
        .unwrap();
    let echo: Value = resp.json().await.unwrap();
    assert_eq!(echo["path"], format!("/test/echo/{}", tokens[0]));
    assert_eq!(echo["query"], format!("card={}", tokens[1]));
    assert_eq!(echo["headers"]["x-card-token"], tokens[2].as_str());
    assert_eq!(
        echo["body"],
        format!(r#"{{"card":{{"pan":"{}"}}}}"#, tokens[1])
    );

    assert!(audit_lines(&gw).await.is_empty());
    let metrics = admin_metrics(gw.admin_port()).await;
    let not_permitted = |route: &str| {
        must_metric(
            &metrics,
            "corridor_filter_events_total",
            &[("route", route), ("event", "detokenize_not_permitted")],
        )
    };
    assert_eq!(not_permitted("partner"), 1.0);
    assert_eq!(not_permitted("echo"), 4.0);
    assert_logs_clean(&gw);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_value_that_is_not_a_token_is_a_400_and_the_core_is_not_called() {
    let keys = key_dir();
    let core = demo_core("core-1").await;
    let k = keys.path();
    let gw = start(|admin| config(core, admin, &ff1_pan(k, &[1], 1), &ff1_iban(k), ""));
    let before = hits(core).await;

    // A real card number (Luhn-valid: never a token), and a token of a key version the rule
    // does not have (Luhn remainder 2).
    for value in ["4242424242424242", "4111111111111113", "not-a-token"] {
        let (status, body) = get(&gw, &format!("/v1/cards/{value}/balance"), ACME_KEY).await;
        assert_eq!(status, 400, "{body}");
        let problem: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(problem["type"], "urn:corridor:problem:invalid-token-value");
        assert_eq!(problem["detail"], "path_segment 2: not a valid token");
        assert!(!body.contains(value), "{body}");
    }
    let resp = client()
        .post(gw.url("/test/echo"))
        .header("x-api-key", ACME_KEY)
        .header("content-type", "application/json")
        .body(r#"{"card":{"pan":"4242424242424242"}}"#)
        .send()
        .await
        .unwrap();
    let (text, problem) = assert_titled_problem(resp, 400, "invalid-token-value").await;
    assert_eq!(problem["detail"], "body $.card.pan: not a valid token");
    assert!(!text.contains("4242"), "{text}");
    let resp = client()
        .post(gw.url("/test/echo"))
        .header("x-api-key", ACME_KEY)
        .header("content-type", "text/plain")
        .body("card=4242424242424242")
        .send()
        .await
        .unwrap();
    assert_titled_problem(resp, 400, "invalid-json").await;

    assert_eq!(hits(core).await, before, "the core was called");
    assert!(audit_lines(&gw).await.is_empty());
    assert_logs_clean(&gw);
}

#[tokio::test(flavor = "multi_thread")]
async fn vault_tokens_on_redb_survive_a_restart() {
    let keys = key_dir();
    let core = demo_core("core-1").await;
    let k = keys.path();
    let data_dir = k.join("vault").display().to_string();
    let pan = vault_pan(k, &format!(r#"data_dir = "{data_dir}""#));
    let make = |admin| config(core, admin, &pan, &ff1_iban(k), "");

    let mut first = start(make);
    let tokens = card_tokens(&first).await;
    // Vault tokens are random: a new one on every call.
    assert_ne!(card_tokens(&first).await, tokens);
    assert!(first.terminate().success());
    assert_logs_clean(&first);

    let second = start(make);
    for (token, holder) in tokens.iter().zip(["Ada Lovelace", "Alan Turing"]) {
        let (status, body) = get(&second, &format!("/v1/cards/{token}"), ACME_KEY).await;
        assert_eq!(status, 200, "{body}");
        assert_no_real_values(&body, "a card");
        let card: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(card["holder"], holder);
    }
    let audit = audit_lines(&second).await;
    assert_eq!(audit.len(), 2);
    assert!(audit.iter().all(|line| line["key_version"] == 1));
    assert_logs_clean(&second);
}

/// Panics unless Redis answers PING on 127.0.0.1:6379.
fn require_redis() {
    let address = "127.0.0.1:6379".parse().unwrap();
    let mut stream =
        TcpStream::connect_timeout(&address, Duration::from_secs(2)).unwrap_or_else(|e| {
            panic!("Redis is not reachable on {address} ({e}): start redis-server")
        });
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    stream.write_all(b"PING\r\n").unwrap();
    let mut answer = [0; 7];
    stream.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"+PONG\r\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redis_vault_is_shared_by_two_gateways() {
    require_redis();
    let keys = key_dir();
    let core = demo_core("core-1").await;
    let k = keys.path();
    // Keys of this run alone; they expire by themselves.
    let prefix = format!("corridor-it:tokenization:{:016x}", fastrand::u64(..));
    let pan = vault_pan(
        k,
        &format!(r#"store = "redis", ttl = "1h", redis = {{ key_prefix = "{prefix}" }}"#),
    );
    let make = |admin| config(core, admin, &pan, &ff1_iban(k), "");
    let (one, two) = (start(make), start(make));

    let tokens = card_tokens(&one).await;
    let (status, body) = get(&two, &format!("/v1/cards/{}", tokens[2]), ACME_KEY).await;
    assert_eq!(status, 200, "{body}");
    let card: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(card["holder"], "Grace Hopper");
    // And the other way round.
    let tokens = card_tokens(&two).await;
    let (status, body) = get(&one, &format!("/v1/cards/{}", tokens[0]), ACME_KEY).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(audit_lines(&one).await.len(), 1);
    assert_eq!(audit_lines(&two).await.len(), 1);
    assert_logs_clean(&one);
    assert_logs_clean(&two);
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_of_a_rotated_key_version_still_detokenize() {
    let keys = key_dir();
    let core = demo_core("core-1").await;
    let k = keys.path();
    let gw = start(|admin| config(core, admin, &ff1_pan(k, &[1], 1), &ff1_iban(k), ""));
    let old = card_tokens(&gw).await;

    // Version 2 becomes active, version 1 stays for the tokens it made.
    let rotated = config(
        core,
        gw.admin_port(),
        &ff1_pan(k, &[1, 2], 2),
        &ff1_iban(k),
        "",
    )
    .replace("{port}", &gw.port.to_string());
    std::fs::write(gw.dir.path().join("corridor.toml"), rotated).unwrap();
    let reload = admin_call(gw.admin_port(), "POST", "/reload", None).await;
    assert_eq!(reload.json()["result"], "applied", "{}", reload.body);

    let new = card_tokens(&gw).await;
    assert!(old.iter().zip(&new).all(|(a, b)| a != b));
    for token in [&old[0], &new[0]] {
        let (status, body) = get(&gw, &format!("/v1/cards/{token}"), ACME_KEY).await;
        assert_eq!(status, 200, "{body}");
        let card: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(card["holder"], "Ada Lovelace");
        assert_eq!(
            card["pan"],
            new[0].as_str(),
            "answers get the active version's tokens"
        );
    }
    let versions: Vec<u64> = audit_lines(&gw)
        .await
        .iter()
        .map(|line| line["key_version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [1, 2]);
    assert_logs_clean(&gw);
}

#[test]
fn corridor_check_names_the_filter_and_the_rule_never_a_key() {
    let keys = key_dir();
    let k = keys.path();
    let config = config(
        closed_port(),
        free_port(),
        &ff1_pan(k, &[1], 1),
        &ff1_iban(k),
        "",
    )
    .replace(
        "path_segment = 2\nconsumers = [\"acme\"]",
        "consumers = [\"acme\"]",
    )
    .replace("path = \"$..iban\"", "path = \"$..[\"");
    let checked = check(&config);
    assert!(!checked.ok, "{}", checked.stdout);
    for expected in [
        "chain \"partner\": filter \"detokenize\": rules[0]: set exactly one of body, header, query and path_segment",
        "chain \"partner\": filter \"tokenize\": rules[1]: path: \"$..[\" is not a JSONPath",
    ] {
        assert!(checked.stderr.contains(expected), "{}", checked.stderr);
    }
    let key = std::fs::read_to_string(k.join("pan-v1.key")).unwrap();
    assert!(!checked.stderr.contains(&key) && !checked.stdout.contains(&key));
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_records_go_to_their_own_file_even_with_the_access_log_off() {
    let keys = key_dir();
    let core = demo_core("core-1").await;
    let k = keys.path();
    let audit_dir = tempfile::tempdir().unwrap();
    let audit_file = audit_dir.path().join("audit.jsonl");
    let server = format!(
        "config_rescan = \"1h\"\naccess_log = \"off\"\naudit_log = \"{}\"",
        audit_file.display()
    );
    let gw = start(|admin| {
        config(core, admin, &ff1_pan(k, &[1], 1), &ff1_iban(k), "").replacen(
            "config_rescan = \"1h\"",
            &server,
            1,
        )
    });
    let tokens = card_tokens(&gw).await;
    let (status, body) = get(&gw, &format!("/v1/cards/{}", tokens[0]), ACME_KEY).await;
    assert_eq!(status, 200, "{body}");

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let lines = loop {
        let text = std::fs::read_to_string(&audit_file).unwrap_or_default();
        if !text.is_empty() || std::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let records: Vec<Value> = lines
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(records.len(), 1, "{lines}");
    assert_eq!(records[0]["type"], "audit");
    assert_eq!(records[0]["consumer"], "acme");
    assert_eq!(records[0]["action"], "detokenize");
    assert_no_real_values(&lines, "the audit log");
    let access = std::fs::read_to_string(gw.dir.path().join("access.log")).unwrap();
    assert!(access.is_empty(), "{access}");
}
