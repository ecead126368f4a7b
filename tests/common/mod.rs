//! Test harness: the real `corridor` binary on loopback with real servers behind it.
//!
//! Submodules, all re-exported here: [`configs`] (config text builders), [`backends`] (demo
//! cores and test backends), [`http`] (header and raw-socket HTTP helpers), [`problems`]
//! (problem+json assertions), [`admin`] (the admin API), [`metrics`] (Prometheus text) and
//! [`pki`] (certificates made at test time).
#![allow(dead_code)]

pub mod admin;
pub mod backends;
pub mod configs;
pub mod http;
pub mod metrics;
pub mod pki;
pub mod problems;

// Every test binary uses some of these, none uses all.
#[allow(unused_imports)]
pub use {admin::*, backends::*, configs::*, http::*, metrics::*, pki::*, problems::*};

use std::io::Read;
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

/// A free loopback port. The listener is dropped before use: a tiny race, acceptable here.
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An address nothing listens on: connecting is refused.
pub fn closed_port() -> SocketAddr {
    let listener = StdListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    address
}

/// A running gateway process, killed when dropped.
pub struct Gateway {
    pub port: u16,
    /// The admin listener's port, for a gateway started with one.
    pub admin: Option<u16>,
    /// The process's logs, `access.log` (its stdout) and `stderr.log`; for
    /// [`Gateway::start`] and [`Gateway::start_with_admin`] also its `corridor.toml`.
    pub dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Gateway {
    /// Starts `corridor run` on `config`, where `{port}` is replaced by the listener port.
    /// Waits until the listener accepts connections.
    pub fn start(config: &str) -> Gateway {
        Gateway::start_text(config, None)
    }

    /// [`Gateway::start`] for a config with an admin listener on `admin`; waits for that
    /// listener too.
    pub fn start_with_admin(config: &str, admin: u16) -> Gateway {
        Gateway::start_text(config, Some(admin))
    }

    /// Starts `corridor run` on a config path the test laid out itself (a symlink, a
    /// directory), listening on `port` with an admin listener on `admin`. The logs go to a
    /// directory of their own, outside the config's. Waits until both listeners accept.
    pub fn start_at(config: &Path, port: u16, admin: u16) -> Gateway {
        Gateway::spawn(config, port, Some(admin), tempfile::tempdir().unwrap())
    }

    fn start_text(config: &str, admin: Option<u16>) -> Gateway {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("corridor.toml");
        std::fs::write(&path, config.replace("{port}", &port.to_string())).unwrap();
        Gateway::spawn(&path, port, admin, dir)
    }

    fn spawn(config: &Path, port: u16, admin: Option<u16>, dir: tempfile::TempDir) -> Gateway {
        let child = Command::new(env!("CARGO_BIN_EXE_corridor"))
            .args(["run", "--config"])
            .arg(config)
            .stdout(std::fs::File::create(dir.path().join("access.log")).unwrap())
            .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
            .spawn()
            .expect("corridor starts");
        let mut gateway = Gateway {
            port,
            admin,
            dir,
            child: Some(child),
        };
        gateway.wait_ready();
        gateway
    }

    fn wait_ready(&mut self) {
        let listening = |port: u16| TcpStream::connect(("127.0.0.1", port)).is_ok();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if listening(self.port) && self.admin.is_none_or(listening) {
                return;
            }
            self.assert_alive();
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "corridor did not listen on {} (admin {:?}): {}",
            self.port,
            self.admin,
            self.stderr()
        );
    }

    /// Panics, with its stderr, if the process has exited.
    pub fn assert_alive(&mut self) {
        if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
            panic!("corridor exited with {status}: {}", self.stderr());
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The admin listener's port; panics for a gateway started without one.
    pub fn admin_port(&self) -> u16 {
        self.admin
            .expect("the gateway was started without an admin listener")
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.admin_port(), path)
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// Access log lines written so far, parsed.
    pub fn access_log(&self) -> Vec<serde_json::Value> {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.path().join("access.log")) {
            f.read_to_string(&mut text).unwrap();
        }
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// [`Gateway::access_log`] after 300 ms, time enough for the lines of the requests
    /// answered so far to be written.
    pub async fn settled_access_log(&self) -> Vec<serde_json::Value> {
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.access_log()
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), signal).unwrap();
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal(Signal::SIGTERM);
        self.child.take().unwrap().wait().unwrap()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Result of `corridor check`.
pub struct Checked {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
    /// What was checked: the config file, or for [`check_dir`] the directory.
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

/// Runs `corridor check` on a config file with this text.
pub fn check(config: &str) -> Checked {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corridor.toml");
    std::fs::write(&path, config).unwrap();
    run_check(dir, path)
}

/// Writes `files` (name, text) into a new directory, in the order given, and runs
/// `corridor check` on the directory.
pub fn check_dir(files: &[(&str, &str)]) -> Checked {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("corridor.d");
    std::fs::create_dir(&dir).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    run_check(tmp, dir)
}

fn run_check(dir: tempfile::TempDir, path: PathBuf) -> Checked {
    let out = Command::new(env!("CARGO_BIN_EXE_corridor"))
        .args(["check", "--config"])
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Checked {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        path,
        _dir: dir,
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// A client that speaks HTTP/2 in clear text from the start (prior knowledge).
pub fn h2c_client() -> reqwest::Client {
    reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// GET `url` with [`client`]; the body parsed as JSON, whatever the status.
pub async fn fetch_json(url: &str) -> serde_json::Value {
    client()
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}
