//! Hot reload: read, check and build a whole new runtime off the request path, then swap it
//! in one step, or keep the old one and say why. Every trigger (file watcher, SIGHUP,
//! periodic rescan, `POST /reload`) ends here, one reload at a time.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use serde::Serialize;

use crate::metrics::Metrics;
use crate::runtime::{BuildEnv, Runtime};

/// What a reload did.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    /// A new config is serving.
    Applied { version: String },
    /// The files hold what is already serving: nothing swapped.
    Unchanged { version: String },
    /// The old config keeps serving; these are the reasons, with file:line:col.
    Rejected {
        version: String,
        errors: Vec<String>,
    },
}

/// The last failed reload, for the admin API.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadFailure {
    pub at: String,
    pub trigger: &'static str,
    pub errors: Vec<String>,
}

/// What the admin API shows about the serving config.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadStatus {
    pub version: String,
    pub loaded_at: String,
    pub files: Vec<PathBuf>,
    pub last_error: Option<ReloadFailure>,
}

pub struct Reloader {
    config_path: PathBuf,
    runtime: Arc<ArcSwap<Runtime>>,
    metrics: Arc<Metrics>,
    status: ArcSwap<ReloadStatus>,
    /// Serializes reloads; never touched by requests.
    one_at_a_time: Mutex<()>,
}

fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

impl Reloader {
    pub fn new(
        config_path: PathBuf,
        runtime: Arc<ArcSwap<Runtime>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let current = runtime.load();
        metrics
            .config_info
            .with_label_values(&[&current.version])
            .set(1);
        let status = ReloadStatus {
            version: current.version.clone(),
            loaded_at: now(),
            files: current.files.clone(),
            last_error: None,
        };
        Reloader {
            config_path,
            runtime: runtime.clone(),
            metrics,
            status: ArcSwap::from_pointee(status),
            one_at_a_time: Mutex::new(()),
        }
    }

    pub fn status(&self) -> Arc<ReloadStatus> {
        self.status.load_full()
    }

    pub fn rescan_interval(&self) -> std::time::Duration {
        self.runtime.load().settings.config_rescan
    }

    pub fn config_path(&self) -> &std::path::Path {
        &self.config_path
    }

    /// Reads the config again and swaps it in if it is valid and different. Blocking (file
    /// reads, DNS, compile): call it off the request threads.
    pub fn reload(&self, trigger: &'static str) -> Outcome {
        let _one = self
            .one_at_a_time
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let current = self.runtime.load_full();
        let env = BuildEnv {
            metrics: self.metrics.clone(),
            previous: Some(current.clone()),
        };
        let built = crate::config::load(&self.config_path)
            .and_then(|config| crate::runtime::compile(&config, &env))
            .map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>())
            .and_then(|next| fixed_at_start(&current, &next).map(|()| next));
        let next = match built {
            Ok(next) => next,
            Err(errors) => return self.reject(trigger, &current, errors),
        };
        if next.version == current.version {
            return Outcome::Unchanged {
                version: current.version.clone(),
            };
        }
        let version = next.version.clone();
        let files = next.files.clone();
        self.runtime.store(Arc::new(next));
        self.metrics.config_info.reset();
        self.metrics
            .config_info
            .with_label_values(&[&version])
            .set(1);
        self.metrics.reloads.with_label_values(&["applied"]).inc();
        self.status.store(Arc::new(ReloadStatus {
            version: version.clone(),
            loaded_at: now(),
            files,
            last_error: None,
        }));
        tracing::info!(%version, trigger, "config reloaded");
        Outcome::Applied { version }
    }

    fn reject(&self, trigger: &'static str, current: &Runtime, errors: Vec<String>) -> Outcome {
        let status = self.status.load_full();
        let repeated = status
            .last_error
            .as_ref()
            .is_some_and(|last| last.errors == errors);
        if repeated && trigger != "admin" {
            // The same broken files seen again (rescan, unrelated event): already reported.
            return Outcome::Rejected {
                version: current.version.clone(),
                errors,
            };
        }
        for e in &errors {
            tracing::error!(trigger, "config reload rejected: {e}");
        }
        self.metrics.reloads.with_label_values(&["rejected"]).inc();
        let mut status = (*status).clone();
        status.last_error = Some(ReloadFailure {
            at: now(),
            trigger,
            errors: errors.clone(),
        });
        self.status.store(Arc::new(status));
        Outcome::Rejected {
            version: current.version.clone(),
            errors,
        }
    }
}

/// Listeners and process settings are bound when the process starts; a reload that changes
/// them is refused whole, so what serves is always exactly one config.
fn fixed_at_start(current: &Runtime, next: &Runtime) -> Result<(), Vec<String>> {
    let mut errors = Vec::new();
    let fixed = |runtime: &Runtime| {
        runtime
            .listeners
            .iter()
            .map(|l| l.fixed_at_start())
            .collect::<Vec<_>>()
    };
    if fixed(current) != fixed(next) {
        errors.push(format!(
            "listeners changed ({:?} → {:?}): listeners cannot change in place; restart, or start a new process with `corridor run --upgrade` and send SIGQUIT to this one",
            current.listeners.iter().map(|l| l.address).collect::<Vec<_>>(),
            next.listeners.iter().map(|l| l.address).collect::<Vec<_>>(),
        ));
    }
    if current.admin.as_ref().map(|a| a.address) != next.admin.as_ref().map(|a| a.address) {
        errors.push(
            "[admin] listen changed: it cannot change in place; restart or upgrade the process"
                .into(),
        );
    }
    if current.settings.fixed_at_start() != next.settings.fixed_at_start() {
        errors.push("[server] threads, grace_period, access_log, audit_log or upstream_pool_size changed: these apply at start only; restart or upgrade the process".into());
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}
