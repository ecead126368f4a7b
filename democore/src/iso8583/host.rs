//! The demo card host's rules: what it answers to each message, and the test
//! knobs that make it misbehave on purpose.
//!
//! The host decides and records at once; a knob only changes what happens to
//! the answer. So an authorisation whose answer was muted or dropped is still
//! approved here, and its reversal finds it, as with a real host whose answer
//! got lost on the way.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use super::codec::Message;
use crate::luhn_valid;

/// Approved authorisations remembered for reversals; the oldest go first.
pub(crate) const APPROVALS_KEPT: usize = 100_000;

/// Bytes sent for the `JUNK0000` knob: not an MTI, then a bitmap announcing
/// every field.
pub(crate) const JUNK: &[u8] = b"JUNK\xff\xff\xff\xff\xff\xff\xff\xff";

/// Response codes (field 39).
const APPROVED: &[u8] = b"00";
const INVALID_CARD: &[u8] = b"14";
const INSUFFICIENT_FUNDS: &[u8] = b"51";
const DO_NOT_HONOUR: &[u8] = b"05";
const ORIGINAL_NOT_FOUND: &[u8] = b"25";
const FORMAT_ERROR: &[u8] = b"30";

/// Largest amount approved, as field 4 holds it (n 12).
const AMOUNT_LIMIT: &[u8; 12] = b"000000100000";

/// Request fields every answer copies back.
const ECHOED: [u8; 11] = [2, 3, 4, 7, 11, 12, 13, 37, 41, 42, 49];
/// Fields an 0810 copies back from its 0800.
const ECHO_ECHOED: [u8; 3] = [7, 11, 70];

/// The requests the host serves; any other MTI ends the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// 0100 authorisation or 0200 financial request.
    Authorisation,
    /// 0400.
    Reversal,
    /// 0800 network management (echo).
    Echo,
}

impl Kind {
    pub(crate) fn of(mti: &[u8; 4]) -> Option<Kind> {
        match mti {
            b"0100" | b"0200" => Some(Kind::Authorisation),
            b"0400" => Some(Kind::Reversal),
            b"0800" => Some(Kind::Echo),
            _ => None,
        }
    }
}

/// What becomes of the answer to one request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Reply {
    /// Send it after this delay (zero unless the terminal asks for one).
    Send(Message, Duration),
    /// `DROP0000`: close the connection without answering.
    Drop,
    /// `JUNK0000`: send [`JUNK`] instead of the answer.
    Junk,
    /// `MUTE0000`: never answer.
    Mute,
}

/// One host's state, shared by all its connections: a reversal may come on
/// another connection than its authorisation.
pub(crate) struct Host {
    approvals: Mutex<Approvals>,
    approval_seq: AtomicU32,
}

impl Host {
    pub(crate) fn new(approvals_kept: usize) -> Host {
        Host {
            approvals: Mutex::new(Approvals::new(approvals_kept)),
            approval_seq: AtomicU32::new(0),
        }
    }

    pub(crate) fn handle(&self, kind: Kind, req: &Message) -> Reply {
        let answer = match kind {
            Kind::Authorisation => self.authorise(req),
            Kind::Reversal => self.reverse(req),
            Kind::Echo => {
                let mut answer = Message::new(response_mti(req.mti));
                copy(req, &mut answer, &ECHO_ECHOED);
                answer.set(39, APPROVED);
                answer
            }
        };
        match req.get(41) {
            Some(b"DROP0000") => Reply::Drop,
            Some(b"JUNK0000") => Reply::Junk,
            Some(b"MUTE0000") => Reply::Mute,
            Some(terminal) => Reply::Send(answer, delay_asked(terminal)),
            None => Reply::Send(answer, Duration::ZERO),
        }
    }

