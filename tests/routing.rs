//! Route selection (priority, config order, path/host/method/header matchers), the 404
//! problem when nothing matches, and path rewrites, seen from real backends.

mod common;
use common::*;

use std::net::SocketAddr;

use serde_json::Value;

/// A config with one upstream per `(name, address)` and the given `[[routes]]` text.
fn config_with(upstreams: &[(&str, SocketAddr)], routes: &str) -> String {
    let upstreams: String = upstreams
        .iter()
        .map(|(name, address)| format!("\n[upstreams.{name}]\ntargets = [\"{address}\"]\n"))
        .collect();
    gateway_config("", &format!("{upstreams}\n{routes}"))
}

/// Demo cores whose instance name is the upstream name, so the echo tells the route taken.
async fn cores(names: &[&'static str]) -> Vec<(&'static str, SocketAddr)> {
    let mut out = Vec::new();
    for name in names {
        out.push((*name, demo_core(name).await));
    }
    out
}

/// Sends a request and returns the status and the body parsed as JSON (Null if it is not).
async fn send(gw: &Gateway, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let resp = with_headers(client().request(method, gw.url(path)), headers)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.bytes().await.unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// The instance that answered an echo request; panics with context if it was not an echo.
async fn instance(gw: &Gateway, method: &str, path: &str, headers: &[(&str, &str)]) -> String {
    let (status, body) = send(gw, method, path, headers).await;
    assert_eq!(
        status,
        200,
        "{method} {path} {headers:?}: {body}\n{}",
        gw.stderr()
    );
    body["instance"]
        .as_str()
        .unwrap_or_else(|| panic!("{method} {path}: not an echo answer: {body}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn higher_priority_wins_over_config_order() {
    let ups = cores(&["a", "b"]).await;
    let gw = Gateway::start(&config_with(
        &ups,
        r#"
[[routes]]
id = "low"
upstream = "a"
[routes.match]
path_prefix = "/test/echo"

[[routes]]
id = "high"
priority = 10
upstream = "b"
[routes.match]
path_prefix = "/test"
"#,
    ));
    // "low" is first in the file and its prefix is longer, yet "high" is tried first.
    assert_eq!(instance(&gw, "GET", "/test/echo/x", &[]).await, "b");
    assert_eq!(instance(&gw, "GET", "/test/echo", &[]).await, "b");

    // A negative priority goes after the default 0, even when it comes first in the file.
    let gw = Gateway::start(&config_with(
        &ups,
        r#"
[[routes]]
id = "last-resort"
priority = -5
upstream = "b"
[routes.match]
path_prefix = "/"

[[routes]]
id = "echo"
upstream = "a"
[routes.match]
path_prefix = "/test/echo"
"#,
    ));
    assert_eq!(instance(&gw, "GET", "/test/echo/x", &[]).await, "a");
}

#[tokio::test(flavor = "multi_thread")]
async fn equal_priority_goes_to_the_first_in_config_order() {
    let ups = cores(&["a", "b"]).await;
    let routes = |first: &str, second: &str| {
        format!(
            r#"
[[routes]]
id = "first"
priority = 3
upstream = "{first}"
[routes.match]
path_prefix = "/test"

[[routes]]
id = "second"
priority = 3
upstream = "{second}"
[routes.match]
path_prefix = "/test/echo"

[[routes]]
id = "higher-but-other-path"
priority = 7
upstream = "{second}"
[routes.match]
path_prefix = "/elsewhere"
"#
        )
    };
    // Both orders, so a result that depends on upstream names or ids cannot pass.
    let gw = Gateway::start(&config_with(&ups, &routes("a", "b")));
    assert_eq!(instance(&gw, "GET", "/test/echo/1", &[]).await, "a");
    drop(gw);
    let gw = Gateway::start(&config_with(&ups, &routes("b", "a")));
    assert_eq!(instance(&gw, "GET", "/test/echo/1", &[]).await, "b");
}

#[tokio::test(flavor = "multi_thread")]
async fn exact_prefix_and_anchored_regex_paths() {
    let ups = cores(&["exact", "prefix", "regex", "fallback"]).await;
    let gw = Gateway::start(&config_with(
        &ups,
        r#"
[[routes]]
id = "exact"
upstream = "exact"
[routes.match]
path = "/test/echo/exact"

[[routes]]
id = "prefix"
upstream = "prefix"
[routes.match]
path_prefix = "/test/echo/accounts"

[[routes]]
id = "regex"
upstream = "regex"
[routes.match]
path_regex = "/test/echo/re/[0-9]+"

# Would match "/test/echo/n5" if the regex were searched rather than anchored at the start;
# reachable only as "/echo/nN", which the rewrite sends to the echo.
[[routes]]
id = "regex-start"
upstream = "regex"
[routes.match]
path_regex = "/echo/n[0-9]+"
[routes.rewrite]
add_prefix = "/test"

[[routes]]
id = "fallback"
priority = -1
upstream = "fallback"
[routes.match]
path_prefix = "/"
"#,
    ));
    let cases = [
        ("/test/echo/exact", "exact"),
        ("/test/echo/exact?x=1", "exact"),
        ("/test/echo/exact/more", "fallback"),
        ("/test/echo/exac", "fallback"),
        ("/test/echo/exact/", "fallback"),
        ("/test/echo/accounts", "prefix"),
        ("/test/echo/accounts/", "prefix"),
        ("/test/echo/accounts/7", "prefix"),
        ("/test/echo/accounts/7/balance", "prefix"),
        ("/test/echo/accountsx", "fallback"),
        ("/test/echo/accounts-7", "fallback"),
        ("/test/echo/account", "fallback"),
        ("/test/echo/re/123", "regex"),
        ("/test/echo/re/123x", "fallback"),
        ("/test/echo/re/123/4", "fallback"),
        ("/test/echo/re/", "fallback"),
        ("/test/echo/n5", "fallback"),
        ("/echo/n5", "regex"),
    ];
    for (path, want) in cases {
        assert_eq!(instance(&gw, "GET", path, &[]).await, want, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn exact_and_wildcard_hosts() {
    let ups = cores(&["exact", "wildcard", "fallback"]).await;
    let gw = Gateway::start(&config_with(
        &ups,
        r#"
[[routes]]
id = "exact"
upstream = "exact"
[routes.match]
host = "api.example.com"

[[routes]]
id = "wildcard"
upstream = "wildcard"
[routes.match]
host = "*.example.com"

[[routes]]
id = "fallback"
upstream = "fallback"
[routes.match]
path_prefix = "/"
"#,
    ));
    let cases = [
        ("api.example.com", "exact"),
        ("API.Example.COM", "exact"),
        ("api.example.com:8443", "exact"),
        ("x.example.com", "wildcard"),
        ("deep.x.example.com", "wildcard"),
        ("X.EXAMPLE.com:80", "wildcard"),
        ("example.com", "fallback"),
        ("evilexample.com", "fallback"),
        ("api.example.com.evil.net", "fallback"),
        ("api.example.org", "fallback"),
    ];
    for (host, want) in cases {
        let got = instance(&gw, "GET", "/test/echo/h", &[("host", host)]).await;
        assert_eq!(got, want, "Host: {host}");
    }
    // Without a Host override the client sends 127.0.0.1:PORT.
    assert_eq!(instance(&gw, "GET", "/test/echo/h", &[]).await, "fallback");
}

#[tokio::test(flavor = "multi_thread")]
async fn methods_restrict_a_route() {
    let ups = cores(&["writes", "fallback"]).await;
    let gw = Gateway::start(&config_with(
        &ups,
        r#"
[[routes]]
id = "writes"
upstream = "writes"
[routes.match]
path_prefix = "/test/echo"
methods = ["POST", "put"]

[[routes]]
id = "fallback"
upstream = "fallback"
[routes.match]
path_prefix = "/"
"#,
    ));
    for (method, want) in [
        ("POST", "writes"),
        ("PUT", "writes"),
        ("GET", "fallback"),
        ("DELETE", "fallback"),
        ("PATCH", "fallback"),
    ] {
        assert_eq!(
            instance(&gw, method, "/test/echo/m", &[]).await,
            want,
            "{method}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn headers_exact_value_and_presence() {
    let ups = cores(&["tenant", "debug", "both", "fallback"]).await;
    let gw = Gateway::start(&config_with(
        &ups,
        r#"
[[routes]]
id = "tenant"
upstream = "tenant"
[routes.match]
path_prefix = "/test/echo"
headers = { "X-Tenant" = "acme" }

[[routes]]
id = "debug"
upstream = "debug"
[routes.match]
path_prefix = "/test/echo"
headers = { "x-debug" = "*" }

[[routes]]
id = "both"
priority = 1
upstream = "both"
[routes.match]
headers = { "x-tenant" = "globex", "x-region" = "*" }

[[routes]]
id = "fallback"
priority = -1
upstream = "fallback"
[routes.match]
path_prefix = "/"
"#,
    ));
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("x-tenant", "acme")], "tenant"),
        (&[("X-TENANT", "acme")], "tenant"),
        (&[("x-tenant", "acme-corp")], "fallback"),
        (&[("x-tenant", "acm")], "fallback"),
        (&[("x-tenant", "other")], "fallback"),
        (&[("x-debug", "1")], "debug"),
        (&[("x-debug", "anything at all")], "debug"),
        (&[("x-tenant", "other"), ("x-debug", "0")], "debug"),
        // Both "tenant" and "debug" match: the first in config order wins.
        (&[("x-tenant", "acme"), ("x-debug", "1")], "tenant"),
        // "both" needs every one of its headers.
        (&[("x-tenant", "globex")], "fallback"),
        (&[("x-region", "eu")], "fallback"),
        (&[("x-tenant", "globex"), ("x-region", "eu")], "both"),
        (
            &[("x-tenant", "globex"), ("x-region", "eu"), ("x-debug", "1")],
            "both",
        ),
        (&[("x-tenant", "globex"), ("x-debug", "1")], "debug"),
        (&[], "fallback"),
    ];
    for (headers, want) in cases {
        assert_eq!(
            instance(&gw, "GET", "/test/echo/hd", headers).await,
            *want,
            "{headers:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_matching_route_is_a_404_problem() {
    let core = demo_core("a").await;
    let gw = Gateway::start(&config_with(
        &[("a", core)],
        r#"
[[routes]]
id = "api"
upstream = "a"
[routes.match]
path_prefix = "/test/echo"
methods = ["GET"]
host = "api.example.com"
"#,
    ));
    let c = client();
    // Right path and host, wrong method; right method, wrong path; right everything but host.
    let attempts = [
        ("POST", "/test/echo/x", "api.example.com"),
        ("GET", "/nothing/here?x=1", "api.example.com"),
        ("GET", "/test/echoes", "api.example.com"),
        ("GET", "/test/echo/x", "other.example.com"),
    ];
    let mut ids = Vec::new();
    for (method, path, host) in attempts {
        let resp = c
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                gw.url(path),
            )
            .header("host", host)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{method} {path} {host}");
        let (_, problem) = assert_titled_problem(resp, 404, "no-route").await;
        ids.push(problem["request_id"].as_str().unwrap().to_string());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids.len(),
        attempts.len(),
        "request ids must differ: {ids:?}"
    );

    // The gateway answered these itself: the backend never saw them.
    assert_eq!(hits(core).await, 0);
    // And the route does work when everything matches.
    let ok = c
        .get(gw.url("/test/echo/x"))
        .header("host", "api.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn rewrites_change_the_path_the_backend_sees_and_keep_the_query() {
    let ups = cores(&["a", "b"]).await;
    let gw = Gateway::start(&config_with(
        &ups,
        r#"
[[routes]]
id = "strip"
upstream = "a"
[routes.match]
path_prefix = "/api"
[routes.rewrite]
strip_prefix = "/api"

[[routes]]
id = "add"
upstream = "b"
[routes.match]
path_prefix = "/echo"
[routes.rewrite]
add_prefix = "/test"

[[routes]]
id = "strip-and-add"
upstream = "a"
[routes.match]
path_prefix = "/v2"
[routes.rewrite]
strip_prefix = "/v2"
add_prefix = "/test/echo/core/v2"

[[routes]]
id = "named-captures"
upstream = "b"
[routes.match]
path_regex = "/v1/accounts/(?P<id>[0-9]+)/balance"
[routes.rewrite]
regex_replace = "/test/echo/legacy/balance/${id}"

[[routes]]
id = "two-captures"
upstream = "a"
[routes.match]
path_regex = "^/v1/(?P<kind>[a-z]+)/(?P<id>[0-9]+)$"
[routes.rewrite]
regex_replace = "/test/echo/${kind}/by-id/${id}/$1"
"#,
    ));
    // (client path+query, instance, backend path, backend query)
    let cases: [(&str, &str, &str, Option<&str>); 10] = [
        (
            "/api/test/echo/x?a=1&b=two",
            "a",
            "/test/echo/x",
            Some("a=1&b=two"),
        ),
        ("/api/test/echo", "a", "/test/echo", None),
        ("/echo/y?q=%20z", "b", "/test/echo/y", Some("q=%20z")),
        ("/echo", "b", "/test/echo", None),
        (
            "/v2/accounts/7?x=1",
            "a",
            "/test/echo/core/v2/accounts/7",
            Some("x=1"),
        ),
        ("/v2", "a", "/test/echo/core/v2", None),
        (
            "/v1/accounts/42/balance?currency=EUR",
            "b",
            "/test/echo/legacy/balance/42",
            Some("currency=EUR"),
        ),
        (
            "/v1/accounts/0042/balance",
            "b",
            "/test/echo/legacy/balance/0042",
            None,
        ),
        (
            "/v1/cards/9?full=true",
            "a",
            "/test/echo/cards/by-id/9/cards",
            Some("full=true"),
        ),
        (
            "/v1/loans/123",
            "a",
            "/test/echo/loans/by-id/123/loans",
            None,
        ),
    ];
    for (path, want_instance, want_path, want_query) in cases {
        let (status, echo) = send(&gw, "GET", path, &[]).await;
        assert_eq!(status, 200, "{path}: {echo}");
        assert_eq!(echo["instance"], want_instance, "{path}: {echo}");
        assert_eq!(echo["path"], want_path, "{path}: {echo}");
        assert_eq!(echo["query"].as_str(), want_query, "{path}: {echo}");
    }
    // A prefix is removed only on a segment boundary: "/apix" is not under "/api" and no
    // route takes it.
    let (status, body) = send(&gw, "GET", "/apix/test/echo", &[]).await;
    assert_eq!(status, 404, "{body}");
    // The named-capture route does not take a non-numeric id.
    let (status, body) = send(&gw, "GET", "/v1/accounts/abc/balance", &[]).await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn routes_without_rewrite_forward_path_and_query_untouched() {
    let core = demo_core("a").await;
    let gw = Gateway::start(&simple_config(&[core], "", ""));
    let (status, echo) = send(&gw, "GET", "/test/echo/a%2Fb/c?x=1&x=2&y=", &[]).await;
    assert_eq!(status, 200, "{echo}");
    assert_eq!(echo["path"], "/test/echo/a%2Fb/c", "{echo}");
    assert_eq!(echo["query"], "x=1&x=2&y=", "{echo}");
}
