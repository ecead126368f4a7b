//! FF1 (NIST SP 800-38G, algorithms 7 and 8) over AES-256, written out by hand for inputs
//! whose two halves fit in a `u64`: radix^⌈n/2⌉ ≤ 2^64, so up to 38 decimal digits, 24
//! base-36 or 20 base-62 characters, which covers every PAN, IBAN and usual account number.
//!
//! Why by hand: the `fpe` crate keeps each half as an arbitrary-precision integer and
//! converts it to and from numerals in every one of FF1's 10 rounds; a PAN field cost about
//! 3.5 µs with it, and costs about 0.5 µs with this code, most of it waiting on 13 AES
//! blocks in a row (`cargo bench --bench tokenize`, BENCHMARKS.md). Here the halves stay
//! machine integers for all 10 rounds, and what is constant across the rounds, the CBC-MAC
//! over P and the tweak with its padding, is computed once per call, so a round costs one
//! AES block. The rounds of several calls (the PANs of one answer) run side by side, their
//! blocks encrypted together: AES-NI takes a new block before the last one is done.
//!
//! How it is checked: against NIST's AES-256 samples (7, 8 and 9), and against `fpe` in a
//! differential property test over random keys, tweaks, radixes and every length this code
//! takes, both directions (`tests/fixed.rs`). Inputs it does not take go to `fpe`.

use aes::cipher::{BlockCipherEncrypt, KeyInit};
use aes::{Aes256, Block};

/// FF1-AES-256 in one radix, for inputs whose halves fit in a `u64`.
pub(super) struct FixedFf1 {
    aes: Aes256,
    radix: u32,
    /// By input length: `None` for the lengths this code does not take, up to the first
    /// one too long.
    shapes: Vec<Option<Shape>>,
}

/// Which way a call runs FF1.
#[derive(Clone, Copy)]
pub(super) enum Direction {
    Encrypt,
    Decrypt,
}

/// How many runs [`FixedFf1::rounds`] takes at once: more than AES-NI works on at a time.
pub(super) const BATCH: usize = 16;

/// One FF1 call between [`FixedFf1::prepare`] and [`FixedFf1::finish`].
#[derive(Clone, Copy, Default)]
pub(super) struct Run {
    shape: Shape,
    /// The CBC-MAC of P and of Q up to its last block, XORed with that block's start.
    mac: u128,
    /// The halves A and B as numbers.
    a: u64,
    b: u64,
}

/// What FF1 derives from the radix and the length n (steps 1, 3 and 4 of the algorithms).
#[derive(Clone, Copy, Default)]
struct Shape {
    /// Numerals in the first half, ⌊n/2⌋ (the second has the rest).
    u: usize,
    /// radix^u and radix^v: the moduli of even and odd rounds.
    radix_u: u128,
    radix_v: u128,
    /// Bytes of NUM(B) in each round's block: ⌈⌈v·log2(radix)⌉ / 8⌉, at most 8.
    b: usize,
    /// Bytes of the round function's output that are used: 4·⌈b/4⌉ + 4, at most 12.
    d: usize,
}

impl Shape {
    /// `None` when the halves do not fit in a `u64` (or n < 2, which FF1 does not take).
    fn new(radix: u32, n: usize) -> Option<Shape> {
        let (u, v) = (n / 2, n - n / 2);
        if u == 0 {
            return None;
        }
        let power =
            |count: usize| (0..count).try_fold(1u128, |acc, _| acc.checked_mul(u128::from(radix)));
        let radix_v = power(v).filter(|&p| p <= 1 << 64)?;
        let radix_u = power(u)?;
        // ⌈v·log2(radix)⌉ is exactly the bit length of radix^v − 1, with no floating point.
        let bits = 128 - (radix_v - 1).leading_zeros() as usize;
        let b = bits.div_ceil(8);
        Some(Shape {
            u,
            radix_u,
            radix_v,
            b,
            d: 4 * b.div_ceil(4) + 4,
        })
    }
}

impl FixedFf1 {
    /// `radix` from 2 to 256: numerals are bytes.
    pub(super) fn new(key: &[u8; 32], radix: u32) -> FixedFf1 {
        debug_assert!((2..=256).contains(&radix));
        let shapes = (0..)
            .map(|n| (n, Shape::new(radix, n)))
            .take_while(|(n, shape)| *n < 2 || shape.is_some())
            .map(|(_, shape)| shape)
            .collect();
        FixedFf1 {
            aes: Aes256::new(key.into()),
            radix,
            shapes,
        }
    }

    /// Starts FF1 over `numerals` under the tweak `tweak_parts` (laid end to end): the
    /// CBC-MAC over what every round shares, and the two halves as numbers. `None` when the
    /// numerals do not fit this code (the caller then uses `fpe`). Numerals must be below
    /// the radix, and the domain within NIST's minimum: the caller checks both.
    pub(super) fn prepare(&self, tweak_parts: &[&[u8]], numerals: &[u8]) -> Option<Run> {
        let n = numerals.len();
        let shape = *self.shapes.get(n)?.as_ref()?;
        let Shape { u, b, .. } = shape;
        let t: usize = tweak_parts.iter().map(|part| part.len()).sum();
        let (n32, t32) = (u32::try_from(n).ok()?, u32::try_from(t).ok()?);
        // P, then Q's tweak and zero padding: the same in every round.
        let mut p = [1, 2, 1, 0, 0, 0, 10, u as u8, 0, 0, 0, 0, 0, 0, 0, 0];
        p[3..6].copy_from_slice(&self.radix.to_be_bytes()[1..]);
        p[8..12].copy_from_slice(&n32.to_be_bytes());
        p[12..16].copy_from_slice(&t32.to_be_bytes());
        let mut mac = CbcMac::new(&self.aes);
        mac.absorb(&p);
        for part in tweak_parts {
            mac.absorb(part);
        }
        // (−t−b−1) mod 16 zero bytes leave room for exactly [i] and NUM(B) in the last block.
        mac.skip_zeros((16 - (t + b + 1) % 16) % 16);
        debug_assert_eq!(mac.filled, 15 - b);
        Some(Run {
            shape,
            mac: mac.state,
            a: self.num(&numerals[..u]),
            b: self.num(&numerals[u..]),
        })
    }