    fn authorise(&self, req: &Message) -> Message {
        let (Some(pan), Some(amount), Some(time), Some(stan)) =
            (req.get(2), req.get(4), req.get(7), req.get(11))
        else {
            return answer(req, FORMAT_ERROR);
        };
        // The codec has checked that the PAN is digits and the amount is 12 digits, so
        // comparing the amount's bytes compares the numbers.
        let code = if !std::str::from_utf8(pan).is_ok_and(luhn_valid) {
            INVALID_CARD
        } else if amount > AMOUNT_LIMIT.as_slice() {
            INSUFFICIENT_FUNDS
        } else if pan.ends_with(b"0119") {
            DO_NOT_HONOUR
        } else {
            APPROVED
        };
        let mut answer = answer(req, code);
        if code == APPROVED {
            self.approvals().insert(key(stan, time));
            answer.set(38, self.approval_code());
        }
        answer
    }

    fn reverse(&self, req: &Message) -> Message {
        let Some(original) = req.get(90) else {
            return answer(req, FORMAT_ERROR);
        };
        // Field 90 (n 42): original MTI (4), STAN (6), field 7 (10), acquirer, forwarder.
        let found = self
            .approvals()
            .contains(&key(&original[4..10], &original[10..20]));
        let mut answer = answer(req, if found { APPROVED } else { ORIGINAL_NOT_FOUND });
        answer.set(90, original);
        answer
    }

    /// Six characters, unique among the last 100 000 approvals.
    fn approval_code(&self) -> String {
        let n = self.approval_seq.fetch_add(1, Ordering::Relaxed) % 100_000;
        format!("A{n:05}")
    }

    fn approvals(&self) -> std::sync::MutexGuard<'_, Approvals> {
        // Every update is a single insert or removal: a panic cannot leave it half-done.
        self.approvals.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// An authorisation's identity as a reversal names it: STAN and transmission time.
type Key = [u8; 16];

fn key(stan: &[u8], time: &[u8]) -> Key {
    let mut k = [0u8; 16];
    // Both are fixed-length fields (n 6, n 10), checked by the codec.
    k[..6].copy_from_slice(stan);
    k[6..].copy_from_slice(time);
    k
}

/// The answer's MTI: 0100 -> 0110, 0400 -> 0410, ...
fn response_mti(mut mti: [u8; 4]) -> [u8; 4] {
    mti[2] += 1;
    mti
}

fn copy(from: &Message, to: &mut Message, fields: &[u8]) {
    for &no in fields {
        if let Some(v) = from.get(no) {
            to.set(no, v);
        }
    }
}

/// An answer to an authorisation or reversal with this response code.
fn answer(req: &Message, code: &[u8]) -> Message {
    let mut answer = Message::new(response_mti(req.mti));
    copy(req, &mut answer, &ECHOED);
    answer.set(39, code);
    answer
}

/// `D` and 7 digits: answer after that many milliseconds.
fn delay_asked(terminal: &[u8]) -> Duration {
    match terminal {
        [b'D', ms @ ..] if ms.len() == 7 && ms.iter().all(u8::is_ascii_digit) => {
            let ms = ms
                .iter()
                .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0'));
            Duration::from_millis(ms)
        }
        _ => Duration::ZERO,
    }
}

/// A set of keys that forgets its oldest entries beyond a capacity.
struct Approvals {
    keys: HashSet<Key>,
    order: VecDeque<Key>,
    capacity: usize,
}

impl Approvals {
    fn new(capacity: usize) -> Approvals {
        Approvals {
            keys: HashSet::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    fn insert(&mut self, key: Key) {
        if self.keys.insert(key) {
            self.order.push_back(key);
        }
        while self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.keys.remove(&oldest);
            }
        }
    }

