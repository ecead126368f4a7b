//! One persistent TCP link to a card host. Many requests are in flight on it at once; each
//! has a STAN (field 11) of its own, and the host's answers, in whatever order they come,
//! are matched back by STAN, expected MTI, and RRN (field 37) when both sides carry one.
//!
//! A reader and a writer task own the socket's halves. Anything the link cannot make sense
//! of (a frame that does not decode, a write that fails or stalls, the host closing) closes
//! the whole link: every request still waiting on it gets a clean error at once, and the
//! host pool opens a new link.
//!
//! Whether a request left matters for money: one that never reached the socket is safe to
//! try elsewhere, one that did has an unknown outcome. The writer writes a request only
//! while its caller still waits, and marks it written first, so every error can say which.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};

use super::clock::Stamp;
use super::{set, CallError, HostShared, Unanswered};
use crate::iso8583::{Generated, Message};

pub(super) struct Link {
    pub(super) target: Arc<str>,
    host: Arc<HostShared>,
    outbox: mpsc::Sender<Outgoing>,
    waiting: Mutex<Waiting>,
    closed: watch::Sender<bool>,
    /// Milliseconds since `opened` at the last frame received: idle links get an echo.
    last_heard_ms: AtomicU64,
    opened: Instant,
}

enum Outgoing {
    /// A request, written only if its waiter (same STAN and ticket) still waits.
    Request {
        stan: u32,
        ticket: u64,
        frame: Vec<u8>,
    },
    /// An answer to the host's own echo.
    Reply(Vec<u8>),
}

/// Requests waiting for their answer, by STAN. Closing the link happens under the same
/// lock, so no request can start waiting on a closed link.
struct Waiting {
    by_stan: HashMap<u32, Waiter>,
    /// Tells apart requests that held the same STAN at different times.
    next_ticket: u64,
    closed: bool,
}

/// Why a waiter got no answer, and whether its request was written to the socket.
type Failed = (CallError, bool);

struct Waiter {
    ticket: u64,
    response_mti: [u8; 4],
    rrn: Option<Vec<u8>>,
    written: bool,
    answer: oneshot::Sender<Result<Message, Failed>>,
}

impl Link {
    /// Starts the reader and writer tasks over `stream`.
    pub(super) fn open(stream: TcpStream, target: Arc<str>, host: Arc<HostShared>) -> Arc<Link> {
        let _ = stream.set_nodelay(true);
        let (reader, writer) = stream.into_split();
        let (outbox, frames) = mpsc::channel(host.settings.max_in_flight);
        let (closed, _) = watch::channel(false);
        let link = Arc::new(Link {
            target,
            host,
            outbox,
            waiting: Mutex::new(Waiting {
                by_stan: HashMap::new(),
                next_ticket: 0,
                closed: false,
            }),
            closed,
            last_heard_ms: AtomicU64::new(0),
            opened: Instant::now(),
        });
        tokio::spawn(link.clone().write_loop(writer, frames));
        tokio::spawn(link.clone().read_loop(reader));
        link
    }

    async fn write_loop(
        self: Arc<Self>,
        mut writer: tokio::net::tcp::OwnedWriteHalf,
        mut frames: mpsc::Receiver<Outgoing>,
    ) {
        let mut closed = self.closed.subscribe();
        // A host that stops reading fills the socket: a write that long is a dead link.
        let stall = self.host.settings.request_timeout;
        loop {
            let next = tokio::select! {
                biased;
                _ = set(&mut closed) => break,
                next = frames.recv() => next,
            };
            let frame = match next {
                None => break,
                Some(Outgoing::Reply(frame)) => frame,
                Some(Outgoing::Request {
                    stan,
                    ticket,
                    frame,
                }) => {
                    if !self.mark_written(stan, ticket) {
                        continue;
                    }
                    frame
                }
            };
            let written = tokio::select! {
                biased;
                _ = set(&mut closed) => break,
                written = tokio::time::timeout(stall, writer.write_all(&frame)) => written,
            };
            if !matches!(written, Ok(Ok(()))) {
                self.close(CallError::LinkLost);
                break;
            }
        }
        let _ = writer.shutdown().await;
    }

