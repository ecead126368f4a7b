//! Assembles the process: pingora server, proxy services per listener group, background
//! health checks, signal handling.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::apps::HttpServerOptions;
use pingora::proxy::ProxyServiceBuilder;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use pingora::services::background::background_service;
use pingora::services::listening::Service;
use tokio::signal::unix::{signal, SignalKind};

use crate::access_log::AccessLog;
use crate::admin::AdminApp;
use crate::cli;
use crate::metrics::Metrics;
use crate::proxy::Gateway;
use crate::reload::Reloader;
use crate::runtime::BuildEnv;
use crate::upstream::HealthChecker;
use crate::watch::ConfigWatcher;

/// Runs the gateway until SIGTERM or Ctrl-C, then drains and exits.
pub fn run(config_path: &Path, upgrade: bool) -> ExitCode {
    init_logging();
    let metrics = Metrics::new();
    let env = BuildEnv {
        metrics: metrics.clone(),
        previous: None,
    };
    let runtime = match cli::compile(config_path, &env) {
        Ok(runtime) => runtime,
        Err(errors) => {
            cli::print_errors(&errors);
            return ExitCode::FAILURE;
        }
    };
    let settings = runtime.settings.clone();
    let access_log = match AccessLog::start(&settings.access_log) {
        Ok(log) => log,
        Err(e) => {
            eprintln!("corridor: cannot open the access log: {e}");
            return ExitCode::FAILURE;
        }
    };
    // One writer per destination: two writers on one stream could interleave lines.
    let audit_log = if settings.audit_log == settings.access_log {
        access_log.clone()
    } else {
        match AccessLog::start(&settings.audit_log) {
            Ok(log) => log,
            Err(e) => {
                eprintln!("corridor: cannot open the audit log: {e}");
                return ExitCode::FAILURE;
            }
        }
    };
    let listeners = runtime.listeners.clone();
    let admin = runtime.admin.clone();
    tracing::info!(version = %runtime.version, listeners = listeners.len(), routes = runtime.router.routes().len(), "config loaded");
    let store = Arc::new(ArcSwap::from_pointee(runtime));

    let conf = ServerConf {
        threads: settings.threads,
        grace_period_seconds: Some(settings.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(1),
        upstream_keepalive_pool_size: settings.upstream_pool_size,
        ..ServerConf::default()
    };
    let options = Opt {
        upgrade,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(Some(options), conf);
    server.bootstrap();

    // One proxy service per h2c setting: pingora's server options apply to a whole service,
    // and every service has its own threads, so listeners are grouped rather than split.
    for h2c in [false, true] {
        let group: Vec<_> = listeners
            .iter()
            .enumerate()
            .filter(|(_, l)| l.h2c == h2c)
            .collect();
        if group.is_empty() {
            continue;
        }
        let mut options = HttpServerOptions::default();
        options.h2c = h2c;
        let gateway = Gateway::new(store.clone(), access_log.clone(), audit_log.clone());
        let mut service = ProxyServiceBuilder::new(&server.configuration, gateway)
            .name(if h2c {
                "corridor (h1+h2c)"
            } else {
                "corridor (h1)"
            })
            .server_options(options)
            .build();
        for (index, listener) in group {
            let address = listener.address.to_string();
            match &listener.tls {
                Some(_) => service.add_tls_with_settings(
                    &address,
                    None,
                    crate::tls::listener_settings(&store, index),
                ),
                None => service.add_tcp(&address),
            }
        }
        server.add_service(service);
    }
    server.add_service(background_service(
        "health checks",
        HealthChecker::new(store.clone()),
    ));
    let reloader = Arc::new(Reloader::new(
        config_path.to_path_buf(),
        store.clone(),
        metrics.clone(),
    ));
    server.add_service(background_service(
        "config watcher",
        ConfigWatcher::new(reloader.clone()),
    ));
    if let Some(admin) = &admin {
        let app = AdminApp::new(store.clone(), metrics.clone(), reloader);
        let mut service = Service::new("corridor admin".into(), app);
        service.add_tcp(&admin.address.to_string());
        // One thread is plenty for operators, and keeps scrapes off the proxy threads.
        service.threads = Some(1);
        server.add_service(service);
    }

    server.run(RunArgs {
        shutdown_signal: Box::new(DrainOnSignal),
    });
    tracing::info!("drained, exiting");
    ExitCode::SUCCESS
}

/// SIGTERM and SIGINT (Ctrl-C) both drain: stop accepting, let in-flight requests finish
/// within the grace period, then exit. SIGQUIT hands the listening sockets to a new process
/// (pingora's zero-downtime upgrade).
struct DrainOnSignal;

#[async_trait]
impl ShutdownSignalWatch for DrainOnSignal {
    async fn recv(&self) -> ShutdownSignal {
        let (Ok(mut term), Ok(mut int), Ok(mut quit)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::quit()),
        ) else {
            tracing::error!("cannot install signal handlers; stopping");
            return ShutdownSignal::FastShutdown;
        };
        tokio::select! {
            _ = term.recv() => ShutdownSignal::GracefulTerminate,
            _ = int.recv() => ShutdownSignal::GracefulTerminate,
            _ = quit.recv() => ShutdownSignal::GracefulUpgrade,
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,pingora_core=warn,pingora_proxy=warn")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
