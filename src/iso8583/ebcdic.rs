//! EBCDIC code page 037 for the printable ASCII characters, the only ones ISO 8583 text
//! fields (`n`, `an`, `ans`, `z`) may hold. Anything else has no canonical form here.

/// Code page 037 of the ASCII characters 0x20 (space) to 0x7E (`~`), in ASCII order.
const FROM_PRINTABLE_ASCII: [u8; 95] = [
    0x40, 0x5A, 0x7F, 0x7B, 0x5B, 0x6C, 0x50, 0x7D, 0x4D, 0x5D, 0x5C, 0x4E, 0x6B, 0x60, 0x4B,
    0x61, // space ! " # $ % & ' ( ) * + , - . /
    0xF0, 0xF1, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8, 0xF9, // 0-9
    0x7A, 0x5E, 0x4C, 0x7E, 0x6E, 0x6F, 0x7C, // : ; < = > ? @
    0xC1, 0xC2, 0xC3, 0xC4, 0xC5, 0xC6, 0xC7, 0xC8, 0xC9, // A-I
    0xD1, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, // J-R
    0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, // S-Z
    0xBA, 0xE0, 0xBB, 0xB0, 0x6D, 0x79, // [ \ ] ^ _ `
    0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, // a-i
    0x91, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, // j-r
    0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, 0xA8, 0xA9, // s-z
    0xC0, 0x4F, 0xD0, 0xA1, // { | } ~
];

/// The inverse table: the ASCII character of an EBCDIC byte, 0 where it has none.
const TO_ASCII: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < FROM_PRINTABLE_ASCII.len() {
        table[FROM_PRINTABLE_ASCII[i] as usize] = 0x20 + i as u8;
        i += 1;
    }
    table
};

/// The EBCDIC byte of a printable ASCII character.
pub fn from_ascii(ascii: u8) -> Option<u8> {
    FROM_PRINTABLE_ASCII
        .get(usize::from(ascii.wrapping_sub(0x20)))
        .copied()
}

/// The printable ASCII character of an EBCDIC byte.
pub fn to_ascii(ebcdic: u8) -> Option<u8> {
    match TO_ASCII[usize::from(ebcdic)] {
        0 => None,
        ascii => Some(ascii),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_characters() {
        assert_eq!(from_ascii(b'A'), Some(0xC1));
        assert_eq!(from_ascii(b'0'), Some(0xF0));
        assert_eq!(from_ascii(b' '), Some(0x40));
        assert_eq!(from_ascii(b'a'), Some(0x81));
        assert_eq!(from_ascii(b'Z'), Some(0xE9));
        assert_eq!(from_ascii(b'['), Some(0xBA));
        assert_eq!(from_ascii(b'~'), Some(0xA1));
        assert_eq!(to_ascii(0xC1), Some(b'A'));
        assert_eq!(to_ascii(0xF9), Some(b'9'));
    }

    #[test]
    fn printable_ascii_round_trips_and_nothing_else_maps() {
        for ascii in 0u8..=255 {
            match from_ascii(ascii) {
                Some(ebcdic) => assert_eq!(to_ascii(ebcdic), Some(ascii)),
                None => assert!(!(0x20..=0x7E).contains(&ascii), "{ascii:#04x}"),
            }
        }
        let mapped = (0u8..=255).filter(|&e| to_ascii(e).is_some()).count();
        assert_eq!(mapped, 95, "the table is a bijection onto printable ASCII");
        // Control characters and cp037's national characters (¢ at 0x4A) have no form here.
        assert_eq!(to_ascii(0x00), None);
        assert_eq!(to_ascii(0x4A), None);
    }
}
