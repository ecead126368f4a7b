//! Reload triggers: changes under the config path, SIGHUP, and a slow periodic rescan.
//!
//! The directory is watched, not the files: editors save by renaming a new file over the old
//! one, and Kubernetes swaps a ConfigMap by replacing the `..data` symlink, and both show up
//! only as events on the directory. Bursts are debounced into one reload; a reload whose
//! files did not change swaps nothing.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use notify::{RecursiveMode, Watcher};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::reload::Reloader;

/// Quiet time after the last file event before reloading.
const DEBOUNCE: Duration = Duration::from_millis(150);
/// Longest a burst of events may delay a reload.
const MAX_DEBOUNCE: Duration = Duration::from_secs(1);

/// Is this a path whose change can change the config? The config file itself (or, for a
/// directory, any `*.toml`), and Kubernetes' `..data`-style entries, swapped to update a
/// ConfigMap.
fn is_config_path(path: &std::path::Path, config_file: Option<&std::path::Path>) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name.starts_with("..") {
        return true;
    }
    match config_file {
        Some(file) => file.file_name().and_then(|n| n.to_str()) == Some(name),
        None => name.ends_with(".toml"),
    }
}

pub struct ConfigWatcher {
    reloader: Arc<Reloader>,
}

impl ConfigWatcher {
    pub fn new(reloader: Arc<Reloader>) -> Self {
        ConfigWatcher { reloader }
    }

    async fn reload(&self, trigger: &'static str) {
        let reloader = self.reloader.clone();
        let _ = tokio::task::spawn_blocking(move || reloader.reload(trigger)).await;
    }
}

#[async_trait]
impl BackgroundService for ConfigWatcher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let (events_tx, mut events) = mpsc::channel::<()>(1);
        let path = self.reloader.config_path();
        let dir = if path.is_dir() {
            path.to_path_buf()
        } else {
            path.parent().map(|p| p.to_path_buf()).unwrap_or_default()
        };
        let config_file = (!path.is_dir()).then(|| path.to_path_buf());
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            // Reading the files (our own reload) shows up as access events, and other files
            // may live beside the config (logs): only changes to config files count.
            let relevant = event.is_ok_and(|e| {
                !matches!(e.kind, notify::EventKind::Access(_))
                    && e.paths
                        .iter()
                        .any(|p| is_config_path(p, config_file.as_deref()))
            });
            if relevant {
                // A full channel already holds a pending wake-up: dropping this one is fine.
                let _ = events_tx.try_send(());
            }
        })
        .and_then(|mut w| w.watch(&dir, RecursiveMode::NonRecursive).map(|()| w));
        let _watcher = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, dir = %dir.display(), "cannot watch the config directory; relying on SIGHUP, POST /reload and the periodic rescan");
                None
            }
        };
        let mut hangup = signal(SignalKind::hangup()).ok();
        let mut rescan = tokio::time::interval(self.reloader.rescan_interval());
        rescan.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                Some(()) = events.recv() => {
                    // Wait for the burst to end (an editor or a ConfigMap swap is several
                    // events), but not forever: a steady stream must not hold a reload back.
                    let deadline = tokio::time::Instant::now() + MAX_DEBOUNCE;
                    while tokio::time::Instant::now() < deadline
                        && tokio::time::timeout(DEBOUNCE, events.recv()).await.is_ok_and(|e| e.is_some())
                    {}
                    self.reload("file change").await;
                }
                Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                    self.reload("SIGHUP").await;
                }
                _ = rescan.tick() => self.reload("rescan").await,
            }
        }
    }
}
