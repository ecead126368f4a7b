//! The command line: `corridor run`, `corridor check`, `corridor --version`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{ConfigError, TlsVersion};
use crate::runtime::{BuildEnv, PathMatch, Runtime};

#[derive(Debug, Parser)]
#[command(
    name = "corridor",
    version,
    about = "An API gateway for banks, on pingora"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve with the config at PATH (a file, or a directory of *.toml merged in name order).
    Run {
        #[arg(long, short)]
        config: PathBuf,
        /// Take over the listening sockets of a running Corridor that was sent SIGQUIT
        /// (pingora's zero-downtime upgrade: no connection is refused during the switch).
        #[arg(long)]
        upgrade: bool,
    },
    /// Check the config at PATH: print a summary and exit 0, or every error and exit 1.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
}

/// Loads and compiles the config, the one step `run` and `check` share.
pub fn compile(path: &Path, env: &BuildEnv) -> Result<Runtime, Vec<ConfigError>> {
    let config = crate::config::load(path)?;
    crate::runtime::compile(&config, env)
}

pub fn print_errors(errors: &[ConfigError]) {
    for e in errors {
        eprintln!("{e}");
    }
    eprintln!("corridor: configuration has {} error(s)", errors.len());
}

pub fn check(path: &Path) -> ExitCode {
    match compile(path, &BuildEnv::standalone()) {
        Ok(runtime) => {
            print!("{}", summary(&runtime));
            println!("corridor: configuration {} is valid", path.display());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            print_errors(&errors);
            ExitCode::FAILURE
        }
    }
}

/// What `check` prints: listeners, routes in the order they are tried, upstreams.
pub fn summary(runtime: &Runtime) -> String {
    let mut out = format!("version {}\nlisteners:\n", runtime.version);
    for l in &runtime.listeners {
        let protocols = match &l.tls {
            Some(tls) => format!(
                "https: h2, http/1.1; TLS {}+; client certificates {}",
                match tls.min_version {
                    TlsVersion::Tls12 => "1.2",
                    TlsVersion::Tls13 => "1.3",
                },
                format!("{:?}", tls.client_auth).to_lowercase()
            ),
            None if l.h2c => "http/1.1, h2c".into(),
            None => "http/1.1".into(),
        };
        out += &format!("  {} ({protocols})\n", l.address);
    }
    if let Some(admin) = &runtime.admin {
        out += &format!("admin: {}\n", admin.address);
    }
    out += "routes (in match order):\n";
    for r in runtime.router.routes() {
        let path = match &r.matcher.path {
            PathMatch::Any => "any path".to_string(),
            PathMatch::Exact(p) => format!("path {p}"),
            PathMatch::Prefix(p) => format!("prefix {}", if p.is_empty() { "/" } else { p }),
            PathMatch::Regex(re) => format!("regex {}", re.as_str()),
        };
        let operation = r
            .operation
            .as_deref()
            .map(|op| format!(", iso8583 operation {op}"))
            .unwrap_or_default();
        out += &format!(
            "  {} [priority {}] {} -> upstream {}{operation} ({} filters)\n",
            r.id,
            r.priority,
            path,
            r.upstream.name,
            r.chain.len()
        );
    }
    out += "upstreams:\n";
    for (name, u) in &runtime.upstreams {
        let targets: Vec<&str> = u.targets.iter().map(|t| t.label.as_ref()).collect();
        match &u.card_host {
            Some(_) => out += &format!("  {name}: iso8583 links [{}]\n", targets.join(", ")),
            None => out += &format!("  {name}: {:?} [{}]\n", u.balancer, targets.join(", ")),
        }
    }
    out
}
