//! `iso8583` upstreams: card hosts reached over persistent TCP links rather than HTTP.
//!
//! A [`CardHost`] keeps up to `links` links open, spread over the upstream's targets; each
//! link is kept by a supervisor task that connects, checks idle links with a network-
//! management echo (0800), and reconnects with exponential backoff when the link drops.
//! Requests share the links: many are in flight on each, matched by STAN ([`link`]).
//!
//! A message that may have reached the host is never sent again: a repeated authorisation
//! could charge a card twice. Timeouts and dropped links answer with errors that say the
//! outcome is unknown; only requests that never left (no link, links full) are safe to retry.

mod clock;
mod framing;
mod link;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify, Semaphore};

pub use framing::Framing;
use link::Link;

use crate::iso8583::{CodecError, Generated, Message, Spec};
use crate::metrics::Iso8583Metrics;

/// How the links to one card host behave; from `[upstreams.NAME.iso8583]`.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkSettings {
    pub framing: Framing,
    /// Links kept open, spread over the targets.
    pub links: usize,
    /// Requests in flight on one link; more are refused (503) rather than queued.
    pub max_in_flight: usize,
    pub max_message_bytes: usize,
    pub connect_timeout: Duration,
    /// A link the host has been silent on this long gets an echo; zero turns echoes off.
    pub echo_interval: Duration,
    /// How long the host has to answer a request, or an echo before the link is judged dead.
    pub request_timeout: Duration,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
}

/// Why a call to the card host did not get an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// No link to the host is up: the request was not sent.
    #[error("no link to the card host is up")]
    Unavailable,
    /// Every link has its most requests in flight: the request was not sent.
    #[error("every link to the card host is full")]
    Busy,
    /// Sent, and no answer in time: the outcome is unknown.
    #[error("the card host did not answer in time")]
    Timeout,
    /// Sent, and the link dropped before the answer: the outcome is unknown.
    #[error("the link to the card host dropped before it answered")]
    LinkLost,
    /// The host sent something that does not decode; the link was closed.
    #[error("the card host sent a malformed message")]
    Malformed,
    /// The request does not fit the spec (a value too long for its field, say).
    #[error("the request cannot be encoded: {0}")]
    Encode(CodecError),
    #[error("the request is larger than the link allows")]
    TooLarge,
}

/// A call that got no answer to use: why, and the message as sent when it may have reached
/// the host (its outcome is then unknown).
#[derive(Debug)]
pub struct Unanswered {
    pub error: CallError,
    pub sent: Option<Message>,
}

impl From<CallError> for Unanswered {
    fn from(error: CallError) -> Self {
        Unanswered { error, sent: None }
    }
}

/// Attempts at a reversal, and the pause before the first repeat (doubling after).
const REVERSAL_ATTEMPTS: u32 = 5;
const REVERSAL_FIRST_PAUSE: Duration = Duration::from_secs(1);
/// Reversals one host runs at once: an outage must not grow tasks without bound.
const MAX_REVERSALS: usize = 1024;
/// STANs are six digits, 000001 to 999999.
const STAN_MAX: u32 = 999_999;

/// What every link of a host shares.
pub(crate) struct HostShared {
    name: Arc<str>,
    spec: Arc<Spec>,
    settings: LinkSettings,
    metrics: Iso8583Metrics,
    /// One STAN sequence for all the host's links, so that STAN, transmission time and
    /// acquirer (what a reversal's field 90 names) do not repeat across links.
    stan: AtomicU32,
}

impl HostShared {
    /// The next STAN of the host's sequence, 1 to 999,999, wrapping.
    fn next_stan(&self) -> u32 {
        self.stan.fetch_add(1, Ordering::Relaxed) % STAN_MAX + 1
    }
}

/// The links to one card host. Dropping it (a reload that changed the upstream) stops the
/// supervisors and closes the links once the requests using them are done.
pub struct CardHost {
    shared: Arc<HostShared>,
    targets: Arc<[(SocketAddr, Arc<str>)]>,
    slots: Arc<[Slot]>,
    started: AtomicBool,
    next: AtomicUsize,
    link_up: Arc<Notify>,
    shutdown: watch::Sender<bool>,
    reversals: Arc<Semaphore>,
}

#[derive(Default)]
struct Slot {
    link: ArcSwapOption<Link>,
}

impl std::fmt::Debug for CardHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardHost")
            .field("name", &self.shared.name)
            .field("settings", &self.shared.settings)
            .finish_non_exhaustive()
    }
}

