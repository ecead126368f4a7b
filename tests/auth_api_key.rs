//! The api_key filter through the real gateway: 401 problems with a challenge, the key never
//! reaching the core, the consumer driving a rate limit, and client-sent identity headers
//! that count for nothing.

mod common;
use common::*;

use std::net::SocketAddr;

use serde_json::Value;
use sha2::{Digest, Sha256};

const ACME_KEY: &str = "ak_live_3f9c2e7a41b04d8e9a6b";
const GLOBEX_KEY: &str = "ak_live_77d01c5e9f2a4b3c8e10";
/// In the keys file only.
const INITECH_KEY: &str = "ak_live_0b5e8d2f6c1a4e7d9b33";

fn sha256_hex(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A gateway with an admin listener, whose config directory also holds a keys file:
///
/// - route "echo" (`/test/echo...`): chain "partner", an api_key on `x-api-key` with inline
///   keys for acme and globex, then a rate_limit of 3 calls a minute keyed by consumer;
/// - route "query" (`/q/...`, forwarded without `/q`): chain "by_query", an api_key on the
///   `api_key` query parameter with the keys of `partners-keys.toml` (initech).
///
/// The directory must outlive the gateway.
async fn start() -> (Gateway, SocketAddr, tempfile::TempDir) {
    let core = demo_core("core-1").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("partners-keys.toml"),
        format!(
            "[[keys]]\nsha256 = \"{}\"\nconsumer = \"initech\"\n",
            sha256_hex(INITECH_KEY)
        ),
    )
    .unwrap();
    let (port, admin) = (free_port(), free_port());
    let config = core_config(
        &[core],
        "config_rescan = \"1h\"",
        "",
        &format!(
            r#"
{admin}
[chains.partner]
filters = [
  {{ type = "api_key", keys = [
      {{ sha256 = "{acme}", consumer = "acme", metadata = {{ plan = "gold" }} }},
      {{ sha256 = "{globex}", consumer = "globex" }},
  ] }},
  {{ type = "rate_limit", key = "consumer", limits = [{{ name = "minute", per = "1m", requests = 3 }}] }},
]

[chains.by_query]
filters = [{{ type = "api_key", query = "api_key", keys_file = "partners-keys.toml" }}]

[[routes]]
id = "echo"
upstream = "core"
chain = "partner"
[routes.match]
path_prefix = "/test/echo"

[[routes]]
id = "query"
upstream = "core"
chain = "by_query"
[routes.match]
path_prefix = "/q"
[routes.rewrite]
strip_prefix = "/q"
"#,
            admin = admin_section(admin, ""),
            acme = sha256_hex(ACME_KEY),
            globex = sha256_hex(GLOBEX_KEY),
        ),
    )
    .replace("{port}", &port.to_string());
    let path = dir.path().join("corridor.toml");
    std::fs::write(&path, config).unwrap();
    (Gateway::start_at(&path, port, admin), core, dir)
}

/// GET `path` with `headers`.
async fn get(gw: &Gateway, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    with_headers(client().get(gw.url(path)), headers)
        .send()
        .await
        .unwrap()
}

