//! The demo host's message layout, and nothing more: ASCII MTI, binary
//! primary/secondary bitmaps and the fields of the demo host spec, all ASCII.
//!
//! Deliberately a small codec of its own rather than the gateway's general,
//! spec-driven one: the two meet on the wire in the end-to-end tests, so a
//! bug in either shows up as a disagreement.

use std::collections::BTreeMap;
use std::fmt;

/// Size of one bitmap.
const BITMAP_LEN: usize = 8;

/// Characters a field may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chars {
    /// Digits.
    N,
    /// Letters and digits.
    An,
    /// Printable ASCII, space included.
    Ans,
}

impl Chars {
    fn allows(self, b: u8) -> bool {
        match self {
            Chars::N => b.is_ascii_digit(),
            Chars::An => b.is_ascii_alphanumeric(),
            Chars::Ans => (b' '..=b'~').contains(&b),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Length {
    Fixed(usize),
    /// Two ASCII length digits, then at most this many characters.
    LlVar(usize),
}

/// The demo host's fields (see the "Demo host spec" table).
fn layout(field: u8) -> Option<(Chars, Length)> {
    use Chars::*;
    use Length::*;
    Some(match field {
        2 => (N, LlVar(19)),
        3 => (N, Fixed(6)),
        4 => (N, Fixed(12)),
        7 => (N, Fixed(10)),
        11 => (N, Fixed(6)),
        12 => (N, Fixed(6)),
        13 => (N, Fixed(4)),
        14 => (N, Fixed(4)),
        22 => (N, Fixed(3)),
        32 => (N, LlVar(11)),
        37 => (An, Fixed(12)),
        38 => (An, Fixed(6)),
        39 => (An, Fixed(2)),
        41 => (Ans, Fixed(8)),
        42 => (Ans, Fixed(15)),
        49 => (N, Fixed(3)),
        70 => (N, Fixed(3)),
        90 => (N, Fixed(42)),
        _ => return None,
    })
}

/// Why bytes are not a demo host message. Never carries a field's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CodecError {
    #[error("MTI is not 4 ASCII digits")]
    BadMti,
    #[error("message ends inside the bitmap")]
    TruncatedBitmap,
    #[error("field {0} is not in the demo host layout")]
    UnknownField(u8),
    #[error("message ends inside field {0}")]
    Truncated(u8),
    #[error("field {0} has a bad length")]
    BadLength(u8),
    #[error("field {0} holds a character its type does not allow")]
    BadChar(u8),
    #[error("bytes left over after the last field")]
    TrailingBytes,
}

/// One message: the MTI and the present fields' values as ASCII.
#[derive(Clone, PartialEq, Eq, Default)]
pub(crate) struct Message {
    pub(crate) mti: [u8; 4],
    fields: BTreeMap<u8, Vec<u8>>,
}

/// Field numbers only: values include card numbers.
impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("mti", &String::from_utf8_lossy(&self.mti))
            .field("fields", &self.fields.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Message {
    pub(crate) fn new(mti: [u8; 4]) -> Message {
        Message {
            mti,
            fields: BTreeMap::new(),
        }
    }

    pub(crate) fn get(&self, field: u8) -> Option<&[u8]> {
        self.fields.get(&field).map(Vec::as_slice)
    }

    pub(crate) fn set(&mut self, field: u8, value: impl Into<Vec<u8>>) {
        self.fields.insert(field, value.into());
    }
}

fn bit(bitmap: &[u8; 2 * BITMAP_LEN], n: u8) -> bool {
    let i = usize::from(n - 1);
    bitmap[i / 8] & (0x80 >> (i % 8)) != 0
}

fn set_bit(bitmap: &mut [u8; 2 * BITMAP_LEN], n: u8) {
    let i = usize::from(n - 1);
    bitmap[i / 8] |= 0x80 >> (i % 8);
}

/// The message's bytes, without the frame's length header.
pub(crate) fn encode(msg: &Message) -> Result<Vec<u8>, CodecError> {
    if !msg.mti.iter().all(u8::is_ascii_digit) {
        return Err(CodecError::BadMti);
    }
    let mut bitmap = [0u8; 2 * BITMAP_LEN];
    let mut body = Vec::new();
    for (&no, value) in &msg.fields {
        let (chars, length) = layout(no).ok_or(CodecError::UnknownField(no))?;
        if !value.iter().all(|&b| chars.allows(b)) {
            return Err(CodecError::BadChar(no));
        }
        match length {
            Length::Fixed(n) if value.len() != n => return Err(CodecError::BadLength(no)),
            Length::Fixed(_) => {}
            Length::LlVar(max) if value.len() > max => return Err(CodecError::BadLength(no)),
            Length::LlVar(_) => body.extend_from_slice(format!("{:02}", value.len()).as_bytes()),
        }
        body.extend_from_slice(value);
        set_bit(&mut bitmap, no);
    }
    let secondary = msg.fields.keys().any(|&no| no > 64);
    if secondary {
        set_bit(&mut bitmap, 1);
    }
    let bitmap_len = if secondary {
        2 * BITMAP_LEN
    } else {
        BITMAP_LEN
    };
    let mut out = Vec::with_capacity(4 + bitmap_len + body.len());
    out.extend_from_slice(&msg.mti);
    out.extend_from_slice(&bitmap[..bitmap_len]);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Reads a message (without the frame's length header). Every byte must
/// belong to it.
pub(crate) fn decode(bytes: &[u8]) -> Result<Message, CodecError> {
    let mti: [u8; 4] = bytes
        .get(..4)
        .and_then(|m| m.try_into().ok())
        .filter(|m: &[u8; 4]| m.iter().all(u8::is_ascii_digit))
        .ok_or(CodecError::BadMti)?;
    let mut rest = &bytes[4..];
    let mut bitmap = [0u8; 2 * BITMAP_LEN];
    let primary = take(&mut rest, BITMAP_LEN).ok_or(CodecError::TruncatedBitmap)?;
    bitmap[..BITMAP_LEN].copy_from_slice(primary);
    if bit(&bitmap, 1) {
        let secondary = take(&mut rest, BITMAP_LEN).ok_or(CodecError::TruncatedBitmap)?;
        bitmap[BITMAP_LEN..].copy_from_slice(secondary);
    }
    let mut msg = Message::new(mti);
    for no in (2..=128u8).filter(|&no| bit(&bitmap, no)) {
        let (chars, length) = layout(no).ok_or(CodecError::UnknownField(no))?;
        let len = match length {
            Length::Fixed(n) => n,
            Length::LlVar(max) => {
                let digits = take(&mut rest, 2).ok_or(CodecError::Truncated(no))?;
                let len = ascii_number(digits).ok_or(CodecError::BadLength(no))?;
                if len > max {
                    return Err(CodecError::BadLength(no));
                }
                len
            }
        };
        let value = take(&mut rest, len).ok_or(CodecError::Truncated(no))?;
        if !value.iter().all(|&b| chars.allows(b)) {
            return Err(CodecError::BadChar(no));
        }
        msg.set(no, value);
    }
    if !rest.is_empty() {
        return Err(CodecError::TrailingBytes);
    }
    Ok(msg)
}

/// Splits `n` bytes off the front of `rest`, if it has them.
fn take<'a>(rest: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if rest.len() < n {
        return None;
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Some(head)
}

fn ascii_number(digits: &[u8]) -> Option<usize> {
    digits.iter().try_fold(0usize, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + usize::from(b - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// An authorisation as the gateway sends it to the demo host.
    fn authorisation() -> Message {
        let mut m = Message::new(*b"0100");
        m.set(2, "4111111111111111");
        m.set(3, "000000");
        m.set(4, "000000001250");
        m.set(7, "1206143015");
        m.set(11, "000042");
        m.set(32, "123456");
        m.set(37, "512140000042");
        m.set(41, "TERM0001");
        m.set(42, "MERCHANT 000001");
        m.set(49, "978");
        m
    }

    #[test]
    fn golden_authorisation() {
        let mut want = b"0100".to_vec();
        // Fields 2, 3, 4 | 7 | 11 | - | 32 | 37 | 41, 42 | 49.
        want.extend(hex("72 20 00 01 08 C0 80 00"));
        want.extend_from_slice(b"164111111111111111");
        want.extend_from_slice(b"000000");
        want.extend_from_slice(b"000000001250");
        want.extend_from_slice(b"1206143015");
        want.extend_from_slice(b"000042");
        want.extend_from_slice(b"06123456");
        want.extend_from_slice(b"512140000042");
        want.extend_from_slice(b"TERM0001");
        want.extend_from_slice(b"MERCHANT 000001");
        want.extend_from_slice(b"978");
        assert_eq!(encode(&authorisation()).unwrap(), want);
        assert_eq!(decode(&want).unwrap(), authorisation());
    }

    #[test]
    fn golden_echo_with_secondary_bitmap() {
        let mut m = Message::new(*b"0800");
        m.set(7, "1206143015");
        m.set(11, "000001");
        m.set(70, "301");
        let mut want = b"0800".to_vec();
        // Bit 1 (secondary follows), 7, 11; then bit 70 = secondary bit 6.
        want.extend(hex("82 20 00 00 00 00 00 00  04 00 00 00 00 00 00 00"));
        want.extend_from_slice(b"1206143015000001301");
        assert_eq!(encode(&m).unwrap(), want);
        assert_eq!(decode(&want).unwrap(), m);
    }

    #[test]
    fn round_trip_every_field() {
        let mut m = Message::new(*b"0410");
        for no in 2..=128u8 {
            if let Some((chars, length)) = layout(no) {
                let len = match length {
                    Length::Fixed(n) => n,
                    Length::LlVar(max) => max,
                };
                let c = if chars == Chars::Ans { b' ' } else { b'7' };
                m.set(no, vec![c; len]);
            }
        }
        let bytes = encode(&m).unwrap();
        assert_eq!(decode(&bytes).unwrap(), m);
        // Variable fields may also be empty.
        m.set(2, "");
        m.set(32, "");
        assert_eq!(decode(&encode(&m).unwrap()).unwrap(), m);
    }

    #[test]
    fn encode_refuses_what_the_layout_does_not_allow() {
        let cases: [(u8, &str, CodecError); 6] = [
            (5, "1", CodecError::UnknownField(5)),
            (4, "1250", CodecError::BadLength(4)),
            (2, "41111111111111111111", CodecError::BadLength(2)),
            (2, "4111 1111", CodecError::BadChar(2)),
            (38, "AB-123", CodecError::BadChar(38)),
            (41, "TERM\n001", CodecError::BadChar(41)),
        ];
        for (no, value, want) in cases {
            let mut m = authorisation();
            m.set(no, value);
            assert_eq!(encode(&m), Err(want), "field {no}");
        }
        let mut m = authorisation();
        m.mti = *b"01A0";
        assert_eq!(encode(&m), Err(CodecError::BadMti));
    }

    #[test]
    fn decode_errors() {
        let good = encode(&authorisation()).unwrap();
        let with = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = good.clone();
            f(&mut b);
            decode(&b)
        };
        assert_eq!(with(&|b| b[1] = b'X'), Err(CodecError::BadMti));
        assert_eq!(with(&|b| b.truncate(3)), Err(CodecError::BadMti));
        assert_eq!(with(&|b| b.truncate(9)), Err(CodecError::TruncatedBitmap));
        assert_eq!(with(&|b| b.truncate(20)), Err(CodecError::Truncated(2)));
        assert_eq!(with(&|b| b.truncate(33)), Err(CodecError::Truncated(3)));
        assert_eq!(with(&|b| b.push(b'0')), Err(CodecError::TrailingBytes));
        // Bit 5 is not a demo host field.
        assert_eq!(with(&|b| b[4] |= 0x08), Err(CodecError::UnknownField(5)));
        // Secondary bitmap announced but not there: the fields' bytes are
        // taken for it, and the rest no longer parses.
        assert!(with(&|b| b[4] |= 0x80).is_err());
        // PAN length 20 > 19, then not digits.
        assert_eq!(
            with(&|b| b[12..14].copy_from_slice(b"20")),
            Err(CodecError::BadLength(2))
        );
        assert_eq!(
            with(&|b| b[12..14].copy_from_slice(b"1x")),
            Err(CodecError::BadLength(2))
        );
        // A letter in the PAN.
        assert_eq!(with(&|b| b[14] = b'A'), Err(CodecError::BadChar(2)));
        // A frame of only a bitmap with no fields is fine; one with bit 1 but
        // nothing after the primary bitmap is not.
        assert!(decode(&hex("30313030 0000000000000000")).is_ok());
        assert_eq!(
            decode(&hex("30313030 8000000000000000")),
            Err(CodecError::TruncatedBitmap)
        );
    }

    #[test]
    fn debug_shows_no_values() {
        let shown = format!("{:?}", authorisation());
        assert!(!shown.contains("4111"), "{shown}");
        assert!(shown.contains("0100") && shown.contains("41"), "{shown}");
    }
}