impl CardHost {
    pub fn new(
        name: Arc<str>,
        spec: Arc<Spec>,
        settings: LinkSettings,
        targets: Vec<(SocketAddr, Arc<str>)>,
        metrics: Iso8583Metrics,
    ) -> CardHost {
        let slots = (0..settings.links).map(|_| Slot::default()).collect();
        CardHost {
            shared: Arc::new(HostShared {
                name,
                spec,
                settings,
                metrics,
                stan: AtomicU32::new(stan_seed()),
            }),
            targets: targets.into(),
            slots,
            started: AtomicBool::new(false),
            next: AtomicUsize::new(0),
            link_up: Arc::new(Notify::new()),
            shutdown: watch::channel(false).0,
            reversals: Arc::new(Semaphore::new(MAX_REVERSALS)),
        }
    }

    pub fn spec(&self) -> &Spec {
        &self.shared.spec
    }

    pub fn request_timeout(&self) -> Duration {
        self.shared.settings.request_timeout
    }

    /// Sends `request` (its `generated` fields filled by the link) and waits for the
    /// host's answer, of MTI `response_mti`, until `timeout` has passed. Links are tried
    /// round robin; one that is full or closing is passed over, since nothing was sent on it.
    pub async fn call(
        &self,
        request: Message,
        generated: &[(u8, Generated)],
        response_mti: [u8; 4],
        timeout: Duration,
    ) -> Result<Message, Unanswered> {
        self.start();
        let deadline = tokio::time::Instant::now() + timeout;
        // Waiting for a link is bounded by the connect timeout, not the whole budget.
        let wait_until =
            deadline.min(tokio::time::Instant::now() + self.shared.settings.connect_timeout);
        loop {
            let notified = self.link_up.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let first = self.next.fetch_add(1, Ordering::Relaxed);
            let mut busy = false;
            for k in 0..self.slots.len() {
                let slot = &self.slots[(first + k) % self.slots.len()];
                let Some(link) = slot.link.load_full().filter(|l| !l.is_closed()) else {
                    continue;
                };
                match link
                    .call(request.clone(), generated, response_mti, deadline)
                    .await
                {
                    Err(Unanswered {
                        error: CallError::Busy,
                        sent: None,
                    }) => busy = true,
                    Err(Unanswered {
                        error: CallError::Unavailable,
                        sent: None,
                    }) => {}
                    answered => return answered,
                }
            }
            if busy {
                return Err(CallError::Busy.into());
            }
            if tokio::time::timeout_at(wait_until, notified).await.is_err() {
                return Err(CallError::Unavailable.into());
            }
        }
    }

    /// Sends `reversal` (a message of `operation`) in the background until the host
    /// approves it, repeating it with backoff: hosts match a repeat to its original by
    /// field 90. One never approved (declined, "original not found" because it overtook
    /// its original, or no answer) is logged for reconciliation and counted.
    pub fn reverse(self: &Arc<Self>, operation: &str, reversal: Message, request_id: String) {
        let metrics = &self.shared.metrics;
        metrics.reversals.inc();
        let Ok(slot) = self.reversals.clone().try_acquire_owned() else {
            metrics.reversals_unconfirmed.inc();
            tracing::error!(upstream = %self.shared.name, request_id, "too many reversals in flight: this one was not sent; reconcile this request with the card host");
            return;
        };
        let host = self.clone();
        let operation = operation.to_owned();
        tokio::spawn(async move {
            let _slot = slot;
            let mut unsettled = Unsettled {
                host: &host,
                request_id: &request_id,
                settled: false,
            };
            let Some(op) = host.spec().operation(&operation) else {
                return;
            };
            let mut pause = REVERSAL_FIRST_PAUSE;
            for attempt in 1..=REVERSAL_ATTEMPTS {
                let answer = host
                    .call(
                        reversal.clone(),
                        op.generated(),
                        op.response_mti(),
                        host.request_timeout(),
                    )
                    .await;
                match answer {
                    Ok(answer) if op.is_approved(&answer) => {
                        tracing::info!(upstream = %host.shared.name, request_id, attempt, "reversal approved");
                        unsettled.settled = true;
                        return;
                    }
                    Ok(answer) => {
                        let code = answer.get(39).map(String::from_utf8_lossy);
                        tracing::warn!(upstream = %host.shared.name, request_id, attempt, response_code = ?code, "reversal declined");
                    }
                    Err(unanswered) => {
                        tracing::warn!(upstream = %host.shared.name, request_id, attempt, error = %unanswered.error, "reversal not answered");
                    }
                }
                if attempt < REVERSAL_ATTEMPTS {
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
            }
        });
    }

    /// Starts the supervisors on first use, on the runtime serving requests.
    fn start(&self) {
        if self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        for index in 0..self.slots.len() {
            let supervisor = Supervisor {
                index,
                shared: self.shared.clone(),
                targets: self.targets.clone(),
                slots: self.slots.clone(),
                link_up: self.link_up.clone(),
                shutdown: self.shutdown.subscribe(),
            };
            tokio::spawn(supervisor.run());
        }
    }
}

impl Drop for CardHost {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}

/// A reversal not yet approved: if its task ends without approval (attempts spent, or the
/// task dropped at shutdown), it is logged for reconciliation and counted.
struct Unsettled<'a> {
    host: &'a CardHost,
    request_id: &'a str,
    settled: bool,
}

