mod common;
use common::*;

use std::fmt::Display;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// `[server]` settings of every config here: no access log, and no rescan in a test's time, so
/// only file events, SIGHUP and POST /reload reload.
const RELOAD_SERVER: &str = "access_log = \"off\"\nconfig_rescan = \"1h\"";

/// Two upstreams, "a" and "b"; the route "who" sends /who to `to`'s /test/whoami.
fn who_config(port: impl Display, admin: u16, a: SocketAddr, b: SocketAddr, to: &str) -> String {
    format!(
        r#"{}
{}
[upstreams.a]
targets = ["{a}"]

[upstreams.b]
targets = ["{b}"]

[[routes]]
id = "who"
upstream = "{to}"
[routes.match]
path = "/who"
[routes.rewrite]
strip_prefix = "/who"
add_prefix = "/test/whoami"
"#,
        config_head(2, port, RELOAD_SERVER),
        admin_section(admin, ""),
    )
}

/// Saves like an editor: a new file in the same directory, renamed over the old one.
fn write_like_an_editor(path: &Path, text: &str) {
    let name = path.file_name().unwrap().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.swp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// GET /who: the body when the answer is 200, otherwise what went wrong.
async fn who(c: &reqwest::Client, url: &str) -> Result<String, String> {
    let resp = c
        .get(url)
        .send()
        .await
        .map_err(|e| format!("request error: {e:?}"))?;
    let status = resp.status();
    let body = resp
        .text()
        .await
        .map_err(|e| format!("body error: {e:?}"))?;
    if status != 200 {
        return Err(format!("status {status}: {body}"));
    }
    Ok(body)
}

async fn post_reload(gw: &Gateway) -> (u16, Value, String) {
    let answer = admin_call(gw.admin_port(), "POST", "/reload", None).await;
    (answer.status, answer.json(), answer.content_type)
}

async fn running_config(gw: &Gateway) -> Value {
    admin_json(gw.admin_port(), "/config").await
}

async fn reloads(gw: &Gateway, result: &str) -> f64 {
    let text = admin_metrics(gw.admin_port()).await;
    metric(
        &text,
        "corridor_config_reloads_total",
        &[("result", result)],
    )
    .unwrap_or_else(|| panic!("no reload counter for {result}:\n{text}"))
}

/// Does any error read `…<file>:<line>:<col>: …`, with a line and column of at least 1?
fn has_file_line(errors: &Value, file: &str) -> bool {
    errors.as_array().is_some_and(|errors| {
        errors.iter().filter_map(Value::as_str).any(|e| {
            e.split_once(&format!("{file}:")).is_some_and(|(_, rest)| {
                let mut parts = rest.splitn(3, ':');
                let line = parts.next().and_then(|l| l.parse::<usize>().ok());
                let col = parts.next().and_then(|c| c.parse::<usize>().ok());
                matches!((line, col), (Some(l), Some(c)) if l >= 1 && c >= 1)
            })
        })
    })
}

/// Polls GET /who until it answers `expected`, failing on any non-200 on the way.
async fn wait_for_backend(
    c: &reqwest::Client,
    url: &str,
    expected: &str,
    within: Duration,
) -> Result<Duration, String> {
    let start = Instant::now();
    loop {
        let body = who(c, url).await?;
        if body == expected {
            return Ok(start.elapsed());
        }
        if start.elapsed() > within {
            return Err(format!(
                "still answered by {body:?} {:?} after the write, expected {expected:?}",
                start.elapsed()
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn wait_for_last_error(gw: &Gateway, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let config = running_config(gw).await;
        if !config["status"]["last_error"].is_null() {
            return config;
        }
        assert!(
            Instant::now() < deadline,
            "no last_error within {within:?}: {config}\n{}",
            gw.stderr()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn soak_reloads_under_load_lose_no_request_and_never_apply_a_broken_config() {
    let a = demo_core("a").await;
    let b = demo_core("b").await;
    let (port, admin) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corridor.toml");
    let config = |to: &str| who_config(port, admin, a, b, to);
    std::fs::write(&path, config("a")).unwrap();
    let mut gw = Gateway::start_at(&path, port, admin);
    let url = gw.url("/who");
    let c = client();
    assert_eq!(who(&c, &url).await, Ok("a".to_owned()), "{}", gw.stderr());

    // Steady load: 4 loops, each pausing 10 ms between requests.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut loops = Vec::new();
    for _ in 0..4 {
        let (stop, sent, failures, url) =
            (stop.clone(), sent.clone(), failures.clone(), url.clone());
        loops.push(tokio::spawn(async move {
            let c = client();
            while !stop.load(Ordering::Relaxed) {
                match who(&c, &url).await {
                    Ok(body) if body == "a" || body == "b" => {}
                    Ok(body) => failures
                        .lock()
                        .unwrap()
                        .push(format!("answered by {body:?}")),
                    Err(e) => failures.lock().unwrap().push(e),
                }
                sent.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }));
    }

    const WRITES: usize = 60;
    let (mut serving, mut next) = ("a", "b");
    let (mut valid, mut invalid) = (0u32, 0u32);
    let mut slowest = Duration::ZERO;
    for i in 1..=WRITES {
        if i % 8 == 0 {
            let before = running_config(&gw).await;
            assert!(before["status"]["last_error"].is_null(), "{before}");
            let broken = if invalid % 2 == 0 {
                // A TOML syntax error: an unclosed table header.
                format!("{}\n[[routes]\nid = \"broken\"\n", config(next))
            } else {
                // Valid TOML naming an upstream that does not exist.
                config(next).replace(&format!("upstream = \"{next}\""), "upstream = \"nowhere\"")
            };
            write_like_an_editor(&path, &broken);
            invalid += 1;
            let after = wait_for_last_error(&gw, Duration::from_secs(10)).await;
            let failure = &after["status"]["last_error"];
            assert!(
                has_file_line(&failure["errors"], "corridor.toml"),
                "write {i}: no file:line:col in {failure}"
            );
            assert_eq!(failure["trigger"], "file change", "{failure}");
            assert_eq!(
                after["status"]["version"], before["status"]["version"],
                "write {i}: a rejected config changed the version"
            );
            for _ in 0..10 {
                assert_eq!(
                    who(&c, &url).await,
                    Ok(serving.to_owned()),
                    "write {i}: the broken config was applied"
                );
            }
        } else {
            write_like_an_editor(&path, &config(next));
            let took = wait_for_backend(&c, &url, next, Duration::from_secs(1))
                .await
                .unwrap_or_else(|e| panic!("write {i}: {e}\n{}", gw.stderr()));
            slowest = slowest.max(took);
            valid += 1;
            std::mem::swap(&mut serving, &mut next);
        }
        gw.assert_alive();
    }

    stop.store(true, Ordering::Relaxed);
    for l in loops {
        l.await.unwrap();
    }
    let failures = std::mem::take(&mut *failures.lock().unwrap());
    let sent = sent.load(Ordering::Relaxed);
    assert!(
        failures.is_empty(),
        "{} of {sent} requests failed, e.g. {:?}\n{}",
        failures.len(),
        &failures[..failures.len().min(5)],
        gw.stderr()
    );
    // The load really ran alongside the reloads (at least a few requests per reload).
    assert!(sent >= 4 * WRITES as u64, "only {sent} requests were sent");
    assert!(valid >= 50, "{valid}");
    assert!(reloads(&gw, "applied").await >= f64::from(valid));
    assert!(reloads(&gw, "rejected").await >= f64::from(invalid));
    eprintln!(
        "{sent} requests, {valid} applied and {invalid} rejected reloads, slowest {slowest:?}"
    );
}

/// Lays out a ConfigMap volume: `..<version>/corridor.toml`, `..data -> ..<version>` and
/// `corridor.toml -> ..data/corridor.toml`.
fn configmap_init(dir: &Path, version: &str, text: &str) {
    let data = dir.join(format!("..{version}"));
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("corridor.toml"), text).unwrap();
    std::os::unix::fs::symlink(format!("..{version}"), dir.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/corridor.toml", dir.join("corridor.toml")).unwrap();
}

/// Swaps it as the kubelet does: a new timestamped directory, a new `..data_tmp` symlink
/// renamed over `..data`, then the old directory removed.
fn configmap_swap(dir: &Path, old: &str, version: &str, text: &str) {
    let data = dir.join(format!("..{version}"));
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("corridor.toml"), text).unwrap();
    std::os::unix::fs::symlink(format!("..{version}"), dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    std::fs::remove_dir_all(dir.join(format!("..{old}"))).unwrap();
}

async fn configmap_swap_is_seen(config_path: impl Fn(&Path) -> PathBuf) {
    let a = demo_core("a").await;
    let b = demo_core("b").await;
    let (port, admin) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    configmap_init(dir.path(), "2026_v1", &who_config(port, admin, a, b, "a"));
    let gw = Gateway::start_at(&config_path(dir.path()), port, admin);
    let (c, url) = (client(), gw.url("/who"));
    assert_eq!(who(&c, &url).await, Ok("a".to_owned()), "{}", gw.stderr());

    configmap_swap(
        dir.path(),
        "2026_v1",
        "2026_v2",
        &who_config(port, admin, a, b, "b"),
    );
    wait_for_backend(&c, &url, "b", Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("first swap: {e}\n{}", gw.stderr()));

    // A second swap works too, after the directory the first one pointed at is gone.
    configmap_swap(
        dir.path(),
        "2026_v2",
        "2026_v3",
        &who_config(port, admin, a, b, "a"),
    );
    wait_for_backend(&c, &url, "a", Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("second swap: {e}\n{}", gw.stderr()));
    let config = running_config(&gw).await;
    assert!(config["status"]["last_error"].is_null(), "{config}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_configmap_symlink_swap_is_applied_with_the_file_path() {
    configmap_swap_is_seen(|dir| dir.join("corridor.toml")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_configmap_symlink_swap_is_applied_with_the_directory_path() {
    configmap_swap_is_seen(|dir| dir.to_path_buf()).await;
}

/// A config file the watcher cannot see change: the watched directory holds only a symlink
/// to it, and writes to the target happen in another directory.
struct Unwatched {
    _dir: tempfile::TempDir,
    real: PathBuf,
    config: PathBuf,
}

fn unwatched(text: &str) -> Unwatched {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("real")).unwrap();
    std::fs::create_dir(dir.path().join("conf")).unwrap();
    let real = dir.path().join("real/corridor.toml");
    std::fs::write(&real, text).unwrap();
    let config = dir.path().join("conf/corridor.toml");
    std::os::unix::fs::symlink("../real/corridor.toml", &config).unwrap();
    Unwatched {
        _dir: dir,
        real,
        config,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_applies_a_change_no_watcher_saw() {
    let a = demo_core("a").await;
    let b = demo_core("b").await;
    let (port, admin) = (free_port(), free_port());
    let files = unwatched(&who_config(port, admin, a, b, "a"));
    let mut gw = Gateway::start_at(&files.config, port, admin);
    let (c, url) = (client(), gw.url("/who"));
    assert_eq!(who(&c, &url).await, Ok("a".to_owned()), "{}", gw.stderr());
    let applied = reloads(&gw, "applied").await;
    let version = running_config(&gw).await["status"]["version"].clone();

    std::fs::write(&files.real, who_config(port, admin, a, b, "b")).unwrap();
    // Nothing else reloads it: no event in the watched directory, rescan every hour.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(who(&c, &url).await, Ok("a".to_owned()));
    assert_eq!(reloads(&gw, "applied").await, applied);

    gw.signal(nix::sys::signal::Signal::SIGHUP);
    wait_for_backend(&c, &url, "b", Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("after SIGHUP: {e}\n{}", gw.stderr()));
    gw.assert_alive();
    assert_eq!(reloads(&gw, "applied").await, applied + 1.0);
    let config = running_config(&gw).await;
    assert_ne!(config["status"]["version"], version, "{config}");
    assert!(config["status"]["last_error"].is_null(), "{config}");
}

#[tokio::test(flavor = "multi_thread")]
async fn post_reload_reports_unchanged_applied_and_rejected() {
    let a = demo_core("a").await;
    let b = demo_core("b").await;
    let (port, admin) = (free_port(), free_port());
    let files = unwatched(&who_config(port, admin, a, b, "a"));
    let gw = Gateway::start_at(&files.config, port, admin);
    let (c, url) = (client(), gw.url("/who"));
    let v1 = running_config(&gw).await["status"]["version"].clone();
    assert!(v1.as_str().is_some_and(|v| !v.is_empty()), "{v1}");

    // Nothing changed.
    let (status, body, content_type) = post_reload(&gw).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    assert_eq!(body["result"], "unchanged", "{body}");
    assert_eq!(body["version"], v1, "{body}");
    assert_eq!(reloads(&gw, "applied").await, 0.0);

    // A real change: applied by the time the answer comes.
    std::fs::write(&files.real, who_config(port, admin, a, b, "b")).unwrap();
    let (status, body, _) = post_reload(&gw).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"], "applied", "{body}");
    let v2 = body["version"].clone();
    assert!(
        v2.as_str().is_some_and(|v| !v.is_empty()) && v2 != v1,
        "{body}"
    );
    for _ in 0..5 {
        assert_eq!(who(&c, &url).await, Ok("b".to_owned()));
    }
    assert_eq!(running_config(&gw).await["status"]["version"], v2);
    assert_eq!(reloads(&gw, "applied").await, 1.0);

    // Broken: 422 with file:line reasons; the old config keeps serving.
    std::fs::write(
        &files.real,
        who_config(port, admin, a, b, "b").replace("upstream = \"b\"", "upstream = \"nowhere\""),
    )
    .unwrap();
    let (status, body, content_type) = post_reload(&gw).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    assert_eq!(body["result"], "rejected", "{body}");
    assert_eq!(body["version"], v2, "{body}");
    assert!(has_file_line(&body["errors"], "corridor.toml"), "{body}");
    assert!(
        body["errors"].to_string().contains("nowhere"),
        "the error does not name the unknown upstream: {body}"
    );
    for _ in 0..5 {
        assert_eq!(who(&c, &url).await, Ok("b".to_owned()));
    }
    let config = running_config(&gw).await;
    assert_eq!(config["status"]["version"], v2);
    assert_eq!(
        config["status"]["last_error"]["trigger"], "admin",
        "{config}"
    );
    assert!(reloads(&gw, "rejected").await >= 1.0);

    // A TOML syntax error is rejected the same way.
    std::fs::write(&files.real, "[[listeners]\nlisten = 1\n").unwrap();
    let (status, body, _) = post_reload(&gw).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["result"], "rejected", "{body}");
    assert!(has_file_line(&body["errors"], "corridor.toml"), "{body}");
    assert_eq!(who(&c, &url).await, Ok("b".to_owned()));
}

/// One upstream "core" with two targets and ejection after a single failure, for 60 s.
fn ejecting_config(
    port: u16,
    admin: u16,
    targets: [SocketAddr; 2],
    retries: u32,
    extra_route: bool,
) -> String {
    let [good, bad] = targets;
    let extra = if extra_route {
        "[[routes]]\nid = \"extra\"\nupstream = \"core\"\n[routes.match]\npath_prefix = \"/extra\"\n"
    } else {
        ""
    };
    format!(
        r#"{}
{}
[upstreams.core]
targets = ["{good}", "{bad}"]
retries = {retries}

[upstreams.core.passive_health]
consecutive_failures = 1
ejection_time = "60s"
{CATCH_ALL}
{extra}
"#,
        config_head(1, port, RELOAD_SERVER),
        admin_section(admin, ""),
    )
}

/// Sends up to 20 requests; true as soon as one is a 502.
async fn a_502_is_seen(c: &reqwest::Client, url: &str) -> bool {
    for _ in 0..20 {
        let resp = c.get(url).send().await.unwrap();
        if resp.status() == 502 {
            return true;
        }
        assert_eq!(resp.status(), 200);
    }
    false
}

async fn target_available(gw: &Gateway, label: &str) -> bool {
    let config = running_config(gw).await;
    let targets = config["upstreams"]
        .as_array()
        .and_then(|u| u.iter().find(|u| u["name"] == "core"))
        .map(|u| u["targets"].clone())
        .unwrap_or_else(|| panic!("no upstream core: {config}"));
    let target = targets
        .as_array()
        .and_then(|t| t.iter().find(|t| t["address"] == label))
        .unwrap_or_else(|| panic!("no target {label}: {config}"));
    target["available"].as_bool().unwrap()
}

/// Writes the config where the watcher sees it, then reloads through the admin API too (the
/// watcher may get there first, then the answer is "unchanged"), and waits until the
/// version is not `old`.
async fn reload_to(gw: &Gateway, path: &Path, text: &str, old: &Value) -> Value {
    write_like_an_editor(path, text);
    let (status, body, _) = post_reload(gw).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["result"] == "applied" || body["result"] == "unchanged",
        "{body}"
    );
    let config = running_config(gw).await;
    assert_ne!(&config["status"]["version"], old, "not applied: {config}");
    config
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unchanged_upstream_keeps_its_ejections_across_a_reload_and_a_changed_one_starts_fresh()
{
    let good = demo_core("good").await;
    let bad = serve(
        axum::Router::new()
            .fallback(|| async { (axum::http::StatusCode::BAD_GATEWAY, "bad gateway") }),
    )
    .await;
    let (port, admin) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corridor.toml");
    std::fs::write(&path, ejecting_config(port, admin, [good, bad], 1, false)).unwrap();
    let gw = Gateway::start_at(&path, port, admin);
    let (c, url) = (client(), gw.url("/test/whoami"));
    let bad_label = bad.to_string();

    assert!(
        a_502_is_seen(&c, &url).await,
        "the bad target never got a request"
    );
    assert!(!target_available(&gw, &bad_label).await, "not ejected");
    for _ in 0..20 {
        assert_eq!(who(&c, &url).await, Ok("good".to_owned()));
    }

    // Only a route changes: the upstream, and what it knows of its targets, is kept.
    let v1 = running_config(&gw).await["status"]["version"].clone();
    let config = reload_to(
        &gw,
        &path,
        &ejecting_config(port, admin, [good, bad], 1, true),
        &v1,
    )
    .await;
    let routes = config["routes"].to_string();
    assert!(routes.contains("\"extra\""), "{config}");
    assert!(
        !target_available(&gw, &bad_label).await,
        "the ejection was forgotten by a reload that did not touch the upstream"
    );
    for _ in 0..20 {
        assert_eq!(
            who(&c, &url).await,
            Ok("good".to_owned()),
            "the ejected target got traffic after a route-only reload"
        );
    }

    // The upstream's definition changes: it is rebuilt, and the bad target is tried again.
    let v2 = config["status"]["version"].clone();
    reload_to(
        &gw,
        &path,
        &ejecting_config(port, admin, [good, bad], 2, true),
        &v2,
    )
    .await;
    assert!(
        a_502_is_seen(&c, &url).await,
        "a rebuilt upstream still skipped the target ejected before"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_listener_change_is_refused_and_the_old_listener_keeps_serving() {
    let a = demo_core("a").await;
    let b = demo_core("b").await;
    let (port, admin, other) = (free_port(), free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corridor.toml");
    std::fs::write(&path, who_config(port, admin, a, b, "a")).unwrap();
    let gw = Gateway::start_at(&path, port, admin);
    let (c, url) = (client(), gw.url("/who"));
    let version = running_config(&gw).await["status"]["version"].clone();

    // The new listener, and a route change that must not sneak in with it.
    let moved = who_config(port, admin, a, b, "b").replace(
        &format!("listen = \"127.0.0.1:{port}\""),
        &format!("listen = \"127.0.0.1:{other}\""),
    );
    write_like_an_editor(&path, &moved);
    let (status, body, _) = post_reload(&gw).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["result"], "rejected", "{body}");
    assert!(
        body["errors"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e.as_str().unwrap().contains("listeners"))),
        "{body}"
    );
    assert_eq!(body["version"], version, "{body}");

    for _ in 0..10 {
        assert_eq!(who(&c, &url).await, Ok("a".to_owned()));
    }
    assert!(
        TcpStream::connect(("127.0.0.1", other)).is_err(),
        "something listens on the refused address"
    );
    let config = running_config(&gw).await;
    assert_eq!(config["status"]["version"], version, "{config}");
    assert_eq!(
        config["listeners"],
        serde_json::json!([format!("127.0.0.1:{port}")]),
        "{config}"
    );
    assert!(
        config["status"]["last_error"]["errors"]
            .to_string()
            .contains("listeners"),
        "{config}"
    );
}

// The harness's layout: the process's stdout (the access log) and stderr are files in the
// directory that holds the config, so the watcher sees them change with every log line.

#[tokio::test(flavor = "multi_thread")]
async fn a_busy_log_file_beside_the_config_does_not_hold_a_reload_back() {
    let a = demo_core("a").await;
    let b = demo_core("b").await;
    let admin = free_port();
    // The access log goes to stdout, which the harness writes to access.log beside the config.
    let config =
        |to: &str| who_config("{port}", admin, a, b, to).replace("access_log = \"off\"\n", "");
    let gw = Gateway::start_with_admin(&config("a"), admin);
    let (c, url) = (client(), gw.url("/who"));
    assert_eq!(who(&c, &url).await, Ok("a".to_owned()), "{}", gw.stderr());

    // Steady, modest traffic: one request every 20 ms.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (stop, url) = (stop.clone(), url.clone());
        tokio::spawn(async move {
            let c = client();
            while !stop.load(Ordering::Relaxed) {
                let _ = who(&c, &url).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let path = gw.dir.path().join("corridor.toml");
    write_like_an_editor(&path, &config("b").replace("{port}", &gw.port.to_string()));
    let seen = wait_for_backend(&c, &url, "b", Duration::from_secs(5)).await;
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    seen.unwrap_or_else(|e| {
        panic!(
            "a config change was not applied while traffic flowed: {e}\n{}",
            gw.stderr()
        )
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_config_is_not_retried_until_something_changes() {
    let a = demo_core("a").await;
    let b = demo_core("b").await;
    let admin = free_port();
    let gw = Gateway::start_with_admin(&who_config("{port}", admin, a, b, "a"), admin);
    let path = gw.dir.path().join("corridor.toml");
    let broken = format!("{}\n[[routes]\n", who_config(gw.port, admin, a, b, "b"));
    write_like_an_editor(&path, &broken);
    let deadline = Instant::now() + Duration::from_secs(10);
    while admin_json(admin, "/config").await["status"]["last_error"].is_null() {
        assert!(Instant::now() < deadline, "never rejected: {}", gw.stderr());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let the editor's burst (temp file, rename) settle, then nothing changes for 2 s.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let labels = [("result", "rejected")];
    let before = must_metric(
        &admin_metrics(admin).await,
        "corridor_config_reloads_total",
        &labels,
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = must_metric(
        &admin_metrics(admin).await,
        "corridor_config_reloads_total",
        &labels,
    );
    assert_eq!(
        after,
        before,
        "the same broken file was rejected {} more times with no change to it",
        after - before
    );
}
