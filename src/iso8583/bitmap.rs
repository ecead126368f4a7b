//! The primary and secondary bitmaps: which of fields 2 to 128 a message holds. Bit 1 says a
//! secondary bitmap (fields 65 to 128) follows the primary one.

/// How a bitmap is written: 8 raw bytes, or 16 hex digits in ASCII or in EBCDIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BitmapEncoding {
    #[default]
    Binary,
    Hex,
    EbcdicHex,
}

/// Why bitmap bytes cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BitmapError {
    #[error("the message ends inside the bitmap")]
    Truncated,
    #[error("the bitmap is not hexadecimal")]
    NotHex,
}

/// Fields 1 to 128 as bits, field 1 the most significant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bitmap(u128);

const SECONDARY: u128 = 1 << 127;

fn bit(field: u8) -> u128 {
    1 << (128 - u32::from(field))
}

impl Bitmap {
    /// The bitmap of these fields (each in 2..=128), with bit 1 set when one is over 64.
    pub fn of(fields: impl IntoIterator<Item = u8>) -> Bitmap {
        let mut bits = 0;
        for field in fields {
            bits |= bit(field);
            if field > 64 {
                bits |= SECONDARY;
            }
        }
        Bitmap(bits)
    }

    /// The fields present, in order, without bit 1.
    pub fn fields(self) -> impl Iterator<Item = u8> {
        (2..=128).filter(move |&field| self.0 & bit(field) != 0)
    }

    pub fn write(self, encoding: BitmapEncoding, out: &mut Vec<u8>) {
        let bytes = self.0.to_be_bytes();
        let bytes = if self.0 & SECONDARY != 0 {
            &bytes[..]
        } else {
            &bytes[..8]
        };
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        match encoding {
            BitmapEncoding::Binary => out.extend_from_slice(bytes),
            BitmapEncoding::Hex | BitmapEncoding::EbcdicHex => {
                for nibble in bytes.iter().flat_map(|b| [b >> 4, b & 0x0F]) {
                    let char = HEX[usize::from(nibble)];
                    out.push(match (encoding, nibble) {
                        (BitmapEncoding::Hex, _) => char,
                        // EBCDIC digits are F0..F9, letters A..F are C1..C6.
                        (_, 0..=9) => 0xF0 | nibble,
                        _ => 0xC1 + (nibble - 10),
                    });
                }
            }
        }
    }

    /// Reads the primary bitmap, and the secondary one when bit 1 says so, from the start of
    /// `input`; returns the bitmap and the bytes it took.
    pub fn read(input: &[u8], encoding: BitmapEncoding) -> Result<(Bitmap, usize), BitmapError> {
        let width = match encoding {
            BitmapEncoding::Binary => 8,
            BitmapEncoding::Hex | BitmapEncoding::EbcdicHex => 16,
        };
        let primary = read_half(input, encoding, width)?;
        if primary & (1 << 63) == 0 {
            return Ok((Bitmap(u128::from(primary) << 64), width));
        }
        let secondary = read_half(&input[width..], encoding, width)?;
        Ok((
            Bitmap((u128::from(primary) << 64) | u128::from(secondary)),
            2 * width,
        ))
    }
}

/// One 64-bit bitmap of `width` bytes.
fn read_half(input: &[u8], encoding: BitmapEncoding, width: usize) -> Result<u64, BitmapError> {
    let bytes = input.get(..width).ok_or(BitmapError::Truncated)?;
    if encoding == BitmapEncoding::Binary {
        return Ok(bytes.iter().fold(0, |bits, &b| (bits << 8) | u64::from(b)));
    }
    bytes.iter().try_fold(0, |bits, &char| {
        let nibble = match (encoding, char) {
            (BitmapEncoding::Hex, b'0'..=b'9') => char - b'0',
            (BitmapEncoding::Hex, b'A'..=b'F') => char - b'A' + 10,
            (BitmapEncoding::Hex, b'a'..=b'f') => char - b'a' + 10,
            (BitmapEncoding::EbcdicHex, 0xF0..=0xF9) => char - 0xF0,
            (BitmapEncoding::EbcdicHex, 0xC1..=0xC6) => char - 0xC1 + 10,
            (BitmapEncoding::EbcdicHex, 0x81..=0x86) => char - 0x81 + 10,
            _ => return Err(BitmapError::NotHex),
        };
        Ok((bits << 4) | u64::from(nibble))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn golden_primary_bitmap() {
        let (bitmap, used) = Bitmap::read(b"4210001102C04804", BitmapEncoding::Hex).unwrap();
        assert_eq!(used, 16);
        assert_eq!(
            bitmap.fields().collect::<Vec<_>>(),
            [2, 7, 12, 28, 32, 39, 41, 42, 50, 53, 62]
        );
        let binary = [0x42, 0x10, 0x00, 0x11, 0x02, 0xC0, 0x48, 0x04];
        assert_eq!(
            Bitmap::read(&binary, BitmapEncoding::Binary).unwrap(),
            (bitmap, 8)
        );
        let mut out = Vec::new();
        bitmap.write(BitmapEncoding::Hex, &mut out);
        assert_eq!(out, b"4210001102C04804");
    }

    #[test]
    fn secondary_bitmap_follows_bit_one() {
        let bitmap = Bitmap::of([7, 11, 70]);
        let mut out = Vec::new();
        bitmap.write(BitmapEncoding::Binary, &mut out);
        assert_eq!(
            out,
            [0x82, 0x20, 0, 0, 0, 0, 0, 0, 0x04, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            Bitmap::read(&out, BitmapEncoding::Binary).unwrap(),
            (bitmap, 16)
        );
        assert_eq!(bitmap.fields().collect::<Vec<_>>(), [7, 11, 70]);
        // Bit 1 set, secondary missing.
        assert_eq!(
            Bitmap::read(&out[..12], BitmapEncoding::Binary),
            Err(BitmapError::Truncated)
        );
        let mut ebcdic = Vec::new();
        bitmap.write(BitmapEncoding::EbcdicHex, &mut ebcdic);
        assert_eq!(&ebcdic[..4], [0xF8, 0xF2, 0xF2, 0xF0]);
        assert_eq!(
            Bitmap::read(&ebcdic, BitmapEncoding::EbcdicHex).unwrap(),
            (bitmap, 32)
        );
    }

    #[test]
    fn bad_hex_is_an_error() {
        assert_eq!(
            Bitmap::read(b"4210001102C0480G", BitmapEncoding::Hex),
            Err(BitmapError::NotHex)
        );
        assert_eq!(
            Bitmap::read(b"42100011", BitmapEncoding::Hex),
            Err(BitmapError::Truncated)
        );
    }

    proptest! {
        #[test]
        fn bitmaps_round_trip(fields in proptest::collection::btree_set(2u8..=128, 0..20), pick in 0usize..3) {
            let encoding = [BitmapEncoding::Binary, BitmapEncoding::Hex, BitmapEncoding::EbcdicHex][pick];
            let bitmap = Bitmap::of(fields.iter().copied());
            let mut out = Vec::new();
            bitmap.write(encoding, &mut out);
            prop_assert_eq!(Bitmap::read(&out, encoding), Ok((bitmap, out.len())));
            prop_assert_eq!(bitmap.fields().collect::<Vec<_>>(), fields.into_iter().collect::<Vec<_>>());
        }
    }
}
