//! The access log: one JSON line per request, written by a thread of its own so the request
//! path never waits on a disk or a pipe, and never takes a lock.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use serde::Serialize;

use crate::runtime::AccessLogTarget;

/// Lines waiting to be written; past this the newest are dropped and counted.
const QUEUE: usize = 16 * 1024;

/// One request, as logged. Never bodies, query strings, Authorization, cookies or keys.
#[derive(Serialize)]
pub struct AccessRecord<'a> {
    pub time: String,
    pub request_id: &'a str,
    pub route: &'a str,
    pub method: &'a str,
    /// The path as the client sent it (a filter may change the one sent upstream: never log
    /// what `detokenize` put there), without its query, which may carry credentials.
    pub path: &'a str,
    pub status: u16,
    pub upstream: Option<&'a str>,
    pub target: Option<&'a str>,
    pub attempts: usize,
    pub duration_ms: f64,
    pub upstream_ms: Option<f64>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub client_ip: Option<String>,
    pub consumer: Option<&'a str>,
    /// The filter that answered, or the gateway's problem type, when not the upstream.
    pub answered_by: Option<&'a str>,
    pub problem: Option<&'static str>,
}

/// One audited action of a filter (a detokenization), as logged: who, where, which key
/// version; never the value or the token.
#[derive(Serialize)]
pub struct AuditRecord<'a> {
    /// Always `"audit"`, so audit lines stand out when they share a stream with access lines.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub time: String,
    pub request_id: &'a str,
    pub route: &'a str,
    pub consumer: Option<&'a str>,
    pub action: &'static str,
    pub field: &'a str,
    pub key_version: u32,
}

/// A JSON-lines writer: the access log, or the audit log.
#[derive(Clone)]
pub struct AccessLog {
    sender: Option<SyncSender<Vec<u8>>>,
    dropped: Arc<AtomicU64>,
}

impl AccessLog {
    /// Starts the writer thread for `target`.
    pub fn start(target: &AccessLogTarget) -> std::io::Result<Self> {
        let sink: Box<dyn Write + Send> = match target {
            AccessLogTarget::Off => {
                return Ok(AccessLog {
                    sender: None,
                    dropped: Arc::default(),
                })
            }
            AccessLogTarget::Stdout => Box::new(std::io::stdout()),
            AccessLogTarget::File(path) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
        };
        let (sender, receiver) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_lines(receiver, sink))?;
        Ok(AccessLog {
            sender: Some(sender),
            dropped: Arc::default(),
        })
    }

    pub fn enabled(&self) -> bool {
        self.sender.is_some()
    }

    pub fn record(&self, record: &AccessRecord<'_>) {
        let Some(sender) = &self.sender else { return };
        let mut line = match serde_json::to_vec(record) {
            Ok(line) => line,
            Err(_) => return,
        };
        line.push(b'\n');
        if let Err(TrySendError::Full(_)) = sender.try_send(line) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Writes an audit record. Unlike an access log line it is never dropped: when the
    /// writer is behind, this waits for room, since an audit trail with gaps is worthless.
    pub fn audit(&self, record: &AuditRecord<'_>) {
        let Some(sender) = &self.sender else { return };
        if let Ok(mut line) = serde_json::to_vec(record) {
            line.push(b'\n');
            let _ = sender.send(line);
        }
    }

    /// Lines dropped because the writer could not keep up.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn write_lines(receiver: Receiver<Vec<u8>>, sink: Box<dyn Write + Send>) {
    let mut out = std::io::BufWriter::new(sink);
    while let Ok(line) = receiver.recv() {
        let _ = out.write_all(&line);
        // Write whatever else is queued, then flush once.
        while let Ok(line) = receiver.try_recv() {
            let _ = out.write_all(&line);
        }
        let _ = out.flush();
    }
}