impl Drop for Unsettled<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.host.shared.metrics.reversals_unconfirmed.inc();
            tracing::error!(upstream = %self.host.shared.name, request_id = self.request_id, "reversal not approved: reconcile this request with the card host");
        }
    }
}

/// Where a host's STAN sequence starts: the time of day, so that a restart or a reload does
/// not repeat the STANs just used.
fn stan_seed() -> u32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    ((secs % 86_400) * 10 % u64::from(STAN_MAX)) as u32
}

/// Resolves once `flag` is true (or its sender is gone). The guard `wait_for` returns is
/// dropped here, so the futures that wait on this stay `Send`.
pub(super) async fn set(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|f| *f).await.is_ok();
}

/// Keeps one slot's link up.
struct Supervisor {
    index: usize,
    shared: Arc<HostShared>,
    targets: Arc<[(SocketAddr, Arc<str>)]>,
    slots: Arc<[Slot]>,
    link_up: Arc<Notify>,
    shutdown: watch::Receiver<bool>,
}

impl Supervisor {
    async fn run(mut self) {
        let settings = self.shared.settings.clone();
        let mut backoff = settings.reconnect_min;
        // Slots start on different targets, so links spread over them.
        let mut attempt = self.index;
        while !*self.shutdown.borrow() {
            let (address, label) = self.targets[attempt % self.targets.len()].clone();
            let connected =
                tokio::time::timeout(settings.connect_timeout, TcpStream::connect(address)).await;
            match connected {
                Ok(Ok(stream)) => {
                    let link = Link::open(stream, label, self.shared.clone());
                    self.slots[self.index].link.store(Some(link.clone()));
                    self.shared.metrics.links_up.inc();
                    self.link_up.notify_waiters();
                    let lived = std::time::Instant::now();
                    self.keep(&link).await;
                    self.slots[self.index].link.store(None);
                    self.shared.metrics.links_up.dec();
                    link.close(CallError::LinkLost);
                    if lived.elapsed() > backoff {
                        backoff = settings.reconnect_min;
                    }
                    if *self.shutdown.borrow() {
                        break;
                    }
                    tracing::warn!(upstream = %self.shared.name, target = %link.target, "link to the card host closed; reconnecting");
                }
                _ => {
                    tracing::warn!(upstream = %self.shared.name, target = %label, "cannot connect to the card host");
                    attempt += 1;
                }
            }
            self.shared.metrics.reconnects.inc();
            // Jitter keeps links of many gateways from reconnecting in step.
            let pause = backoff.mul_f64(0.5 + fastrand::f64() / 2.0);
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = set(&mut self.shutdown) => break,
            }
            backoff = (backoff * 2).min(settings.reconnect_max);
        }
    }

    /// Returns when the link closes or the host is dropped; echoes idle links meanwhile.
    async fn keep(&mut self, link: &Arc<Link>) {
        let settings = &self.shared.settings;
        loop {
            let check = if settings.echo_interval.is_zero() {
                Duration::MAX
            } else {
                settings.echo_interval.saturating_sub(link.idle_for())
            };
            tokio::select! {
                _ = link.wait_closed() => return,
                _ = set(&mut self.shutdown) => return,
                _ = tokio::time::sleep(check), if check != Duration::MAX => {
                    if link.idle_for() < settings.echo_interval {
                        continue;
                    }
                    let deadline = tokio::time::Instant::now() + settings.request_timeout;
                    let mut echo = Message::new(*b"0800");
                    echo.set(70, b"301".to_vec());
                    let generated = [(7, Generated::TransmissionTime), (11, Generated::Stan)];
                    let answered = tokio::select! {
                        _ = link.wait_closed() => return,
                        _ = set(&mut self.shutdown) => return,
                        answer = link.call(echo, &generated, *b"0810", deadline) => answer.is_ok(),
                    };
                    if !answered {
                        tracing::warn!(upstream = %self.shared.name, target = %link.target, "card host did not answer an echo; closing the link");
                        self.shared.metrics.echo_failed.inc();
                        return;
                    }
                }
            }
        }
    }
}
