//! A message and its wire form: MTI, bitmaps, then the present fields in order. Framing (a
//! length header) is the link's business, not the codec's.

use std::collections::BTreeMap;
use std::fmt;

use super::bcd::{self, Pad};
use super::bitmap::{Bitmap, BitmapEncoding, BitmapError};
use super::ebcdic;
use super::field::{FieldError, FieldFormat};

/// A message: MTI as 4 ASCII digits and its present fields (2..=128), each as its value in
/// canonical form: for n/an/ans/z fields the ASCII characters (digits for n, BCD unpacked to
/// ASCII digits, EBCDIC converted to ASCII); for b fields the raw bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    pub mti: [u8; 4],
    pub fields: BTreeMap<u8, Vec<u8>>,
}

impl Message {
    pub fn new(mti: [u8; 4]) -> Self {
        Message {
            mti,
            fields: BTreeMap::new(),
        }
    }

    pub fn get(&self, field: u8) -> Option<&[u8]> {
        self.fields.get(&field).map(Vec::as_slice)
    }

    pub fn set(&mut self, field: u8, value: impl Into<Vec<u8>>) {
        self.fields.insert(field, value.into());
    }
}

/// Only the MTI and the field numbers: values (card numbers, PIN blocks) never reach a log.
impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("mti", &String::from_utf8_lossy(&self.mti))
            .field("fields", &self.fields.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Why a message cannot be encoded or decoded. Names fields by number and name, never holds
/// a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("the MTI must be 4 digits")]
    Mti,
    #[error("the message ends inside the MTI")]
    TruncatedMti,
    #[error(transparent)]
    Bitmap(#[from] BitmapError),
    #[error("field {0} is not in the spec")]
    UnknownField(u8),
    #[error("field {field} ({name}): {error}")]
    Field {
        field: u8,
        name: Box<str>,
        error: FieldError,
    },
    #[error("{0} bytes follow the last field")]
    Trailing(usize),
}

/// How the MTI is written: 4 ASCII or EBCDIC digits, or 2 bytes of BCD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MtiEncoding {
    #[default]
    Ascii,
    Ebcdic,
    Bcd,
}

/// The wire layout of a spec: how the MTI and bitmaps are written, and each field's format.
#[derive(Debug)]
pub struct Codec {
    pub mti: MtiEncoding,
    pub bitmap: BitmapEncoding,
    /// Indexed by field number; 0 and 1 are always `None`.
    pub fields: Vec<Option<FieldFormat>>,
}

impl Codec {
    pub fn field(&self, number: u8) -> Option<&FieldFormat> {
        self.fields.get(usize::from(number))?.as_ref()
    }

    /// The longest message this layout can make: MTI, both bitmaps and every field at its
    /// maximum.
    pub fn max_message_len(&self) -> usize {
        let bitmaps = match self.bitmap {
            BitmapEncoding::Binary => 16,
            BitmapEncoding::Hex | BitmapEncoding::EbcdicHex => 32,
        };
        let fields: usize = self
            .fields
            .iter()
            .flatten()
            .map(FieldFormat::max_wire_len)
            .sum();
        4 + bitmaps + fields
    }

    pub fn encode(&self, msg: &Message) -> Result<Vec<u8>, CodecError> {
        if !msg.mti.iter().all(u8::is_ascii_digit) {
            return Err(CodecError::Mti);
        }
        // Before anything is written: the bitmap may only name fields of the spec.
        if let Some(&number) = msg.fields.keys().find(|&&n| self.field(n).is_none()) {
            return Err(CodecError::UnknownField(number));
        }
        let size = 4 + 32 + msg.fields.values().map(|v| v.len() + 4).sum::<usize>();
        let mut out = Vec::with_capacity(size);
        match self.mti {
            MtiEncoding::Ascii => out.extend_from_slice(&msg.mti),
            MtiEncoding::Ebcdic => out.extend(msg.mti.iter().map(|&d| 0xF0 | (d - b'0'))),
            MtiEncoding::Bcd => bcd::pack(&msg.mti, Pad::Left, &mut out).ok_or(CodecError::Mti)?,
        }
        Bitmap::of(msg.fields.keys().copied()).write(self.bitmap, &mut out);
        for (&number, value) in &msg.fields {
            let format = self.field(number).ok_or(CodecError::UnknownField(number))?;
            format
                .encode(value, &mut out)
                .map_err(|error| field_error(number, format, error))?;
        }
        Ok(out)
    }

    pub fn decode(&self, bytes: &[u8]) -> Result<Message, CodecError> {
        let (mti, mut at) = self.decode_mti(bytes)?;
        let (bitmap, used) = Bitmap::read(&bytes[at..], self.bitmap)?;
        at += used;
        let mut msg = Message::new(mti);
        for number in bitmap.fields() {
            let format = self.field(number).ok_or(CodecError::UnknownField(number))?;
            let (value, used) = format
                .decode(&bytes[at..])
                .map_err(|error| field_error(number, format, error))?;
            at += used;
            msg.fields.insert(number, value);
        }
        match bytes.len() - at {
            0 => Ok(msg),
            trailing => Err(CodecError::Trailing(trailing)),
        }
    }

    fn decode_mti(&self, bytes: &[u8]) -> Result<([u8; 4], usize), CodecError> {
        let size = match self.mti {
            MtiEncoding::Ascii | MtiEncoding::Ebcdic => 4,
            MtiEncoding::Bcd => 2,
        };
        let raw = bytes.get(..size).ok_or(CodecError::TruncatedMti)?;
        let digits = match self.mti {
            MtiEncoding::Ascii => raw.to_vec(),
            MtiEncoding::Ebcdic => raw.iter().filter_map(|&e| ebcdic::to_ascii(e)).collect(),
            MtiEncoding::Bcd => {
                bcd::unpack(raw, 4, Pad::Left, false).map_err(|_| CodecError::Mti)?
            }
        };
        let mti: [u8; 4] = digits.try_into().map_err(|_| CodecError::Mti)?;
        if !mti.iter().all(u8::is_ascii_digit) {
            return Err(CodecError::Mti);
        }
        Ok((mti, size))
    }
}

fn field_error(field: u8, format: &FieldFormat, error: FieldError) -> CodecError {
    CodecError::Field {
        field,
        name: format.name.clone(),
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_prints_no_values() {
        let mut msg = Message::new(*b"0100");
        msg.set(2, "4761739001010119");
        msg.set(4, "000000001000");
        let printed = format!("{msg:?}");
        assert_eq!(printed, r#"Message { mti: "0100", fields: [2, 4] }"#);
        assert!(!printed.contains("4761"));
    }
}
