//! Test harness: the real `corridor` binary on loopback with real servers behind it.
#![allow(dead_code)]

use std::io::Read;
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port. The listener is dropped before use: a tiny race, acceptable here.
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running gateway process, killed when dropped.
pub struct Gateway {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Gateway {
    /// Starts `corridor run` on `config`, where `{port}` is replaced by the listener port.
    /// Waits until the listener accepts connections.
    pub fn start(config: &str) -> Gateway {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("corridor.toml");
        std::fs::write(&path, config.replace("{port}", &port.to_string())).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_corridor"))
            .args(["run", "--config"])
            .arg(&path)
            .stdout(std::fs::File::create(dir.path().join("access.log")).unwrap())
            .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
            .spawn()
            .expect("corridor starts");
        let mut gateway = Gateway {
            port,
            dir,
            child: Some(child),
        };
        gateway.wait_ready();
        gateway
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("corridor exited with {status}: {}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "corridor did not listen on {}: {}",
            self.port,
            self.stderr()
        );
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
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

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid()),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
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
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

/// Runs `corridor check` on a config file with this text.
pub fn check(config: &str) -> Checked {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corridor.toml");
    std::fs::write(&path, config).unwrap();
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

/// Serves the demo core (in this test's runtime) on an ephemeral port.
pub async fn demo_core(instance: &str) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let instance = instance.to_string();
    tokio::spawn(async move { corridor_democore::serve(listener, instance).await });
    addr
}

/// Serves any axum router on an ephemeral port.
pub async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

/// A minimal config: one listener, one upstream "core" with these targets, one catch-all
/// route, plus `extra` appended (more sections, or keys for `[upstreams.core]` when it
/// starts with them).
pub fn simple_config(targets: &[SocketAddr], upstream_extra: &str, extra: &str) -> String {
    let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    format!(
        r#"
[server]
threads = 1
grace_period = "1s"

[[listeners]]
listen = "127.0.0.1:{{port}}"

[upstreams.core]
targets = [{}]
{upstream_extra}

[[routes]]
id = "all"
upstream = "core"
[routes.match]
path_prefix = "/"

{extra}
"#,
        targets.join(", ")
    )
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}