    async fn read_loop(self: Arc<Self>, reader: tokio::net::tcp::OwnedReadHalf) {
        let mut closed = self.closed.subscribe();
        let mut reader = BufReader::new(reader);
        let (framing, max) = (
            self.host.settings.framing,
            self.host.settings.max_message_bytes,
        );
        loop {
            let frame = tokio::select! {
                _ = set(&mut closed) => break,
                frame = framing.read(&mut reader, max) => frame,
            };
            match frame {
                Ok(Some(frame)) => {
                    if !self.received(&frame) {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                    tracing::warn!(upstream = %self.host.name, target = %self.target, error = %e, "card host sent a bad length header; closing the link");
                    self.host.metrics.malformed.inc();
                    self.close(CallError::Malformed);
                    break;
                }
                Ok(None) | Err(_) => {
                    self.close(CallError::LinkLost);
                    break;
                }
            }
        }
    }

    pub(super) fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    /// Resolves once the link is closed, for whatever reason.
    pub(super) async fn wait_closed(&self) {
        set(&mut self.closed.subscribe()).await;
    }

    /// How long since the host last sent anything.
    pub(super) fn idle_for(&self) -> std::time::Duration {
        let heard = self.last_heard_ms.load(Ordering::Relaxed);
        self.opened
            .elapsed()
            .saturating_sub(std::time::Duration::from_millis(heard))
    }

    /// Closes the link: the sockets are shut, and every request waiting on it gets `why`.
    pub(super) fn close(&self, why: CallError) {
        let waiters = {
            let mut waiting = self.lock();
            if waiting.closed {
                return;
            }
            waiting.closed = true;
            std::mem::take(&mut waiting.by_stan)
        };
        self.closed.send_replace(true);
        for (_, waiter) in waiters {
            let _ = waiter.answer.send(Err((why.clone(), waiter.written)));
        }
    }

    /// Sends `request` with the fields in `generated` filled in (the STAN taken from the
    /// host's sequence) and waits for its answer, of MTI `response_mti`, until `deadline`.
    /// An error carries the request as filled in when it was written to the socket.
    pub(super) async fn call(
        &self,
        mut request: Message,
        generated: &[(u8, Generated)],
        response_mti: [u8; 4],
        deadline: tokio::time::Instant,
    ) -> Result<Message, Unanswered> {
        let stamp = Stamp::now();
        let (mut answer, stan, ticket) = {
            let mut waiting = self.lock();
            if waiting.closed {
                return Err(CallError::Unavailable.into());
            }
            if waiting.by_stan.len() >= self.host.settings.max_in_flight {
                return Err(CallError::Busy.into());
            }
            let stan = loop {
                let stan = self.host.next_stan();
                if !waiting.by_stan.contains_key(&stan) {
                    break stan;
                }
            };
            fill(&mut request, generated, stan, &stamp);
            let ticket = waiting.next_ticket;
            waiting.next_ticket += 1;
            let (answer, receiver) = oneshot::channel();
            let waiter = Waiter {
                ticket,
                response_mti,
                rrn: request.get(37).map(<[u8]>::to_vec),
                written: false,
                answer,
            };
            waiting.by_stan.insert(stan, waiter);
            (receiver, stan, ticket)
        };
        // Whatever happens from here (even this future being dropped), the STAN is freed.
        let _registered = Registered {
            link: self,
            stan,
            ticket,
        };
        let frame = self.frame(&request).map_err(Unanswered::from)?;
        let queued = tokio::time::timeout_at(
            deadline,
            self.outbox.send(Outgoing::Request {
                stan,
                ticket,
                frame,
            }),
        )
        .await;
        match queued {
            Ok(Ok(())) => {}
            // Never written: the writer skips requests whose waiter is gone.
            Err(_) => return Err(CallError::Timeout.into()),
            Ok(Err(_)) => return Err(CallError::Unavailable.into()),
        }
        let outcome = match tokio::time::timeout_at(deadline, &mut answer).await {
            Ok(Ok(outcome)) => outcome,
            // The waiter was dropped without an answer: only closing does that.
            Ok(Err(_)) => Err((CallError::LinkLost, true)),
            Err(_) => match self.forget(stan, ticket) {
                // A late answer will find no waiter and be counted as unmatched.
                Some(waiter) => Err((CallError::Timeout, waiter.written)),
                // The answer (or the link's closing) came as the time ran out: take it.
                None => answer.try_recv().unwrap_or(Err((CallError::Timeout, true))),
            },
        };
        match outcome {
            Ok(message) => Ok(message),
            Err((error, true)) => Err(Unanswered {
                error,
                sent: Some(request),
            }),
            // Not written: safe to try another link, unless the time is up.
            Err((CallError::Timeout, false)) => Err(CallError::Timeout.into()),
            Err((_, false)) => Err(CallError::Unavailable.into()),
        }
    }

    fn frame(&self, message: &Message) -> Result<Vec<u8>, CallError> {
        let settings = &self.host.settings;
        let encoded = self.host.spec.encode(message).map_err(CallError::Encode)?;
        settings
            .framing
            .frame(&encoded, settings.max_message_bytes)
            .map_err(|_| CallError::TooLarge)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Removes the waiter of `stan` if it is still the one with `ticket`.
    fn forget(&self, stan: u32, ticket: u64) -> Option<Waiter> {
        let mut waiting = self.lock();
        match waiting.by_stan.get(&stan) {
            Some(waiter) if waiter.ticket == ticket => waiting.by_stan.remove(&stan),
            _ => None,
        }
    }

    /// Marks a request written, just before it is; false when its caller stopped waiting.
    fn mark_written(&self, stan: u32, ticket: u64) -> bool {
        let mut waiting = self.lock();
        match waiting.by_stan.get_mut(&stan) {
            Some(waiter) if waiter.ticket == ticket => {
                waiter.written = true;
                true
            }
            _ => false,
        }
    }

    /// Handles one frame from the host. False when the link had to be closed.
    fn received(&self, frame: &[u8]) -> bool {
        self.last_heard_ms
            .store(self.opened.elapsed().as_millis() as u64, Ordering::Relaxed);
        if frame.is_empty() {
            // Some hosts send empty frames as keep-alives.
            return true;
        }
        let message = match self.host.spec.decode(frame) {
            Ok(message) => message,
            Err(e) => {
                // Framing may be lost too: nothing after this frame can be trusted.
                tracing::warn!(upstream = %self.host.name, target = %self.target, error = %e, "card host sent a message that does not decode; closing the link");
                self.host.metrics.malformed.inc();
                self.close(CallError::Malformed);
                return false;
            }
        };
        if &message.mti == b"0800" {
            self.answer_echo(message);
            return true;
        }
        let Some(stan) = message.get(11).and_then(parse_stan) else {
            self.host.metrics.unmatched.inc();
            return true;
        };
        let waiter = {
            let mut waiting = self.lock();
            let matches = waiting.by_stan.get(&stan).is_some_and(|w| {
                w.response_mti == message.mti
                    && match (&w.rrn, message.get(37)) {
                        (Some(sent), Some(got)) => sent.as_slice() == got,
                        _ => true,
                    }
            });
            if matches {
                waiting.by_stan.remove(&stan)
            } else {
                None
            }
        };
        match waiter {
            Some(waiter) => {
                let _ = waiter.answer.send(Ok(message));
            }
            // Late (its request timed out) or never asked for: dropped, and counted.
            None => self.host.metrics.unmatched.inc(),
        }
        true
    }

    /// Hosts check links too: a network-management echo from the host is answered at once.
    fn answer_echo(&self, request: Message) {
        let mut answer = Message::new(*b"0810");
        for field in [7, 11, 70] {
            if let Some(value) = request.get(field) {
                answer.set(field, value.to_vec());
            }
        }
        answer.set(39, b"00".to_vec());
        if let Ok(frame) = self.frame(&answer) {
            let _ = self.outbox.try_send(Outgoing::Reply(frame));
        }
    }
}

/// Frees a call's STAN however the call ends, including when its future is dropped.
struct Registered<'a> {
    link: &'a Link,
    stan: u32,
    ticket: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.link.forget(self.stan, self.ticket);
    }
}

fn parse_stan(value: &[u8]) -> Option<u32> {
    if value.is_empty() || value.len() > 6 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(value.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
}

/// Sets the fields the link generates for one request.
fn fill(message: &mut Message, generated: &[(u8, Generated)], stan: u32, stamp: &Stamp) {
    for &(field, what) in generated {
        let value = match what {
            Generated::Stan => format!("{stan:06}"),
            Generated::Rrn => stamp.rrn(stan),
            Generated::TransmissionTime => stamp.transmission_time(),
            Generated::LocalTime => stamp.local_time(),
            Generated::LocalDate => stamp.local_date(),
        };
        message.set(field, value.into_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stans_parse_only_as_six_digits_at_most() {
        assert_eq!(parse_stan(b"000042"), Some(42));
        assert_eq!(parse_stan(b"00004x"), None);
        assert_eq!(parse_stan(b"1234567"), None);
        assert_eq!(parse_stan(b""), None);
    }
}
