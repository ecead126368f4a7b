//! Field formats: what a field may hold (its type and length) and how it is written on the
//! wire (its encoding and that of its length prefix). Values are in canonical form: ASCII
//! characters for text types, raw bytes for `b`.

use std::fmt;

use serde::Deserialize;

use super::bcd::{self, BcdError, Pad};
use super::ebcdic;

/// The ISO 8583 data type of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Digits.
    N,
    /// Letters, digits and spaces (the padding of fixed fields).
    An,
    /// Printable ASCII, space to `~`.
    Ans,
    /// Track 2 data: digits and the separator `=`.
    Z,
    /// Binary: any bytes.
    B,
}

impl Kind {
    /// Its name in the spec file.
    pub fn name(self) -> &'static str {
        match self {
            Kind::N => "n",
            Kind::An => "an",
            Kind::Ans => "ans",
            Kind::Z => "z",
            Kind::B => "b",
        }
    }

    pub fn allows(self, char: u8) -> bool {
        match self {
            Kind::N => char.is_ascii_digit(),
            Kind::An => char.is_ascii_alphanumeric() || char == b' ',
            Kind::Ans => (0x20..=0x7E).contains(&char),
            Kind::Z => char.is_ascii_digit() || char == b'=',
            Kind::B => true,
        }
    }

    fn allowed(self) -> &'static str {
        match self {
            Kind::N => "digits",
            Kind::An => "letters, digits and spaces",
            Kind::Ans => "printable ASCII characters",
            Kind::Z => "digits and '='",
            Kind::B => "bytes",
        }
    }
}

/// How characters (or a length prefix) are written on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    Ascii,
    Ebcdic,
    /// Packed BCD (`n` and `z` only; a length prefix of LL takes 1 byte, LLL 2).
    Bcd,
    /// Raw bytes (`b` only; a length prefix of LL takes 1 byte, LLL 2, big-endian).
    Binary,
}

impl Encoding {
    /// Its name in the spec file.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Ascii => "ascii",
            Encoding::Ebcdic => "ebcdic",
            Encoding::Bcd => "bcd",
            Encoding::Binary => "binary",
        }
    }
}

/// A field's length, in characters for text types (digits for BCD) and bytes for `b`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Length {
    Fixed(u16),
    /// A variable length of at most `max`, after a prefix of `digits` (2 = LLVAR, 3 = LLLVAR).
    Var {
        digits: u8,
        max: u16,
    },
}

impl Length {
    pub fn max(self) -> u16 {
        match self {
            Length::Fixed(length) => length,
            Length::Var { max, .. } => max,
        }
    }
}

/// Why a value does not fit its field, or field bytes cannot be read. Never holds a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("must hold {} only", .0.allowed())]
    Characters(Kind),
    #[error("must be exactly {0} long")]
    Length(u16),
    #[error("must be at most {0} long")]
    TooLong(u16),
    #[error("the message ends inside the field")]
    Truncated,
    #[error("the length prefix is not a number")]
    LengthPrefix,
    #[error("the length prefix is over the field's maximum of {0}")]
    LengthOverMax(u16),
    #[error("a nibble is not a BCD digit")]
    NotBcd,
    #[error("the BCD pad nibble is neither 0 nor F")]
    BcdPad,
    #[error("a byte has no printable ASCII character in EBCDIC code page 037")]
    NotEbcdic,
}

impl From<BcdError> for FieldError {
    fn from(error: BcdError) -> Self {
        match error {
            BcdError::NotBcd => FieldError::NotBcd,
            BcdError::BadPad => FieldError::BcdPad,
        }
    }
}

/// A field as the spec defines it.
#[derive(Clone, PartialEq, Eq)]
pub struct FieldFormat {
    pub name: Box<str>,
    pub kind: Kind,
    pub length: Length,
    pub encoding: Encoding,
    pub length_encoding: Encoding,
    /// Where BCD puts the pad nibble of an odd count of digits.
    pub pad: Pad,
}

impl fmt::Debug for FieldFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:?} {:?} {:?}",
            self.name, self.kind, self.length, self.encoding
        )
    }
}

impl FieldFormat {
    /// Checks a canonical value against the field's type and length.
    pub fn check(&self, value: &[u8]) -> Result<(), FieldError> {
        match self.length {
            Length::Fixed(length) if value.len() != usize::from(length) => {
                return Err(FieldError::Length(length))
            }
            Length::Var { max, .. } if value.len() > usize::from(max) => {
                return Err(FieldError::TooLong(max))
            }
            _ => {}
        }
        if self.kind != Kind::B && !value.iter().all(|&c| self.kind.allows(c)) {
            return Err(FieldError::Characters(self.kind));
        }
        Ok(())
    }