    fn contains(&self, key: &Key) -> bool {
        self.keys.contains(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD_PAN: &str = "4111111111111111";
    const TIME: &str = "1206143015";

    fn auth(pan: &str, amount: &str, stan: &str, terminal: &str) -> Message {
        let mut m = Message::new(*b"0100");
        m.set(2, pan);
        m.set(3, "000000");
        m.set(4, amount);
        m.set(7, TIME);
        m.set(11, stan);
        m.set(14, "2812");
        m.set(22, "051");
        m.set(37, format!("51214000{}", &stan[2..]));
        m.set(41, terminal);
        m.set(42, "MERCHANT 000001");
        m.set(49, "978");
        m
    }

    fn reversal(stan: &str, original_stan: &str, original_time: &str) -> Message {
        let mut m = Message::new(*b"0400");
        m.set(2, GOOD_PAN);
        m.set(4, "000000001250");
        m.set(11, stan);
        m.set(41, "TERM0001");
        m.set(
            90,
            format!("0100{original_stan}{original_time}0000012345600000000000"),
        );
        m
    }

    fn sent(reply: Reply) -> Message {
        match reply {
            Reply::Send(m, delay) => {
                assert_eq!(delay, Duration::ZERO);
                m
            }
            other => panic!("expected an answer, got {other:?}"),
        }
    }

    fn code(host: &Host, req: &Message) -> String {
        let kind = Kind::of(&req.mti).unwrap();
        let answer = sent(host.handle(kind, req));
        String::from_utf8(answer.get(39).unwrap().to_vec()).unwrap()
    }

    #[test]
    fn authorisation_rules() {
        let host = Host::new(10);
        let cases = [
            (GOOD_PAN, "000000001250", "00"),
            // The limit itself is approved; one cent more is not.
            (GOOD_PAN, "000000100000", "00"),
            (GOOD_PAN, "000000100001", "51"),
            ("4111111111111112", "000000001250", "14"),
            // Luhn is checked first, then the amount, then the 0119 rule.
            ("4111111111111112", "000000100001", "14"),
            ("4111111110080119", "000000001250", "05"),
            ("4111111110080119", "000000100001", "51"),
        ];
        for (pan, amount, want) in cases {
            let req = auth(pan, amount, "000001", "TERM0001");
            assert_eq!(code(&host, &req), want, "{amount}");
        }
    }

    #[test]
    fn answers_echo_the_listed_fields_and_approval_code_only_when_approved() {
        let host = Host::new(10);
        let mut req = auth(GOOD_PAN, "000000001250", "000007", "TERM0001");
        req.mti = *b"0200";
        let approved = sent(host.handle(Kind::Authorisation, &req));
        assert_eq!(approved.mti, *b"0210");
        for no in [2, 3, 4, 7, 11, 37, 41, 42, 49] {
            assert_eq!(approved.get(no), req.get(no), "field {no}");
        }
        // 14 and 22 are not echoed.
        assert_eq!((approved.get(14), approved.get(22)), (None, None));
        let approval = approved.get(38).unwrap();
        assert_eq!(approval.len(), 6);
        assert!(approval.iter().all(u8::is_ascii_alphanumeric));

        let declined = sent(host.handle(
            Kind::Authorisation,
            &auth(GOOD_PAN, "000000100001", "000008", "TERM0001"),
        ));
        assert_eq!(declined.get(39), Some(&b"51"[..]));
        assert_eq!(declined.get(38), None);
        // Each approval gets its own code.
        let again = sent(host.handle(Kind::Authorisation, &req));
        assert_ne!(again.get(38), approved.get(38));
    }

    #[test]
    fn missing_fields_are_a_format_error() {
        let host = Host::new(10);
        for no in [2, 4, 7, 11] {
            let mut req = Message::new(*b"0100");
            for (f, v) in [
                (2, GOOD_PAN),
                (4, "000000000100"),
                (7, TIME),
                (11, "000001"),
            ] {
                if f != no {
                    req.set(f, v);
                }
            }
            assert_eq!(code(&host, &req), "30", "without field {no}");
        }
        let mut rev = Message::new(*b"0400");
        rev.set(11, "000002");
        assert_eq!(code(&host, &rev), "30");
    }

    #[test]
    fn reversal_finds_only_approved_originals() {
        let host = Host::new(10);
        let approved = auth(GOOD_PAN, "000000001250", "000101", "TERM0001");
        let declined = auth(GOOD_PAN, "000000100001", "000102", "TERM0001");
        assert_eq!(code(&host, &approved), "00");
        assert_eq!(code(&host, &declined), "51");

        let rev = reversal("000103", "000101", TIME);
        let answer = sent(host.handle(Kind::Reversal, &rev));
        assert_eq!(answer.mti, *b"0410");
        assert_eq!(answer.get(39), Some(&b"00"[..]));
        assert_eq!(answer.get(90), rev.get(90));
        assert_eq!(answer.get(11), Some(&b"000103"[..]));
        assert_eq!(answer.get(38), None);
        // A repeated reversal finds it again.
        assert_eq!(code(&host, &rev), "00");

        assert_eq!(code(&host, &reversal("000104", "000102", TIME)), "25");
        // Same STAN, another transmission time: not the same authorisation.
        assert_eq!(
            code(&host, &reversal("000105", "000101", "1206143016")),
            "25"
        );
        assert_eq!(code(&host, &reversal("000106", "999999", TIME)), "25");
    }

    #[test]
    fn approvals_are_bounded_oldest_first() {
        let host = Host::new(2);
        for stan in ["000001", "000002", "000003"] {
            assert_eq!(
                code(&host, &auth(GOOD_PAN, "000000000100", stan, "TERM0001")),
                "00"
            );
        }
        assert_eq!(code(&host, &reversal("000009", "000001", TIME)), "25");
        assert_eq!(code(&host, &reversal("000009", "000002", TIME)), "00");
        assert_eq!(code(&host, &reversal("000009", "000003", TIME)), "00");
        assert_eq!(host.approvals().keys.len(), 2);
    }

    #[test]
    fn echo() {
        let host = Host::new(10);
        let mut req = Message::new(*b"0800");
        req.set(7, TIME);
        req.set(11, "000077");
        req.set(70, "301");
        let answer = sent(host.handle(Kind::Echo, &req));
        let mut want = Message::new(*b"0810");
        want.set(7, TIME);
        want.set(11, "000077");
        want.set(70, "301");
        want.set(39, "00");
        assert_eq!(answer, want);
    }

    #[test]
    fn knobs() {
        let host = Host::new(10);
        let with = |terminal: &str, stan: &str| {
            host.handle(
                Kind::Authorisation,
                &auth(GOOD_PAN, "000000000100", stan, terminal),
            )
        };
        assert_eq!(with("DROP0000", "000001"), Reply::Drop);
        assert_eq!(with("JUNK0000", "000002"), Reply::Junk);
        assert_eq!(with("MUTE0000", "000003"), Reply::Mute);
        match with("D0001500", "000004") {
            Reply::Send(m, delay) => {
                assert_eq!(delay, Duration::from_millis(1500));
                assert_eq!(m.get(39), Some(&b"00"[..]));
            }
            other => panic!("{other:?}"),
        }
        // Not a knob: answered at once.
        for terminal in ["D00015X0", "D000150 ", "DROP0001", "TERM0001"] {
            sent(with(terminal, "000005"));
        }
        // The muted and dropped authorisations were approved all the same.
        assert_eq!(code(&host, &reversal("000010", "000001", TIME)), "00");
        assert_eq!(code(&host, &reversal("000011", "000003", TIME)), "00");
        assert!(super::super::codec::decode(JUNK).is_err());
    }

    #[test]
    fn kinds() {
        assert_eq!(Kind::of(b"0100"), Some(Kind::Authorisation));
        assert_eq!(Kind::of(b"0200"), Some(Kind::Authorisation));
        assert_eq!(Kind::of(b"0400"), Some(Kind::Reversal));
        assert_eq!(Kind::of(b"0800"), Some(Kind::Echo));
        for mti in [b"0110", b"0420", b"0300", b"0810"] {
            assert_eq!(Kind::of(mti), None);
        }
    }
}
