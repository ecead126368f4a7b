//! One persistent TCP link to a card host. Many requests are in flight on it at once; each
//! gets a STAN (field 11) of its own, and the host's answers, in whatever order they come,
//! are matched back by STAN (and RRN, field 37, when both sides carry one).
//!
//! A reader and a writer task own the socket's halves. Anything the link cannot make sense
//! of (a frame that does not decode, a write that fails, the host closing) closes the whole
//! link: every request still waiting on it gets a clean error at once, and the host pool
//! opens a new link.

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

/// STANs are six digits, 000001 to 999999.
const STAN_MAX: u32 = 999_999;

pub(super) struct Link {
    pub(super) target: Arc<str>,
    host: Arc<HostShared>,
    outbox: mpsc::Sender<Vec<u8>>,
    waiting: Mutex<Waiting>,
    closed: watch::Sender<bool>,
    /// Milliseconds since `opened` at the last frame received: idle links get an echo.
    last_heard_ms: AtomicU64,
    opened: Instant,
}

/// Requests waiting for their answer, by STAN, and the next STAN to hand out. Closing the
/// link happens under the same lock, so no request can start waiting on a closed link.
struct Waiting {
    by_stan: HashMap<u32, Waiter>,
    next_stan: u32,
    closed: bool,
}

struct Waiter {
    response_mti: [u8; 4],
    rrn: Option<Vec<u8>>,
    answer: oneshot::Sender<Result<Message, CallError>>,
}

impl Link {
    /// Starts the reader and writer tasks over `stream`.
    pub(super) fn open(stream: TcpStream, target: Arc<str>, host: Arc<HostShared>) -> Arc<Link> {
        let _ = stream.set_nodelay(true);
        let (reader, mut writer) = stream.into_split();
        let (outbox, mut frames) = mpsc::channel::<Vec<u8>>(host.settings.max_in_flight);
        let (closed, _) = watch::channel(false);
        let link = Arc::new(Link {
            target,
            host,
            outbox,
            waiting: Mutex::new(Waiting {
                by_stan: HashMap::new(),
                next_stan: 1,
                closed: false,
            }),
            closed,
            last_heard_ms: AtomicU64::new(0),
            opened: Instant::now(),
        });

        let for_writer = link.clone();
        tokio::spawn(async move {
            let mut closed = for_writer.closed.subscribe();
            loop {
                tokio::select! {
                    frame = frames.recv() => {
                        let Some(frame) = frame else { break };
                        if writer.write_all(&frame).await.is_err() {
                            for_writer.close(CallError::LinkLost);
                            break;
                        }
                    }
                    _ = set(&mut closed) => break,
                }
            }
            let _ = writer.shutdown().await;
        });

        let for_reader = link.clone();
        tokio::spawn(async move {
            let mut closed = for_reader.closed.subscribe();
            let mut reader = BufReader::new(reader);
            let (framing, max) = (
                for_reader.host.settings.framing,
                for_reader.host.settings.max_message_bytes,
            );
            loop {
                tokio::select! {
                    frame = framing.read(&mut reader, max) => match frame {
                        Ok(Some(frame)) => {
                            if !for_reader.received(&frame) {
                                break;
                            }
                        }
                        Ok(None) | Err(_) => {
                            for_reader.close(CallError::LinkLost);
                            break;
                        }
                    },
                    _ = set(&mut closed) => break,
                }
            }
        });
        link
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
            let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
            if waiting.closed {
                return;
            }
            waiting.closed = true;
            std::mem::take(&mut waiting.by_stan)
        };
        self.closed.send_replace(true);
        for (_, waiter) in waiters {
            let _ = waiter.answer.send(Err(why.clone()));
        }
    }

    /// Sends `request` with the fields in `generated` filled in (STAN and RRN chosen here)
    /// and waits for its answer until `deadline`.
    pub(super) async fn call(
        &self,
        mut request: Message,
        generated: &[(u8, Generated)],
        deadline: tokio::time::Instant,
    ) -> Result<Message, Unanswered> {
        let stamp = Stamp::now();
        let (answer, stan) = {
            let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
            if waiting.closed {
                return Err(CallError::Unavailable.into());
            }
            if waiting.by_stan.len() >= self.host.settings.max_in_flight {
                return Err(CallError::Busy.into());
            }
            let stan = waiting.take_stan();
            fill(&mut request, generated, stan, &stamp);
            let (answer, receiver) = oneshot::channel();
            let waiter = Waiter {
                response_mti: response_mti(request.mti),
                rrn: request.get(37).map(<[u8]>::to_vec),
                answer,
            };
            waiting.by_stan.insert(stan, waiter);
            (receiver, stan)
        };
        if let Err(e) = self.send(&request).await {
            self.forget(stan);
            return Err(e.into());
        }
        // From here on the host may have the request: errors carry it, so that its outcome
        // can be settled (reversed) later.
        let error = match tokio::time::timeout_at(deadline, answer).await {
            Ok(Ok(Ok(answer))) => return Ok(answer),
            Ok(Ok(Err(why))) => why,
            // The waiter was dropped without an answer: only closing does that.
            Ok(Err(_)) => CallError::LinkLost,
            Err(_) => {
                // A late answer will find no waiter and be counted as unmatched.
                self.forget(stan);
                CallError::Timeout
            }
        };
        Err(Unanswered {
            error,
            sent: Some(request),
        })
    }

    async fn send(&self, message: &Message) -> Result<(), CallError> {
        let settings = &self.host.settings;
        let encoded = self.host.spec.encode(message).map_err(CallError::Encode)?;
        let frame = settings
            .framing
            .frame(&encoded, settings.max_message_bytes)
            .map_err(|_| CallError::TooLarge)?;
        self.outbox
            .send(frame)
            .await
            .map_err(|_| CallError::LinkLost)
    }

    fn forget(&self, stan: u32) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        waiting.by_stan.remove(&stan);
    }

    /// Handles one frame from the host. False when the link had to be closed.
    fn received(&self, frame: &[u8]) -> bool {
        self.last_heard_ms
            .store(self.opened.elapsed().as_millis() as u64, Ordering::Relaxed);
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
            let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
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
        let settings = &self.host.settings;
        let frame = self.host.spec.encode(&answer).ok().and_then(|bytes| {
            settings
                .framing
                .frame(&bytes, settings.max_message_bytes)
                .ok()
        });
        if let Some(frame) = frame {
            let _ = self.outbox.try_send(frame);
        }
    }
}