    /// Bytes the body of a value of `length` units takes on the wire.
    fn body_len(&self, length: usize) -> usize {
        match self.encoding {
            Encoding::Bcd => bcd::packed_len(length),
            _ => length,
        }
    }

    /// The most bytes this field can take on the wire, prefix included.
    pub fn max_wire_len(&self) -> usize {
        let prefix = match self.length {
            Length::Fixed(_) => 0,
            Length::Var { digits, .. } => prefix_len(digits, self.length_encoding),
        };
        prefix + self.body_len(usize::from(self.length.max()))
    }

    /// Appends the wire form of a canonical value.
    pub fn encode(&self, value: &[u8], out: &mut Vec<u8>) -> Result<(), FieldError> {
        self.check(value)?;
        if let Length::Var { digits, .. } = self.length {
            write_prefix(value.len(), digits, self.length_encoding, out);
        }
        match self.encoding {
            Encoding::Ascii | Encoding::Binary => out.extend_from_slice(value),
            Encoding::Ebcdic => {
                for &char in value {
                    out.push(ebcdic::from_ascii(char).ok_or(FieldError::Characters(self.kind))?);
                }
            }
            Encoding::Bcd => {
                bcd::pack(value, self.pad, out).ok_or(FieldError::Characters(self.kind))?
            }
        }
        Ok(())
    }

    /// Reads one field from the start of `input`: its canonical value and the bytes it took.
    /// Lengths are checked against the field's maximum and the input left before anything
    /// is allocated.
    pub fn decode(&self, input: &[u8]) -> Result<(Vec<u8>, usize), FieldError> {
        let (length, prefix) = match self.length {
            Length::Fixed(length) => (usize::from(length), 0),
            Length::Var { digits, max } => {
                let prefix = prefix_len(digits, self.length_encoding);
                let bytes = input.get(..prefix).ok_or(FieldError::Truncated)?;
                let length = read_prefix(bytes, self.length_encoding)?;
                if length > usize::from(max) {
                    return Err(FieldError::LengthOverMax(max));
                }
                (length, prefix)
            }
        };
        let end = prefix + self.body_len(length);
        let body = input.get(prefix..end).ok_or(FieldError::Truncated)?;
        let value = match self.encoding {
            Encoding::Ascii | Encoding::Binary => body.to_vec(),
            Encoding::Ebcdic => body
                .iter()
                .map(|&byte| ebcdic::to_ascii(byte).ok_or(FieldError::NotEbcdic))
                .collect::<Result<_, _>>()?,
            Encoding::Bcd => bcd::unpack(body, length, self.pad, self.kind == Kind::Z)?,
        };
        if self.kind != Kind::B && !value.iter().all(|&c| self.kind.allows(c)) {
            return Err(FieldError::Characters(self.kind));
        }
        Ok((value, end))
    }
}

/// Bytes a length prefix of `digits` digits takes.
fn prefix_len(digits: u8, encoding: Encoding) -> usize {
    match encoding {
        Encoding::Ascii | Encoding::Ebcdic => usize::from(digits),
        Encoding::Bcd => bcd::packed_len(usize::from(digits)),
        Encoding::Binary => usize::from(digits) - 1,
    }
}

/// Writes a length that `check` bounded by the field's max, so it fits `digits` digits.
fn write_prefix(length: usize, digits: u8, encoding: Encoding, out: &mut Vec<u8>) {
    let digits = u32::from(digits);
    match encoding {
        Encoding::Ascii | Encoding::Ebcdic => {
            let zero = if encoding == Encoding::Ascii {
                b'0'
            } else {
                0xF0
            };
            for place in (0..digits).rev() {
                out.push(zero + (length / 10usize.pow(place) % 10) as u8);
            }
        }
        Encoding::Bcd => {
            let packed = |n: usize| (((n / 10 % 10) << 4) | (n % 10)) as u8;
            if digits == 3 {
                out.push(packed(length / 100));
            }
            out.push(packed(length));
        }
        Encoding::Binary => {
            let be = (length as u16).to_be_bytes();
            out.extend_from_slice(&be[3 - digits as usize..]);
        }
    }
}

