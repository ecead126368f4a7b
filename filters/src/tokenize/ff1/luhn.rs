//! The Luhn checksum of card numbers (ISO/IEC 7812-1), as a remainder: 0 for a number that
//! passes the check.

/// The Luhn sum of `digits` (each 0 to 9) modulo 10: every second digit from the right,
/// starting with the one before the last, is doubled (less 9 past 9). 0 means the number
/// passes the check.
pub(super) fn remainder(digits: &[u8]) -> u8 {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| u32::from(if i % 2 == 1 { doubled(d) } else { d }))
        .sum();
    (sum % 10) as u8
}

/// Sets `digits[position]` to the one digit that gives `digits` the remainder `target`
/// (0 to 9). There is always exactly one: doubling maps 0..=9 onto 0..=9, so each value of
/// one position moves the sum to a different remainder.
pub(super) fn solve(digits: &mut [u8], position: usize, target: u8) {
    digits[position] = 0;
    let needed = (target + 10 - remainder(digits)) % 10;
    let is_doubled = (digits.len() - 1 - position) % 2 == 1;
    digits[position] = if is_doubled {
        undoubled(needed)
    } else {
        needed
    };
}

fn doubled(d: u8) -> u8 {
    if d < 5 {
        2 * d
    } else {
        2 * d - 9
    }
}

/// The digit whose doubled value is `c`: 0 2 4 6 8 come from 0 to 4, 1 3 5 7 9 from 5 to 9.
fn undoubled(c: u8) -> u8 {
    if c.is_multiple_of(2) {
        c / 2
    } else {
        (c + 9) / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digits(text: &str) -> Vec<u8> {
        text.bytes().map(|b| b - b'0').collect()
    }

    #[test]
    fn known_numbers() {
        for valid in ["4111111111111111", "79927398713", "5555555555554444", "0"] {
            assert_eq!(remainder(&digits(valid)), 0, "{valid}");
        }
        assert_eq!(remainder(&digits("4111111111111112")), 1);
        assert_eq!(remainder(&digits("79927398710")), 7);
    }

    #[test]
    fn undoubled_inverts_doubled() {
        for d in 0..10 {
            assert_eq!(undoubled(doubled(d)), d);
        }
    }

    #[test]
    fn solve_reaches_every_remainder_from_every_position() {
        let base = digits("4000123456789010");
        for position in 0..base.len() {
            for target in 0..10 {
                let mut number = base.clone();
                solve(&mut number, position, target);
                assert_eq!(remainder(&number), target, "position {position}");
                let others = |n: &[u8]| {
                    let mut n = n.to_vec();
                    n.remove(position);
                    n
                };
                assert_eq!(others(&number), others(&base));
            }
        }
    }
}