impl Waiting {
    /// The next STAN not in flight. The in-flight cap is far below 999,999, so one is free.
    fn take_stan(&mut self) -> u32 {
        loop {
            let stan = self.next_stan;
            self.next_stan = if stan >= STAN_MAX { 1 } else { stan + 1 };
            if !self.by_stan.contains_key(&stan) {
                return stan;
            }
        }
    }
}

/// The answer's MTI: the request's with its function digit raised by one (0100 → 0110).
fn response_mti(request: [u8; 4]) -> [u8; 4] {
    let mut mti = request;
    mti[2] = match mti[2] {
        d @ b'0'..=b'8' => d + 1,
        d => d,
    };
    mti
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
    fn response_mtis() {
        assert_eq!(&response_mti(*b"0100"), b"0110");
        assert_eq!(&response_mti(*b"0200"), b"0210");
        assert_eq!(&response_mti(*b"0400"), b"0410");
        assert_eq!(&response_mti(*b"0800"), b"0810");
    }

    #[test]
    fn stans_wrap_and_skip_those_in_flight() {
        let mut waiting = Waiting {
            by_stan: HashMap::new(),
            next_stan: STAN_MAX,
            closed: false,
        };
        let (answer, _receiver) = oneshot::channel();
        waiting.by_stan.insert(
            1,
            Waiter {
                response_mti: *b"0110",
                rrn: None,
                answer,
            },
        );
        assert_eq!(waiting.take_stan(), STAN_MAX);
        assert_eq!(waiting.take_stan(), 2, "1 is in flight");
    }

    #[test]
    fn stans_parse_only_as_six_digits_at_most() {
        assert_eq!(parse_stan(b"000042"), Some(42));
        assert_eq!(parse_stan(b"00004x"), None);
        assert_eq!(parse_stan(b"1234567"), None);
        assert_eq!(parse_stan(b""), None);
    }
}