    /// FF1's 10 rounds over up to [`BATCH`] runs side by side: each round's AES blocks go
    /// to AES-NI together, which works on several at once (a run's own blocks must wait for
    /// one another; a PAN costs 13 in a row).
    pub(super) fn rounds(&self, direction: Direction, runs: &mut [Run]) {
        let mut blocks = [Block::default(); BATCH];
        let blocks = &mut blocks[..runs.len()];
        for round in 0..10u8 {
            let i = match direction {
                Direction::Encrypt => round,
                Direction::Decrypt => 9 - round,
            };
            for (block, run) in blocks.iter_mut().zip(runs.iter()) {
                // Q's last block: what the MAC holds of it (the end of the tweak and
                // padding), then [i], then NUM(B) (NUM(A) when decrypting) in b bytes.
                // NUM(B) is below radix^v ≤ 2^(8b), so it fits there.
                let hashed = match direction {
                    Direction::Encrypt => run.b,
                    Direction::Decrypt => run.a,
                };
                let last = (u128::from(i) << (8 * run.shape.b)) | u128::from(hashed);
                *block = Block::from((run.mac ^ last).to_be_bytes());
            }
            self.aes.encrypt_blocks(blocks);
            for (block, run) in blocks.iter().zip(runs.iter_mut()) {
                let r = u128::from_be_bytes((*block).into());
                let modulus = if i % 2 == 0 {
                    run.shape.radix_u
                } else {
                    run.shape.radix_v
                };
                // S is R's first d bytes (d ≤ 12 < 16: no further blocks); y = NUM(S).
                let y = (r >> (8 * (16 - run.shape.d))) % modulus;
                // Both halves are below their moduli, which are at most 2^64: the sums
                // below are under twice the modulus, so one subtraction reduces them.
                let reduce = |sum: u128| if sum >= modulus { sum - modulus } else { sum };
                match direction {
                    Direction::Encrypt => {
                        let c = reduce(u128::from(run.a) + y);
                        (run.a, run.b) = (run.b, c as u64);
                    }
                    Direction::Decrypt => {
                        let c = reduce(u128::from(run.b) + modulus - y);
                        (run.a, run.b) = (c as u64, run.a);
                    }
                }
            }
        }
    }

    /// Writes a run's result over the numerals it was prepared from.
    pub(super) fn finish(&self, run: &Run, numerals: &mut [u8]) {
        let (first, second) = numerals.split_at_mut(run.shape.u);
        self.write(run.a, first);
        self.write(run.b, second);
    }

    /// NUM_radix(X): the numerals read as a number, the first one most significant.
    fn num(&self, numerals: &[u8]) -> u64 {
        (numerals.iter()).fold(0, |acc, &numeral| {
            acc * u64::from(self.radix) + u64::from(numeral)
        })
    }

    /// STR_radix(x) into `numerals`, most significant first.
    fn write(&self, mut x: u64, numerals: &mut [u8]) {
        let radix = u64::from(self.radix);
        for numeral in numerals.iter_mut().rev() {
            *numeral = (x % radix) as u8;
            x /= radix;
        }
    }
}

/// CBC-MAC with a zero IV over bytes fed in any pieces. Blocks are big-endian `u128`s:
/// `state` is the last cipher block XORed with the `filled` bytes gathered of the next one.
struct CbcMac<'a> {
    aes: &'a Aes256,
    state: u128,
    filled: usize,
}

impl<'a> CbcMac<'a> {
    fn new(aes: &'a Aes256) -> CbcMac<'a> {
        CbcMac {
            aes,
            state: 0,
            filled: 0,
        }
    }

    fn absorb(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let take = data.len().min(16 - self.filled);
            let mut block = [0; 16];
            block[self.filled..self.filled + take].copy_from_slice(&data[..take]);
            self.state ^= u128::from_be_bytes(block);
            self.filled += take;
            data = &data[take..];
            if self.filled == 16 {
                self.state = encrypt(self.aes, self.state);
                self.filled = 0;
            }
        }
    }

    /// [`CbcMac::absorb`] of `count` zero bytes; `count` is below 16, so at most one block
    /// completes.
    fn skip_zeros(&mut self, count: usize) {
        self.filled += count;
        if self.filled >= 16 {
            self.state = encrypt(self.aes, self.state);
            self.filled -= 16;
        }
    }
}

fn encrypt(aes: &Aes256, block: u128) -> u128 {
    let mut block = Block::from(block.to_be_bytes());
    aes.encrypt_block(&mut block);
    u128::from_be_bytes(block.into())
}
