//! The rate_limit filter through the real gateway: 429 problems with Retry-After and the IETF
//! RateLimit fields, one allowance per key, allowance coming back, and counters kept across a
//! hot reload that leaves the filter alone.

mod common;
use common::*;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

/// No access log, and no rescan in a test's time: only POST /reload and file events reload.
const SERVER: &str = "access_log = \"off\"\nconfig_rescan = \"1h\"";

/// A route to the demo core's /test/whoami, without a chain.
const WHO_ROUTE: &str = r#"
[[routes]]
id = "who"
upstream = "core"
[routes.match]
path = "/test/whoami"
"#;

/// One upstream "core"; the route "accounts" (/accounts...) goes through the chain "partner",
/// a rate_limit keyed by the x-partner header with `limits` (the TOML array's contents); then
/// `rest` (more routes, the admin section).
fn config(core: SocketAddr, limits: &str, rest: &str) -> String {
    core_config(
        &[core],
        SERVER,
        "",
        &format!(
            r#"
[chains.partner]
filters = [{{ type = "rate_limit", key = "header:x-partner", limits = [{limits}] }}]

[[routes]]
id = "accounts"
upstream = "core"
chain = "partner"
[routes.match]
path_prefix = "/accounts"
{rest}
"#
        ),
    )
}

async fn accounts(gw: &Gateway, partner: &str) -> reqwest::Response {
    client()
        .get(gw.url("/accounts"))
        .header("x-partner", partner)
        .send()
        .await
        .unwrap()
}

/// Sends requests as `partner` until one is refused: how many got a 200, and the refusal.
async fn exhaust(gw: &Gateway, partner: &str, policy: &str) -> (u32, reqwest::Response) {
    let mut allowed = 0;
    loop {
        let resp = accounts(gw, partner).await;
        if resp.status() == 429 {
            return (allowed, resp);
        }
        assert_eq!(resp.status(), 200, "{}", gw.stderr());
        assert_eq!(header(&resp, "ratelimit-policy"), Some(policy));
        let item = header(&resp, "ratelimit").unwrap_or_default();
        assert!(
            item.starts_with(policy.split(';').next().unwrap()),
            "{item}"
        );
        allowed += 1;
        assert!(allowed <= 20, "never refused");
    }
}

/// Polls as `partner` until a request is allowed again.
async fn wait_until_allowed(gw: &Gateway, partner: &str, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let resp = accounts(gw, partner).await;
        if resp.status() == 200 {
            return start.elapsed();
        }
        assert_eq!(resp.status(), 429);
        assert!(start.elapsed() < within, "still refused after {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn over_the_limit_is_a_429_problem_with_retry_after_and_ratelimit_fields() {
    let core = demo_core("core-1").await;
    let gw = Gateway::start(&config(
        core,
        r#"{ name = "second", per = "1s", requests = 5 }"#,
        "",
    ));
    let policy = "\"second\";q=5;w=1";

    let start = Instant::now();
    let (allowed, refused) = exhaust(&gw, "a", policy).await;
    // One request comes back every 200 ms: a slow run may get a sixth in.
    let elapsed = start.elapsed().as_millis();
    assert!(
        allowed >= 5 && u128::from(allowed) <= 5 + elapsed / 200,
        "{allowed} allowed in {elapsed} ms"
    );
    assert_eq!(header(&refused, "retry-after"), Some("1"));
    assert_eq!(header(&refused, "ratelimit-policy"), Some(policy));
    assert_eq!(header(&refused, "ratelimit"), Some("\"second\";r=0;t=1"));
    let (_, problem) = assert_titled_problem(refused, 429, "rate-limited").await;
    assert_eq!(problem["title"], "Too many requests");
    assert!(
        problem["detail"].as_str().unwrap().contains("\"second\""),
        "{problem}"
    );
    assert_eq!(
        hits(core).await,
        u64::from(allowed),
        "a refused request reached the core"
    );

    // Another partner has an allowance of its own.
    for _ in 0..5 {
        let resp = accounts(&gw, "b").await;
        assert_eq!(resp.status(), 200);
        assert_eq!(header(&resp, "ratelimit-policy"), Some(policy));
    }

    // The allowance comes back.
    wait_until_allowed(&gw, "a", Duration::from_secs(3)).await;
}

/// Saves like an editor: a new file in the same directory, renamed over the old one.
fn write_like_an_editor(path: &Path, text: &str) {
    let tmp = path.with_file_name(".corridor.toml.swp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn version(gw: &Gateway) -> Value {
    admin_json(gw.admin_port(), "/config").await["status"]["version"].clone()
}

/// Writes the config and reloads through the admin API (the watcher may get there first: then
/// the answer is "unchanged"); returns the new version.
async fn reload_to(gw: &Gateway, text: &str, old: &Value) -> Value {
    let path = gw.dir.path().join("corridor.toml");
    write_like_an_editor(&path, &text.replace("{port}", &gw.port.to_string()));
    let answer = admin_call(gw.admin_port(), "POST", "/reload", None).await;
    let body = answer.json();
    assert_eq!(answer.status, 200, "{body}");
    assert!(
        body["result"] == "applied" || body["result"] == "unchanged",
        "{body}"
    );
    let now = version(gw).await;
    assert_ne!(&now, old, "not applied: {body}");
    now
}

#[tokio::test(flavor = "multi_thread")]
async fn counters_survive_a_reload_that_leaves_the_filter_alone() {
    let core = demo_core("core-1").await;
    let admin = free_port();
    let text = |limits: &str, routes: &str| {
        format!(
            "{}\n{}",
            config(core, limits, routes),
            admin_section(admin, "")
        )
    };
    let three = r#"{ name = "minute", per = "1m", requests = 3 }"#;
    let gw = Gateway::start_with_admin(&text(three, ""), admin);

    let (allowed, refused) = exhaust(&gw, "r", "\"minute\";q=3;w=60").await;
    assert_eq!(allowed, 3);
    assert_problem(refused, 429, "rate-limited").await;
    let who = || async { client().get(gw.url("/test/whoami")).send().await.unwrap() };
    assert_eq!(who().await.status(), 404);

    // A reload that adds a route and leaves the chain as it was keeps the filter's counters.
    let v1 = version(&gw).await;
    let v2 = reload_to(&gw, &text(three, WHO_ROUTE), &v1).await;
    assert_eq!(who().await.status(), 200, "the new route is not serving");
    let refused = accounts(&gw, "r").await;
    let retry: u64 = header(&refused, "retry-after").unwrap().parse().unwrap();
    assert!((15..=20).contains(&retry), "{retry}");
    assert_problem(refused, 429, "rate-limited").await;
    assert_eq!(accounts(&gw, "other").await.status(), 200);

    // A changed limit is a new filter, with fresh counters.
    let four = r#"{ name = "minute", per = "1m", requests = 4 }"#;
    reload_to(&gw, &text(four, WHO_ROUTE), &v2).await;
    let resp = accounts(&gw, "r").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "ratelimit"), Some("\"minute\";r=3;t=15"));

    let metrics = admin_metrics(admin).await;
    let rejections = must_metric(
        &metrics,
        "corridor_filter_rejections_total",
        &[
            ("route", "accounts"),
            ("filter", "rate_limit"),
            ("reason", "rate-limited"),
        ],
    );
    assert_eq!(rejections, 2.0, "{metrics}");
}
