//! Packed BCD: two digits a byte, high nibble first. An odd count of digits leaves one
//! nibble over, the pad: a leading 0 (`Left`, the default, as for amounts) or a trailing F
//! (`Right`, as track 2 data is usually sent). Decoding accepts 0 or F as the pad.
//! Track 2's field separator `=` is the nibble D in `z` fields.

/// Where the pad nibble of an odd count of digits goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pad {
    #[default]
    Left,
    Right,
}

/// What is wrong with packed BCD bytes (values are never part of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BcdError {
    /// A nibble that is not a digit (nor D where a separator is allowed).
    NotBcd,
    /// The pad nibble of an odd count of digits is neither 0 nor F.
    BadPad,
}

/// Bytes that `count` digits take.
pub fn packed_len(count: usize) -> usize {
    count.div_ceil(2)
}

fn nibble(char: u8) -> Option<u8> {
    match char {
        b'0'..=b'9' => Some(char - b'0'),
        b'=' => Some(0xD),
        _ => None,
    }
}

/// Packs ASCII digits (and `=`); `None` for any other character.
pub fn pack(chars: &[u8], pad: Pad, out: &mut Vec<u8>) -> Option<()> {
    let pad_nibble = match pad {
        Pad::Left => 0x0,
        Pad::Right => 0xF,
    };
    let mut nibbles = chars.iter().map(|&c| nibble(c));
    let odd = chars.len() % 2 == 1;
    if odd && pad == Pad::Left {
        out.push((pad_nibble << 4) | nibbles.next()??);
    }
    while let Some(high) = nibbles.next() {
        let low = match nibbles.next() {
            Some(low) => low?,
            None => pad_nibble,
        };
        out.push((high? << 4) | low);
    }
    Some(())
}

/// Unpacks `count` digits from exactly `packed_len(count)` bytes into ASCII; D becomes `=`
/// when `separator` allows it.
pub fn unpack(bytes: &[u8], count: usize, pad: Pad, separator: bool) -> Result<Vec<u8>, BcdError> {
    debug_assert_eq!(bytes.len(), packed_len(count));
    let mut digits = Vec::with_capacity(count);
    let odd = count % 2 == 1;
    for (i, &byte) in bytes.iter().enumerate() {
        for (j, nibble) in [byte >> 4, byte & 0x0F].into_iter().enumerate() {
            let is_pad = odd
                && match pad {
                    Pad::Left => i == 0 && j == 0,
                    Pad::Right => i == bytes.len() - 1 && j == 1,
                };
            if is_pad {
                if nibble != 0x0 && nibble != 0xF {
                    return Err(BcdError::BadPad);
                }
                continue;
            }
            digits.push(match nibble {
                0..=9 => b'0' + nibble,
                0xD if separator => b'=',
                _ => return Err(BcdError::NotBcd),
            });
        }
    }
    Ok(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packed(chars: &str, pad: Pad) -> Vec<u8> {
        let mut out = Vec::new();
        pack(chars.as_bytes(), pad, &mut out).unwrap();
        out
    }

    #[test]
    fn golden_packing() {
        assert_eq!(packed("1234", Pad::Left), [0x12, 0x34]);
        assert_eq!(packed("123", Pad::Left), [0x01, 0x23]);
        assert_eq!(packed("123", Pad::Right), [0x12, 0x3F]);
        assert_eq!(
            packed("4761=2512", Pad::Right),
            [0x47, 0x61, 0xD2, 0x51, 0x2F]
        );
        assert_eq!(packed("", Pad::Left), [] as [u8; 0]);
        let mut out = Vec::new();
        assert_eq!(pack(b"12a4", Pad::Left, &mut out), None);
    }

    #[test]
    fn golden_unpacking() {
        assert_eq!(unpack(&[0x01, 0x23], 3, Pad::Left, false).unwrap(), b"123");
        // A right pad of 0 is accepted too.
        assert_eq!(unpack(&[0x12, 0x30], 3, Pad::Right, false).unwrap(), b"123");
        assert_eq!(unpack(&[0x4D, 0x12], 4, Pad::Left, true).unwrap(), b"4=12");
        assert_eq!(
            unpack(&[0x4D, 0x12], 4, Pad::Left, false),
            Err(BcdError::NotBcd)
        );
        assert_eq!(unpack(&[0x1A], 2, Pad::Left, false), Err(BcdError::NotBcd));
        assert_eq!(
            unpack(&[0x51, 0x23], 3, Pad::Left, false),
            Err(BcdError::BadPad)
        );
    }
}
