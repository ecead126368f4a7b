//! `corridor check` on bad configs: every error is reported as `file:line:col: message`, on the
//! line that is wrong, all of them at once; a directory is merged in name order; a good config
//! prints its summary.

mod common;
use common::*;

use std::path::Path;

/// A valid config. Cases edit it with [`edit`]; every key sits on a line of its own.
const BASE: &str = r#"[server]
threads = 1

[[listeners]]
listen = "127.0.0.1:18080"

[upstreams.core]
targets = ["127.0.0.1:19000"]

[[routes]]
id = "all"
upstream = "core"
[routes.match]
path_prefix = "/"
"#;

/// `BASE` with each `(from, to)` replaced once; `from` must be there, so an edit cannot
/// silently miss and leave a valid config.
fn edit(edits: &[(&str, &str)]) -> String {
    let mut text = BASE.to_owned();
    for (from, to) in edits {
        assert!(text.contains(from), "{from:?} is not in the base config");
        text = text.replacen(from, to, 1);
    }
    text
}

/// 1-based numbers of the lines of `text` that contain `marker`.
fn lines_with(text: &str, marker: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.contains(marker))
        .map(|(i, _)| i + 1)
        .collect()
}

/// The 1-based number of the one line of `text` that contains `marker`.
fn line_of(text: &str, marker: &str) -> usize {
    let found = lines_with(text, marker);
    assert_eq!(found.len(), 1, "{marker:?} must mark exactly one line");
    found[0]
}

/// One reported error: `path:line:col: message` (the message may go on over more lines).
#[derive(Debug)]
struct Reported {
    line: usize,
    col: usize,
    message: String,
}

/// The errors `stderr` reports for `file`.
fn reported(stderr: &str, file: &Path) -> Vec<Reported> {
    let prefix = format!("{}:", file.display());
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .filter_map(|rest| {
            let mut parts = rest.splitn(3, ':');
            let line = parts.next()?.parse().ok()?;
            let col = parts.next()?.parse().ok()?;
            let message = parts.next()?.strip_prefix(' ')?.to_owned();
            Some(Reported { line, col, message })
        })
        .collect()
}

/// Asserts that `stderr` reports, for `file`, an error containing `message` on one of `lines`
/// of `text`, with a column inside that line.
fn assert_reported(stderr: &str, file: &Path, text: &str, lines: &[usize], message: &str) {
    let errors = reported(stderr, file);
    let found = errors
        .iter()
        .find(|e| e.message.contains(message))
        .unwrap_or_else(|| {
            panic!(
                "no error containing {message:?} for {}:\n{stderr}",
                file.display()
            )
        });
    assert!(
        lines.contains(&found.line),
        "{message:?} is reported on line {}, expected {lines:?}:\n{stderr}\n--- config ---\n{}",
        found.line,
        numbered(text)
    );
    let width = text.lines().nth(found.line - 1).map_or(0, str::len);
    assert!(
        (1..=width + 1).contains(&found.col),
        "column {} is outside line {} ({width} chars):\n{stderr}",
        found.col,
        found.line
    );
}

fn numbered(text: &str) -> String {
    text.lines()
        .enumerate()
        .map(|(i, l)| format!("{:3} {l}\n", i + 1))
        .collect()
}

/// Checks `text`: it must be refused, with an error containing `message` on the line marked
/// `# HERE`.
fn assert_refused(text: &str, message: &str) {
    assert_refused_on(text, &[line_of(text, "# HERE")], message);
}

