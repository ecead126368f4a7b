//! Config text. Every config starts with [`config_head`]; most have one upstream "core".

use std::fmt::Display;
use std::net::SocketAddr;

/// The catch-all route to the upstream "core", with no chain.
pub const CATCH_ALL: &str = r#"
[[routes]]
id = "all"
upstream = "core"
[routes.match]
path_prefix = "/"
"#;

/// Addresses as the contents of a TOML array: `"127.0.0.1:1", "127.0.0.1:2"`.
pub fn quoted(addresses: &[SocketAddr]) -> String {
    addresses
        .iter()
        .map(|a| format!("\"{a}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `[server]` with `threads` threads, a 1 s grace period and the `server_extra` lines, then
/// one listener on `port` (`"{port}"` for [`super::Gateway::start`] to fill in).
pub fn config_head(threads: u32, port: impl Display, server_extra: &str) -> String {
    format!(
        r#"
[server]
threads = {threads}
grace_period = "1s"
{server_extra}

[[listeners]]
listen = "127.0.0.1:{port}"
"#
    )
}

/// A config for [`super::Gateway::start`]: the [`config_head`] with one thread, then `rest`.
pub fn gateway_config(server_extra: &str, rest: &str) -> String {
    format!("{}\n{rest}\n", config_head(1, "{port}", server_extra))
}

/// `[upstreams.core]` on `targets` (a TOML array's contents, see [`quoted`]), then
/// `upstream_extra` (its keys, or sub-tables).
pub fn core_upstream(targets: &str, upstream_extra: &str) -> String {
    format!("[upstreams.core]\ntargets = [{targets}]\n{upstream_extra}\n")
}

/// A gateway config with the upstream "core" on `targets`: `server_extra` goes in
/// `[server]`, `upstream_extra` in `[upstreams.core]`, and `rest` (routes, chains) after them.
pub fn core_config(
    targets: &[SocketAddr],
    server_extra: &str,
    upstream_extra: &str,
    rest: &str,
) -> String {
    let core = core_upstream(&quoted(targets), upstream_extra);
    gateway_config(server_extra, &format!("{core}\n{rest}"))
}

/// A minimal config: one listener, one upstream "core" with these targets (and
/// `upstream_extra` in `[upstreams.core]`), the [`CATCH_ALL`] route, then `extra` (more
/// sections).
pub fn simple_config(targets: &[SocketAddr], upstream_extra: &str, extra: &str) -> String {
    core_config(
        targets,
        "",
        upstream_extra,
        &format!("{CATCH_ALL}\n{extra}"),
    )
}

/// `[admin]` listening on `admin`, then `admin_extra` (its keys).
pub fn admin_section(admin: u16, admin_extra: &str) -> String {
    format!("[admin]\nlisten = \"127.0.0.1:{admin}\"\n{admin_extra}\n")
}