/// What the core received, from its echo; asserts the call got through.
async fn echoed(resp: reqwest::Response) -> Value {
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_or_wrong_key_is_a_401_with_a_challenge_and_the_core_is_not_called() {
    let (gw, core, _dir) = start().await;
    let before = hits(core).await;

    for (headers, event) in [
        (&[][..], "api_key_missing"),
        (&[("x-api-key", "ak_live_wrong")][..], "api_key_unknown"),
        // Another route's key, and a key in the wrong place.
        (&[("x-api-key", INITECH_KEY)][..], "api_key_unknown"),
        (&[("authorization", ACME_KEY)][..], "api_key_missing"),
    ] {
        let resp = get(&gw, "/test/echo", headers).await;
        assert_eq!(
            header(&resp, "www-authenticate"),
            Some("ApiKey realm=\"corridor\""),
            "{headers:?}"
        );
        let (body, problem) = assert_titled_problem(resp, 401, "unauthorized").await;
        assert_eq!(
            problem["detail"], "a valid API key is required in the x-api-key header",
            "{event}"
        );
        for (_, value) in headers {
            assert!(!body.contains(value), "{body}");
        }
    }
    // A wrong key in the query is the same 401.
    let resp = get(&gw, "/q/test/echo?api_key=ak_live_wrong", &[]).await;
    assert!(header(&resp, "www-authenticate").is_some());
    assert_problem(resp, 401, "unauthorized").await;

    assert_eq!(hits(core).await, before, "the core saw a refused call");

    let metrics = admin_metrics(gw.admin_port()).await;
    let events = |route: &str, event: &str| {
        must_metric(
            &metrics,
            "corridor_filter_events_total",
            &[("route", route), ("event", event)],
        )
    };
    assert_eq!(events("echo", "api_key_missing"), 2.0);
    assert_eq!(events("echo", "api_key_unknown"), 2.0);
    assert_eq!(events("query", "api_key_unknown"), 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_right_key_reaches_the_core_without_the_key_or_a_spoofed_identity() {
    let (gw, _core, _dir) = start().await;
    let echo = echoed(
        get(
            &gw,
            "/test/echo",
            &[
                ("x-api-key", ACME_KEY),
                ("x-consumer-id", "globex"),
                ("x-request-tag", "kept"),
            ],
        )
        .await,
    )
    .await;
    let headers = &echo["headers"];
    assert!(headers.get("x-api-key").is_none(), "{echo}");
    assert!(headers.get("x-consumer-id").is_none(), "{echo}");
    assert_eq!(headers["x-request-tag"], "kept", "{echo}");
    assert!(!echo.to_string().contains(ACME_KEY), "{echo}");

    // A key from the keys file, in the query: gone from the query the core sees.
    let echo = echoed(
        get(
            &gw,
            &format!("/q/test/echo?page=2&api_key={INITECH_KEY}&sort=asc"),
            &[],
        )
        .await,
    )
    .await;
    assert_eq!(echo["path"], "/test/echo", "{echo}");
    assert_eq!(echo["query"], "page=2&sort=asc", "{echo}");
    let echo = echoed(get(&gw, &format!("/q/test/echo?api_key={INITECH_KEY}"), &[]).await).await;
    assert_eq!(echo["query"], Value::Null, "{echo}");

    // The access log names the consumer, never the key.
    let log = gw.settled_access_log().await;
    let consumers: Vec<&Value> = log.iter().map(|line| &line["consumer"]).collect();
    assert_eq!(consumers, ["acme", "initech", "initech"], "{log:?}");
    let text = std::fs::read_to_string(gw.dir.path().join("access.log")).unwrap();
    assert!(
        !text.contains(ACME_KEY) && !text.contains(INITECH_KEY),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_consumer_drives_the_rate_limit_and_a_spoofed_consumer_header_does_not() {
    let (gw, _core, _dir) = start().await;
    // Both partners call from the same address: each has its own allowance.
    for _ in 0..3 {
        echoed(get(&gw, "/test/echo", &[("x-api-key", ACME_KEY)]).await).await;
    }
    let resp = get(&gw, "/test/echo", &[("x-api-key", ACME_KEY)]).await;
    assert!(header(&resp, "retry-after").is_some());
    assert_problem(resp, 429, "rate-limited").await;

    // Claiming to be another consumer does not give acme a fresh allowance.
    for spoof in ["globex", "initech"] {
        let resp = get(
            &gw,
            "/test/echo",
            &[("x-api-key", ACME_KEY), ("x-consumer-id", spoof)],
        )
        .await;
        assert_problem(resp, 429, "rate-limited").await;
    }

    // Globex still has all of its own.
    for _ in 0..3 {
        echoed(get(&gw, "/test/echo", &[("x-api-key", GLOBEX_KEY)]).await).await;
    }
    // Unauthenticated calls are refused before the rate limit, and never count.
    let resp = get(&gw, "/test/echo", &[("x-consumer-id", "acme")]).await;
    assert_problem(resp, 401, "unauthorized").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_keys_file_is_a_new_config_that_revokes_and_grants_keys() {
    let (gw, _core, dir) = start().await;
    let initech = format!("/q/test/echo?api_key={INITECH_KEY}");
    assert_eq!(get(&gw, &initech, &[]).await.status(), 200);

    // Only the keys file changes: initech's key is revoked, globex gets one here.
    std::fs::write(
        dir.path().join("partners-keys.toml"),
        format!(
            "[[keys]]\nsha256 = \"{}\"\nconsumer = \"globex\"\n",
            sha256_hex(GLOBEX_KEY)
        ),
    )
    .unwrap();
    let reload = admin_call(gw.admin_port(), "POST", "/reload", None).await;
    assert_eq!(reload.status, 200, "{}", reload.body);
    assert_eq!(reload.json()["result"], "applied", "{}", reload.body);

    assert_eq!(get(&gw, &initech, &[]).await.status(), 401);
    let globex = format!("/q/test/echo?api_key={GLOBEX_KEY}");
    assert_eq!(get(&gw, &globex, &[]).await.status(), 200);

    // Nothing changed since: the filter, and its config version, stay.
    let again = admin_call(gw.admin_port(), "POST", "/reload", None).await;
    assert_eq!(again.json()["result"], "unchanged", "{}", again.body);
}
