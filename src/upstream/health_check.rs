//! Active HTTP health checks, run in the background against whatever runtime is current, so
//! a reload's new upstreams are checked without restarting anything.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::upstreams::peer::HttpPeer;
use tokio::task::JoinSet;

use crate::config::HealthCheckConfig;
use crate::runtime::Runtime;

/// How often the checker looks for upstreams whose interval has passed.
const TICK: Duration = Duration::from_millis(100);

pub struct HealthChecker {
    runtime: Arc<ArcSwap<Runtime>>,
    connector: Arc<Connector>,
}

impl HealthChecker {
    pub fn new(runtime: Arc<ArcSwap<Runtime>>) -> Self {
        HealthChecker {
            runtime,
            connector: Arc::new(Connector::new(None)),
        }
    }
}

#[async_trait]
impl BackgroundService for HealthChecker {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        // Next due time per upstream name: local to this task, so no locking.
        let mut due: HashMap<Arc<str>, Instant> = HashMap::new();
        let mut running = JoinSet::new();
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(TICK) => {}
            }
            while running.try_join_next().is_some() {}
            let runtime = self.runtime.load_full();
            let now = Instant::now();
            for upstream in runtime.upstreams.values() {
                let Some(check) = upstream.health_check.clone() else {
                    continue;
                };
                let next = due.entry(upstream.name.clone()).or_insert(now);
                if *next > now {
                    continue;
                }
                *next = now + check.interval;
                for target in &upstream.targets {
                    let health = target.health.clone();
                    let peer = target.peer.clone();
                    let host = target.label.clone();
                    let connector = self.connector.clone();
                    let check = check.clone();
                    running.spawn(async move {
                        let passed = probe(&connector, peer, &host, &check).await;
                        health.record_check(
                            passed,
                            check.healthy_threshold,
                            check.unhealthy_threshold,
                        );
                    });
                }
            }
            due.retain(|name, _| runtime.upstreams.contains_key(name.as_ref()));
        }
    }
}

/// One GET on a fresh connection; passes on a 2xx within the timeout.
async fn probe(
    connector: &Connector,
    mut peer: HttpPeer,
    host: &str,
    check: &HealthCheckConfig,
) -> bool {
    peer.options.connection_timeout = Some(check.timeout);
    peer.options.read_timeout = Some(check.timeout);
    peer.options.write_timeout = Some(check.timeout);
    let attempt = async {
        let (mut session, _) = connector.get_http_session(&peer).await.ok()?;
        let mut req = RequestHeader::build("GET", check.path.as_bytes(), None).ok()?;
        req.insert_header("host", host).ok()?;
        req.insert_header("user-agent", "corridor-health-check")
            .ok()?;
        req.insert_header("connection", "close").ok()?;
        session.write_request_header(Box::new(req)).await.ok()?;
        session.finish_request_body().await.ok()?;
        session.read_response_header().await.ok()?;
        let status = session.response_header()?.status;
        Some(status.is_success())
    };
    matches!(
        tokio::time::timeout(check.timeout, attempt).await,
        Ok(Some(true))
    )
}
