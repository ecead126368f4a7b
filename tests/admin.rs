mod common;
use common::*;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The gateway with an admin listener on `admin` (`admin_extra` goes in `[admin]`); `rest`
/// is the upstreams and routes.
fn config(admin: u16, admin_extra: &str, rest: &str) -> String {
    let admin = admin_section(admin, admin_extra);
    gateway_config("config_rescan = \"1h\"", &format!("{admin}\n{rest}"))
}

fn core_route(core: SocketAddr, chain: &str) -> String {
    format!(
        r#"
[upstreams.core]
targets = ["{core}"]

[[routes]]
id = "all"
upstream = "core"
{chain}
[routes.match]
path_prefix = "/"
"#
    )
}

async fn send_n(gw: &Gateway, path: &str, n: usize) {
    let c = client();
    for _ in 0..n {
        let resp = c.get(gw.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn healthz_answers_and_unknown_paths_are_404() {
    let core = demo_core("core-1").await;
    let admin = free_port();
    let _gw = Gateway::start_with_admin(&config(admin, "", &core_route(core, "")), admin);

    let answer = admin_get(admin, "/healthz").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["status"], "alive");

    for path in ["/nope", "/metrics/x", "/"] {
        let answer = admin_get(admin, path).await;
        assert_eq!(answer.status, 404, "{path}: {}", answer.body);
        assert!(
            answer.content_type.starts_with("application/problem+json"),
            "{path}: {}",
            answer.content_type
        );
        assert_eq!(answer.json()["status"], 404);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_is_503_naming_the_upstream_while_all_its_targets_are_down() {
    let core = demo_core("core-1").await;
    let (ledger, ledger_state) = switchable("ledger").await;
    let admin = free_port();
    let rest = format!(
        r#"{}
[upstreams.ledger]
targets = ["{ledger}"]
[upstreams.ledger.health_check]
path = "/health"
interval = "200ms"
timeout = "1s"
healthy_threshold = 1
unhealthy_threshold = 1

[[routes]]
id = "books"
priority = 10
upstream = "ledger"
[routes.match]
path_prefix = "/ledger"
"#,
        core_route(core, "")
    );
    let gw = Gateway::start_with_admin(&config(admin, "", &rest), admin);

    let wait_for = |expected: u16| async move {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let answer = admin_get(admin, "/readyz").await;
            if answer.status == expected {
                return answer;
            }
            assert!(
                Instant::now() < deadline,
                "/readyz stayed {} ({}), expected {expected}",
                answer.status,
                answer.body
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };

    // Let a few checks pass first: ready.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let answer = wait_for(200).await;
    let body = answer.json();
    assert_eq!(body["ready"], true, "{body}");
    assert_eq!(body["reasons"], serde_json::json!([]), "{body}");

    ledger_state.healthy.store(false, Ordering::SeqCst);
    let answer = wait_for(503).await;
    assert!(answer.content_type.starts_with("application/json"));
    let body = answer.json();
    assert_eq!(body["ready"], false, "{body}");
    let reasons = body["reasons"].to_string();
    assert!(reasons.contains("upstream \\\"ledger\\\""), "{body}");
    assert!(
        !reasons.contains("\\\"core\\\""),
        "the healthy upstream is blamed: {body}"
    );

    ledger_state.healthy.store(true, Ordering::SeqCst);
    wait_for(200).await;
    drop(gw);
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_expose_every_family_and_count_requests() {
    let core = demo_core("core-1").await;
    let admin = free_port();
    let rest = format!(
        r#"{}
[chains.guarded]
filters = [
  {{ type = "cors", allow_origins = ["https://app.partner.example"] }},
  {{ type = "body_limit", max_bytes = 16 }},
]
"#,
        core_route(core, "chain = \"guarded\"")
    );
    let gw = Gateway::start_with_admin(&config(admin, "", &rest), admin);
    let c = client();

    const N: usize = 20;
    send_n(&gw, "/test/whoami", N).await;
    // An upstream failure, a preflight from a stranger, a body over the limit.
    let resp = c.get(gw.url("/test/status/502")).send().await.unwrap();
    assert_eq!(resp.status(), 502);
    let resp = c
        .request(reqwest::Method::OPTIONS, gw.url("/test/echo"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let resp = c
        .post(gw.url("/test/echo"))
        .body("this body is longer than sixteen bytes")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);

    let answer = admin_get(admin, "/metrics").await;
    assert_eq!(answer.status, 200);
    assert!(
        answer.content_type.starts_with("text/plain"),
        "{}",
        answer.content_type
    );
    let text = answer.body;
    for family in [
        "corridor_requests_total",
        "corridor_request_duration_seconds",
        "corridor_requests_in_flight",
        "corridor_upstream_duration_seconds",
        "corridor_upstream_errors_total",
        "corridor_upstream_target_healthy",
        "corridor_filter_rejections_total",
        "corridor_config_reloads_total",
        "corridor_config_info",
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("# TYPE {family} "))),
            "no {family} family in:\n{text}"
        );
    }

    let ok = [("route", "all"), ("method", "GET"), ("status_class", "2xx")];
    let before = must_metric(&text, "corridor_requests_total", &ok);
    assert!(before >= N as f64, "{before}");
    assert!(
        must_metric(
            &text,
            "corridor_requests_total",
            &[("route", "all"), ("method", "GET"), ("status_class", "5xx")]
        ) >= 1.0
    );
    assert!(
        must_metric(
            &text,
            "corridor_requests_total",
            &[
                ("route", "all"),
                ("method", "POST"),
                ("status_class", "4xx")
            ]
        ) >= 1.0
    );
    let durations = must_metric(
        &text,
        "corridor_request_duration_seconds_count",
        &[("route", "all")],
    );
    assert!(durations >= N as f64 + 3.0, "{durations}");
    let upstream = must_metric(
        &text,
        "corridor_upstream_duration_seconds_count",
        &[("upstream", "core")],
    );
    assert!(upstream >= N as f64, "{upstream}");
    assert!(must_metric(&text, "corridor_requests_in_flight", &[("route", "all")]) >= 0.0);
    assert!(
        must_metric(
            &text,
            "corridor_upstream_errors_total",
            &[("upstream", "core"), ("kind", "failed")]
        ) >= 1.0
    );
    assert_eq!(
        must_metric(
            &text,
            "corridor_upstream_target_healthy",
            &[("upstream", "core"), ("target", &core.to_string())]
        ),
        1.0
    );
    for filter in ["cors", "body_limit"] {
        assert!(
            must_metric(
                &text,
                "corridor_filter_rejections_total",
                &[("route", "all"), ("filter", filter)]
            ) >= 1.0,
            "{filter}"
        );
    }
    assert!(
        must_metric(
            &text,
            "corridor_config_reloads_total",
            &[("result", "applied")]
        ) >= 0.0
    );
    assert!(
        must_metric(
            &text,
            "corridor_config_reloads_total",
            &[("result", "rejected")]
        ) >= 0.0
    );
    let version = admin_call(admin, "GET", "/config", None).await.json()["status"]["version"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        must_metric(&text, "corridor_config_info", &[("version", &version)]),
        1.0
    );

    // The counters move with traffic.
    send_n(&gw, "/test/whoami", N).await;
    let text = admin_metrics(admin).await;
    let after = must_metric(&text, "corridor_requests_total", &ok);
    assert!(after >= before + N as f64, "{before} → {after}");
    let upstream_after = must_metric(
        &text,
        "corridor_upstream_duration_seconds_count",
        &[("upstream", "core")],
    );
    assert!(
        upstream_after >= upstream + N as f64,
        "{upstream} → {upstream_after}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metric_labels_never_hold_a_raw_path() {
    let core = demo_core("core-1").await;
    let admin = free_port();
    let rest = format!(
        r#"
[upstreams.core]
targets = ["{core}"]

[[routes]]
id = "accounts"
upstream = "core"
[routes.match]
path_prefix = "/accounts"
"#
    );
    let gw = Gateway::start_with_admin(&config(admin, "", &rest), admin);
    let c = client();
    // Routed (the core answers 404), and matched by no route at all.
    let resp = c.get(gw.url("/accounts/12345")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let resp = c.get(gw.url("/x/67890?q=24680")).send().await.unwrap();
    assert_eq!(resp.status(), 404);

    let text = admin_metrics(admin).await;
    for raw in ["12345", "67890", "24680", "/accounts/", "/x/"] {
        assert!(!text.contains(raw), "{raw} appears in:\n{text}");
    }
    assert!(
        must_metric(
            &text,
            "corridor_requests_total",
            &[
                ("route", "accounts"),
                ("method", "GET"),
                ("status_class", "4xx")
            ]
        ) >= 1.0
    );
}

const TOKEN: &str = "tok-7f3a9c2e-not-for-your-eyes";

async fn start_with_token() -> (Gateway, u16, tempfile::TempDir) {
    let core = demo_core("core-1").await;
    let secrets = tempfile::tempdir().unwrap();
    let token_file = secrets.path().join("admin.token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let admin = free_port();
    let text = config(
        admin,
        &format!("token_file = \"{}\"", token_file.display()),
        &core_route(core, ""),
    );
    (Gateway::start_with_admin(&text, admin), admin, secrets)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_guards_every_endpoint_but_healthz() {
    let (_gw, admin, _secrets) = start_with_token().await;

    let answer = admin_get(admin, "/healthz").await;
    assert_eq!(answer.status, 200, "{}", answer.body);

    let endpoints = [
        ("GET", "/readyz", 200),
        ("GET", "/metrics", 200),
        ("GET", "/config", 200),
        ("POST", "/reload", 200),
        ("GET", "/no-such-endpoint", 404),
    ];
    for (method, path, with_token) in endpoints {
        for token in [None, Some("wrong-token"), Some("")] {
            let answer = admin_call(admin, method, path, token).await;
            assert_eq!(
                answer.status, 401,
                "{method} {path} with {token:?}: {}",
                answer.body
            );
            assert!(
                answer.content_type.starts_with("application/problem+json"),
                "{method} {path}: {}",
                answer.content_type
            );
            let problem = answer.json();
            assert_eq!(problem["status"], 401, "{problem}");
            assert!(problem["title"].is_string(), "{problem}");
            assert_eq!(answer.www_authenticate.as_deref(), Some("Bearer"));
            assert!(!answer.body.contains(TOKEN));
        }
        let answer = admin_call(admin, method, path, Some(TOKEN)).await;
        assert_eq!(
            answer.status, with_token,
            "{method} {path} with the token: {}",
            answer.body
        );
        assert!(!answer.body.contains(TOKEN), "{method} {path}");
    }
    let answer = admin_call(admin, "POST", "/reload", Some(TOKEN)).await;
    assert_eq!(answer.json()["result"], "unchanged", "{}", answer.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn config_shows_version_and_files_but_never_the_token() {
    let (gw, admin, _secrets) = start_with_token().await;
    let answer = admin_call(admin, "GET", "/config", Some(TOKEN)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.content_type.starts_with("application/json"));
    assert!(!answer.body.contains(TOKEN), "{}", answer.body);
    let config = answer.json();

    let version = config["status"]["version"].as_str().unwrap_or_default();
    assert!(!version.is_empty(), "{config}");
    let path = gw.dir.path().join("corridor.toml");
    assert_eq!(
        config["status"]["files"],
        serde_json::json!([path.display().to_string()]),
        "{config}"
    );
    assert!(config["status"]["last_error"].is_null(), "{config}");
    assert_eq!(
        config["listeners"],
        serde_json::json!([gw.addr().to_string()]),
        "{config}"
    );
    assert_eq!(config["routes"][0]["id"], "all", "{config}");
    assert_eq!(config["upstreams"][0]["name"], "core", "{config}");

    // Nor anywhere else the admin API shows, and not after a reload either.
    std::fs::write(
        &path,
        std::fs::read_to_string(&path)
            .unwrap()
            .replace("id = \"all\"", "id = \"everything\""),
    )
    .unwrap();
    let answer = admin_call(admin, "POST", "/reload", Some(TOKEN)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(!answer.body.contains(TOKEN));
    for path in ["/config", "/metrics", "/readyz"] {
        let answer = admin_call(admin, "GET", path, Some(TOKEN)).await;
        assert_eq!(answer.status, 200, "{path}");
        assert!(!answer.body.contains(TOKEN), "{path}: {}", answer.body);
    }
    let config = admin_call(admin, "GET", "/config", Some(TOKEN))
        .await
        .json();
    assert_ne!(config["status"]["version"], version, "{config}");
    assert_eq!(config["routes"][0]["id"], "everything", "{config}");
}