fn assert_refused_on(text: &str, lines: &[usize], message: &str) {
    let checked = check(text);
    assert!(
        !checked.ok,
        "the config was accepted:\n{}\n{}",
        numbered(text),
        checked.stdout
    );
    assert_reported(&checked.stderr, &checked.path, text, lines, message);
    assert!(
        checked.stderr.contains("corridor: configuration has"),
        "{}",
        checked.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn toml_syntax_error() {
    let text = edit(&[(
        r#"listen = "127.0.0.1:18080""#,
        r#"listen = "127.0.0.1:18080 # HERE: the string is not closed"#,
    )]);
    assert_refused(&text, "invalid basic string");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_key_at_top_level() {
    let text = format!("listenerz = [] # HERE\n{BASE}");
    assert_refused(&text, "unknown field `listenerz`");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_key_in_a_route() {
    let text = edit(&[(
        "upstream = \"core\"\n",
        "upstream = \"core\"\ntimeout = \"5s\" # HERE\n",
    )]);
    assert_refused(&text, "unknown field `timeout`");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_key_in_a_route_match() {
    let text = edit(&[("path_prefix = \"/\"", "pth = \"/x\" # HERE")]);
    assert_refused(&text, "unknown field `pth`");
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_type() {
    let text = edit(&[("threads = 1", "threads = \"four\" # HERE")]);
    assert_refused(&text, "invalid type: string \"four\"");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_listeners() {
    let text = edit(&[("[[listeners]]\nlisten = \"127.0.0.1:18080\"\n", "")]);
    // A missing section has no line of its own: the error is about the file.
    assert_refused_on(&text, &[1], "no [[listeners]]");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_listen_address() {
    let text = edit(&[(
        r#"listen = "127.0.0.1:18080""#,
        r#"listen = "localhost:http" # HERE"#,
    )]);
    assert_refused(&text, "listen address \"localhost:http\" is not ip:port");
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicate_listener() {
    let text = edit(&[(
        "[upstreams.core]",
        "[[listeners]]\nlisten = \"127.0.0.1:18080\" # HERE\n\n[upstreams.core]",
    )]);
    assert_refused(&text, "listener 127.0.0.1:18080 is declared twice");
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_without_targets() {
    let text = edit(&[(r#"targets = ["127.0.0.1:19000"]"#, "targets = [] # HERE")]);
    assert_refused(&text, "upstream \"core\" has no targets");
}

#[tokio::test(flavor = "multi_thread")]
async fn target_without_port() {
    let text = edit(&[(
        r#"targets = ["127.0.0.1:19000"]"#,
        r#"targets = ["127.0.0.1"] # HERE"#,
    )]);
    assert_refused(&text, "target \"127.0.0.1\": needs a port");
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicate_target() {
    let text = edit(&[(
        r#"targets = ["127.0.0.1:19000"]"#,
        r#"targets = ["127.0.0.1:19000", "127.0.0.1:19000"] # HERE"#,
    )]);
    assert_refused(&text, "target 127.0.0.1:19000 is listed twice");
}

#[tokio::test(flavor = "multi_thread")]
async fn route_with_unknown_upstream() {
    let text = edit(&[("upstream = \"core\"", "upstream = \"nope\" # HERE")]);
    assert_refused(&text, "route \"all\": unknown upstream \"nope\"");
}

#[tokio::test(flavor = "multi_thread")]
async fn route_with_unknown_chain() {
    let text = edit(&[(
        "upstream = \"core\"\n",
        "upstream = \"core\"\nchain = \"nope\" # HERE\n",
    )]);
    assert_refused(&text, "route \"all\": unknown chain \"nope\"");
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicate_route_id() {
    let text = format!(
        "{BASE}\n[[routes]]\nid = \"all\" # HERE\nupstream = \"core\"\n[routes.match]\npath_prefix = \"/b\"\n"
    );
    assert_refused(&text, "route id \"all\" is used twice");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_of_path_path_prefix_and_path_regex() {
    let text = edit(&[(
        "path_prefix = \"/\"",
        "path_prefix = \"/\" # HERE\npath = \"/a\" # OR HERE",
    )]);
    // Either of the two conflicting keys is the right place.
    let lines = [line_of(&text, "# HERE"), line_of(&text, "# OR HERE")];
    assert_refused_on(
        &text,
        &lines,
        "give only one of match.path, match.path_prefix, match.path_regex",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_path_regex() {
    let text = edit(&[("path_prefix = \"/\"", "path_regex = \"/a/(\" # HERE")]);
    assert_refused(&text, "route \"all\": path_regex: regex parse error");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_method() {
    let text = edit(&[(
        "path_prefix = \"/\"",
        "path_prefix = \"/\"\nmethods = [\"GET\", \"FE TCH\"] # HERE",
    )]);
    assert_refused(&text, "\"FE TCH\" is not an HTTP method");
}

#[tokio::test(flavor = "multi_thread")]
async fn regex_replace_without_path_regex() {
    let text = format!("{BASE}[routes.rewrite]\nregex_replace = \"/x/$1\" # HERE\n");
    assert_refused(&text, "rewrite.regex_replace needs match.path_regex");
}

#[tokio::test(flavor = "multi_thread")]
async fn hash_on_without_consistent_hash() {
    let text = edit(&[(
        "targets = [\"127.0.0.1:19000\"]\n",
        "targets = [\"127.0.0.1:19000\"]\nhash_on = \"client_ip\" # HERE\n",
    )]);
    assert_refused(&text, "hash_on needs balance = \"consistent_hash\"");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_trusted_proxies_cidr() {
    let text = edit(&[(
        "threads = 1\n",
        "threads = 1\ntrusted_proxies = [\"10.0.0.0/33\"] # HERE\n",
    )]);
    assert_refused(
        &text,
        "trusted_proxies: \"10.0.0.0/33\" is not a CIDR or IP address",
    );
}

/// `BASE` with a chain "web" of these filter lines (one filter a line) on the route.
fn with_chain(filter_lines: &str) -> String {
    let text = edit(&[(
        "upstream = \"core\"\n",
        "upstream = \"core\"\nchain = \"web\"\n",
    )]);
    format!("{text}\n[chains.web]\nfilters = [\n{filter_lines}]\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_filter_type() {
    let text = with_chain("  { type = \"request_id\" },\n  { type = \"nope\" }, # HERE\n");
    assert_refused(&text, "unknown variant `nope`");
}

#[tokio::test(flavor = "multi_thread")]
async fn filter_build_error() {
    let text = with_chain(
        "  { type = \"request_id\" },\n  \
         { type = \"cors\", allow_origins = [\"*\"], allow_credentials = true }, # HERE\n",
    );
    assert_refused(
        &text,
        "chain \"web\": filter \"cors\": cors: allow_origins = [\"*\"] cannot go with allow_credentials = true",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_over_five() {
    let text = edit(&[(
        "targets = [\"127.0.0.1:19000\"]\n",
        "targets = [\"127.0.0.1:19000\"]\nretries = 9 # HERE\n",
    )]);
    assert_refused(
        &text,
        "upstream \"core\": retries is 9, at most 5 are allowed",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_ca_file() {
    let text = edit(&[(
        "targets = [\"127.0.0.1:19000\"]\n",
        "targets = [\"127.0.0.1:19000\"]\ntls = true\nca_file = \"no-such-ca.pem\" # HERE\n",
    )]);
    assert_refused(&text, "upstream \"core\": ca_file: cannot read");
}

#[tokio::test(flavor = "multi_thread")]
async fn several_errors_in_one_file_are_all_reported() {
    let text = r#"[server]
threads = 1

[[listeners]]
listen = "localhost" # E1

[upstreams.core]
targets = ["127.0.0.1:19000"]

[upstreams.spare]
targets = [] # E2

[[routes]]
id = "all"
upstream = "core"
chain = "nope" # E3
[routes.match]
path_prefix = "/"
methods = ["GET", "G@T"] # E4

[[routes]]
id = "all" # E5
upstream = "core"
[routes.match]
path = "/x"
"#;
    let checked = check(text);
    assert!(!checked.ok, "{}", checked.stdout);
    for (marker, message) in [
        ("# E1", "listen address \"localhost\" is not ip:port"),
        ("# E2", "upstream \"spare\" has no targets"),
        ("# E3", "unknown chain \"nope\""),
        ("# E4", "\"G@T\" is not an HTTP method"),
        ("# E5", "route id \"all\" is used twice"),
    ] {
        assert_reported(
            &checked.stderr,
            &checked.path,
            text,
            &[line_of(text, marker)],
            message,
        );
    }
    assert_eq!(
        reported(&checked.stderr, &checked.path).len(),
        5,
        "{}",
        checked.stderr
    );
    assert!(
        checked
            .stderr
            .contains("corridor: configuration has 5 error(s)"),
        "{}",
        checked.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_with_an_error_is_not_also_reported_unknown_by_its_routes() {
    // One mistake, one error: the route's upstream exists, it is only misconfigured.
    let text = edit(&[(
        "targets = [\"127.0.0.1:19000\"]\n",
        "targets = [\"127.0.0.1:19000\"]\nretries = 9 # HERE\n",
    )]);
    let checked = check(&text);
    assert!(!checked.ok);
    assert!(
        !checked.stderr.contains("unknown upstream"),
        "a defined upstream is reported unknown:\n{}",
        checked.stderr
    );
    assert_eq!(
        reported(&checked.stderr, &checked.path).len(),
        1,
        "{}",
        checked.stderr
    );
}

/// The base file of a config directory: `BASE` with the route "first" on "/a".
fn dir_base() -> String {
    edit(&[
        ("id = \"all\"", "id = \"first\""),
        ("path_prefix = \"/\"", "path_prefix = \"/a\""),
    ])
}

#[tokio::test(flavor = "multi_thread")]
async fn a_config_directory_is_merged_in_name_order() {
    // Written in reverse order: the name decides, not the creation order.
    let routes = r#"# routes only: the upstream is in 10-base.toml
[[routes]]
id = "second"
upstream = "core"
[routes.match]
path_prefix = "/b"
"#;
    let checked = check_dir(&[
        ("20-routes.toml", routes),
        ("10-base.toml", &dir_base()),
        ("notes.txt", "not a config file"),
    ]);
    assert!(checked.ok, "{}", checked.stderr);
    let out = &checked.stdout;
    let first = out.find("first [priority 0] prefix /a -> upstream core");
    let second = out.find("second [priority 0] prefix /b -> upstream core");
    assert!(
        first.is_some() && second.is_some() && first < second,
        "routes of equal priority must be listed in file name order:\n{out}"
    );
    assert!(out.contains("127.0.0.1:18080"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_in_a_config_directory_name_their_file_and_line() {
    let routes = r#"# routes
[[routes]]
id = "second"
upstream = "missing" # HERE
[routes.match]
path_prefix = "/b"
methods = ["GET", "P O S T"] # THERE
"#;
    let checked = check_dir(&[("20-routes.toml", routes), ("10-base.toml", &dir_base())]);
    assert!(!checked.ok, "{}", checked.stdout);
    let file = checked.path.join("20-routes.toml");
    assert_reported(
        &checked.stderr,
        &file,
        routes,
        &[line_of(routes, "# HERE")],
        "route \"second\": unknown upstream \"missing\"",
    );
    assert_reported(
        &checked.stderr,
        &file,
        routes,
        &[line_of(routes, "# THERE")],
        "\"P O S T\" is not an HTTP method",
    );
    // Nothing is blamed on the file that is right.
    assert!(
        reported(&checked.stderr, &checked.path.join("10-base.toml")).is_empty(),
        "{}",
        checked.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_section_set_twice_across_files_is_blamed_on_the_later_file() {
    let more = r#"# more settings
[server] # HERE
threads = 2
"#;
    let checked = check_dir(&[("20-more.toml", more), ("10-base.toml", &dir_base())]);
    assert!(!checked.ok, "{}", checked.stdout);
    let base = checked.path.join("10-base.toml");
    assert_reported(
        &checked.stderr,
        &checked.path.join("20-more.toml"),
        more,
        &[line_of(more, "# HERE")],
        &format!("[server] is already set in {}", base.display()),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_valid_config_prints_its_summary() {
    let text = format!(
        "{}\n[chains.web]\nfilters = [{{ type = \"request_id\" }}, {{ type = \"body_limit\", max_bytes = 1024 }}]\n",
        edit(&[(
            "upstream = \"core\"\n",
            "upstream = \"core\"\nchain = \"web\"\n",
        )])
    );
    let checked = check(&text);
    assert!(checked.ok, "{}", checked.stderr);
    let out = &checked.stdout;
    for part in [
        "listeners:",
        "127.0.0.1:18080 (http/1.1, h2c)",
        "routes (in match order):",
        "all [priority 0] prefix / -> upstream core (2 filters)",
        "upstreams:",
        "core:",
        "127.0.0.1:19000",
        "is valid",
    ] {
        assert!(out.contains(part), "{part:?} missing from:\n{out}");
    }
    assert!(!checked.stderr.contains("error"), "{}", checked.stderr);
}

#[tokio::test]
async fn filters_written_as_an_array_of_tables_are_a_chain_too() {
    // Long filter configs cannot be inline tables (TOML 1.0 keeps those on one line), so
    // `[[chains.NAME.filters]]` without a `[chains.NAME]` header must work, errors included.
    let text = format!(
        "{}\n[[chains.web.filters]]\ntype = \"request_id\"\n\n[[chains.web.filters]]\ntype = \"body_limit\"\nmax_bytes = 0\n",
        edit(&[(
            "upstream = \"core\"\n",
            "upstream = \"core\"\nchain = \"web\"\n",
        )])
    );
    let checked = check(&text);
    assert!(!checked.ok, "{}", checked.stdout);
    assert!(
        checked.stderr.contains("corridor.toml:")
            && checked
                .stderr
                .contains("chain \"web\": filter \"body_limit\""),
        "{}",
        checked.stderr
    );
    let fixed = check(&text.replace("max_bytes = 0", "max_bytes = 1024"));
    assert!(fixed.ok, "{}", fixed.stderr);
    assert!(fixed.stdout.contains("(2 filters)"), "{}", fixed.stdout);
}