fn read_prefix(bytes: &[u8], encoding: Encoding) -> Result<usize, FieldError> {
    let digit = |d: u8| match d {
        0..=9 => Ok(usize::from(d)),
        _ => Err(FieldError::LengthPrefix),
    };
    match encoding {
        Encoding::Ascii => bytes
            .iter()
            .try_fold(0, |n, &b| Ok(n * 10 + digit(b.wrapping_sub(b'0'))?)),
        Encoding::Ebcdic => bytes
            .iter()
            .try_fold(0, |n, &b| Ok(n * 10 + digit(b.wrapping_sub(0xF0))?)),
        Encoding::Bcd => bytes.iter().try_fold(0, |n, &b| {
            Ok(n * 100 + digit(b >> 4)? * 10 + digit(b & 0x0F)?)
        }),
        Encoding::Binary => Ok(bytes.iter().fold(0, |n, &b| (n << 8) | usize::from(b))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn format(
        kind: Kind,
        length: Length,
        encoding: Encoding,
        length_encoding: Encoding,
    ) -> FieldFormat {
        FieldFormat {
            name: "test".into(),
            kind,
            length,
            encoding,
            length_encoding,
            pad: Pad::Left,
        }
    }

    fn encoded(field: &FieldFormat, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        field.encode(value, &mut out).unwrap();
        out
    }

    #[test]
    fn bcd_lengths() {
        // LLVAR n ..19 in BCD: one prefix byte, the digits packed with a leading pad nibble.
        let pan = format(
            Kind::N,
            Length::Var { digits: 2, max: 19 },
            Encoding::Bcd,
            Encoding::Bcd,
        );
        assert_eq!(
            encoded(&pan, b"4761739001010119"),
            [0x16, 0x47, 0x61, 0x73, 0x90, 0x01, 0x01, 0x01, 0x19]
        );
        assert_eq!(encoded(&pan, b"123"), [0x03, 0x01, 0x23]);
        // LLLVAR: two prefix bytes, 0LLL.
        let data = format(
            Kind::N,
            Length::Var {
                digits: 3,
                max: 999,
            },
            Encoding::Bcd,
            Encoding::Bcd,
        );
        assert_eq!(encoded(&data, b"12345"), [0x00, 0x05, 0x01, 0x23, 0x45]);
        // 0101 digits need 51 bytes.
        assert_eq!(
            data.decode(&[0x01, 0x01, 0x00, 0x00]),
            Err(FieldError::Truncated)
        );
        // A fixed n 3 field in BCD takes two bytes.
        let code = format(Kind::N, Length::Fixed(3), Encoding::Bcd, Encoding::Bcd);
        assert_eq!(encoded(&code, b"840"), [0x08, 0x40]);
        assert_eq!(
            code.decode(&[0x08, 0x40, 0xFF]).unwrap(),
            (b"840".to_vec(), 2)
        );
    }

    #[test]
    fn length_prefix_encodings() {
        let var = |enc| {
            format(
                Kind::Ans,
                Length::Var {
                    digits: 3,
                    max: 300,
                },
                Encoding::Ascii,
                enc,
            )
        };
        assert_eq!(encoded(&var(Encoding::Ascii), b"AB"), b"002AB");
        assert_eq!(
            encoded(&var(Encoding::Ebcdic), b"AB"),
            [0xF0, 0xF0, 0xF2, b'A', b'B']
        );
        assert_eq!(
            encoded(&var(Encoding::Binary), b"AB"),
            [0x00, 0x02, b'A', b'B']
        );
        let long = vec![b'x'; 300];
        assert_eq!(encoded(&var(Encoding::Binary), &long)[..2], [0x01, 0x2C]);
        let ll_binary = format(
            Kind::B,
            Length::Var { digits: 2, max: 99 },
            Encoding::Binary,
            Encoding::Binary,
        );
        assert_eq!(encoded(&ll_binary, &[0xFF, 0x00]), [0x02, 0xFF, 0x00]);
    }

    #[test]
    fn ebcdic_fields() {
        let id = format(
            Kind::Ans,
            Length::Fixed(4),
            Encoding::Ebcdic,
            Encoding::Ebcdic,
        );
        assert_eq!(encoded(&id, b"A1 z"), [0xC1, 0xF1, 0x40, 0xA9]);
        assert_eq!(
            id.decode(&[0xC1, 0xF1, 0x40, 0xA9]).unwrap(),
            (b"A1 z".to_vec(), 4)
        );
        assert_eq!(
            id.decode(&[0xC1, 0xF1, 0x4A, 0xA9]),
            Err(FieldError::NotEbcdic)
        );
    }

    #[test]
    fn values_are_checked_against_the_type() {
        let amount = format(Kind::N, Length::Fixed(12), Encoding::Ascii, Encoding::Ascii);
        let mut out = Vec::new();
        assert_eq!(amount.encode(b"12", &mut out), Err(FieldError::Length(12)));
        assert_eq!(
            amount.encode(b"00000000001A", &mut out),
            Err(FieldError::Characters(Kind::N))
        );
        assert!(out.is_empty());
        let an = format(Kind::An, Length::Fixed(2), Encoding::Ascii, Encoding::Ascii);
        assert_eq!(an.check(b"A-"), Err(FieldError::Characters(Kind::An)));
        assert_eq!(an.check(b"A "), Ok(()));
        let ans = format(
            Kind::Ans,
            Length::Var { digits: 2, max: 5 },
            Encoding::Ascii,
            Encoding::Ascii,
        );
        assert_eq!(ans.check(b"\x01"), Err(FieldError::Characters(Kind::Ans)));
        assert_eq!(ans.check(b"abcdef"), Err(FieldError::TooLong(5)));
        assert_eq!(
            FieldError::Characters(Kind::An).to_string(),
            "must hold letters, digits and spaces only"
        );
    }

    #[test]
    fn malformed_fields_are_clean_errors() {
        let pan = format(
            Kind::N,
            Length::Var { digits: 2, max: 19 },
            Encoding::Ascii,
            Encoding::Ascii,
        );
        assert_eq!(pan.decode(b"2"), Err(FieldError::Truncated));
        assert_eq!(pan.decode(b"1x"), Err(FieldError::LengthPrefix));
        assert_eq!(pan.decode(b"99123"), Err(FieldError::LengthOverMax(19)));
        assert_eq!(pan.decode(b"0512"), Err(FieldError::Truncated));
        assert_eq!(pan.decode(b"0312a"), Err(FieldError::Characters(Kind::N)));
        let bcd = format(
            Kind::N,
            Length::Var { digits: 2, max: 19 },
            Encoding::Bcd,
            Encoding::Bcd,
        );
        assert_eq!(bcd.decode(&[0x1A]), Err(FieldError::LengthPrefix));
        assert_eq!(bcd.decode(&[0x02, 0x3C]), Err(FieldError::NotBcd));
        let lll = format(
            Kind::B,
            Length::Var {
                digits: 3,
                max: 999,
            },
            Encoding::Binary,
            Encoding::Binary,
        );
        // 0xFFFF announces 65535 bytes: refused before anything is read or allocated.
        assert_eq!(
            lll.decode(&[0xFF, 0xFF, 0x00]),
            Err(FieldError::LengthOverMax(999))
        );
        assert_eq!(lll.decode(&[0x03, 0xE7, 0x00]), Err(FieldError::Truncated));
    }

    /// A field format and a value that fits it.
    fn format_and_value() -> impl Strategy<Value = (FieldFormat, Vec<u8>)> {
        let kind = prop_oneof![
            Just(Kind::N),
            Just(Kind::An),
            Just(Kind::Ans),
            Just(Kind::Z),
            Just(Kind::B)
        ];
        let length = prop_oneof![
            (1u16..=40).prop_map(Length::Fixed),
            (1u16..=99).prop_map(|max| Length::Var { digits: 2, max }),
            (1u16..=999).prop_map(|max| Length::Var { digits: 3, max }),
        ];
        let any_encoding = prop_oneof![
            Just(Encoding::Ascii),
            Just(Encoding::Ebcdic),
            Just(Encoding::Bcd),
            Just(Encoding::Binary)
        ];
        let pad = prop_oneof![Just(Pad::Left), Just(Pad::Right)];
        (kind, length, any::<u8>(), any_encoding, pad).prop_flat_map(
            |(kind, length, pick, length_encoding, pad)| {
                let encodings: &[Encoding] = match kind {
                    Kind::N | Kind::Z => &[Encoding::Ascii, Encoding::Ebcdic, Encoding::Bcd],
                    Kind::An | Kind::Ans => &[Encoding::Ascii, Encoding::Ebcdic],
                    Kind::B => &[Encoding::Binary],
                };
                let field = FieldFormat {
                    name: "f".into(),
                    kind,
                    length,
                    encoding: encodings[usize::from(pick) % encodings.len()],
                    length_encoding,
                    pad,
                };
                let size = match length {
                    Length::Fixed(n) => usize::from(n)..=usize::from(n),
                    Length::Var { max, .. } => 0..=usize::from(max),
                };
                let chars: Vec<u8> = (0u8..=255).filter(|&c| kind.allows(c)).collect();
                let value = proptest::collection::vec(proptest::sample::select(chars), size);
                (Just(field), value)
            },
        )
    }

    proptest! {
        #[test]
        fn every_format_round_trips((field, value) in format_and_value(), tail in proptest::collection::vec(any::<u8>(), 0..4)) {
            let mut wire = Vec::new();
            field.encode(&value, &mut wire).unwrap();
            prop_assert!(wire.len() <= field.max_wire_len());
            let used = wire.len();
            wire.extend_from_slice(&tail);
            prop_assert_eq!(field.decode(&wire), Ok((value, used)));
        }

        #[test]
        fn decoding_any_bytes_never_panics((field, _) in format_and_value(), bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok((value, used)) = field.decode(&bytes) {
                prop_assert!(used <= bytes.len());
                prop_assert!(field.check(&value).is_ok());
            }
        }
    }
}
