//! A fuzz harness for the ISO 8583 decoder that runs on stable under `cargo test`: from a
//! fixed seed, a bounded number of mutations of valid messages (bit flips, huge length
//! prefixes, cuts, insertions, splices) and of plain random bytes, for three specs that
//! between them use every encoding. Each input must decode or fail cleanly: no panic, and
//! no allocation larger than the input allows, whatever a length prefix claims. What does
//! decode must encode back to a message that decodes the same.
//!
//! `CORRIDOR_FUZZ_ITERATIONS` (default 100000 per spec) and `CORRIDOR_FUZZ_SEED` run it
//! longer or elsewhere.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};

use corridor::iso8583::{CodecError, Message, Spec};

/// The system allocator, noting the largest single allocation and the bytes allocated by
/// the current thread while it measures.
struct Measuring;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    static TOTAL: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with`: never fails on a const thread local without a destructor, and never
    // allocates, so it is safe inside the allocator.
    let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
    let _ = TOTAL.try_with(|total| total.set(total.get() + size));
}

// SAFETY: every call is forwarded unchanged to `System`, which upholds `GlobalAlloc`'s
// contract; `note` only updates thread-local counters.
unsafe impl GlobalAlloc for Measuring {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller's layout, as `GlobalAlloc::alloc` requires.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: `ptr` and `layout` come from this allocator, that is from `System`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Measuring = Measuring;

/// Runs `f`, returning its result, its largest allocation and its total bytes allocated.
fn measured<T>(f: impl FnOnce() -> T) -> (T, usize, usize) {
    LARGEST.with(|l| l.set(0));
    TOTAL.with(|t| t.set(0));
    let result = f();
    (result, LARGEST.with(Cell::get), TOTAL.with(Cell::get))
}

/// Headroom over what the input allows: a node of the field map, an error's field name.
const SLACK: usize = 512;

fn iterations() -> usize {
    std::env::var("CORRIDOR_FUZZ_ITERATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000)
}

fn seed() -> u64 {
    std::env::var("CORRIDOR_FUZZ_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0x1503_8583)
}

const DEMO: &str = include_str!("../conf/iso8583/demo-host.toml");

/// BCD MTI, binary bitmap, BCD numbers, BCD track 2, EBCDIC text, binary lengths.
const MAINFRAME: &str = r#"
mti = "bcd"
[fields]
2  = { name = "pan", type = "n", length = "llvar", max = 19, encoding = "bcd" }
3  = { name = "processing_code", type = "n", length = 6, encoding = "bcd" }
4  = { name = "amount", type = "n", length = 12, encoding = "bcd" }
11 = { name = "stan", type = "n", length = 6, encoding = "bcd" }
35 = { name = "track2", type = "z", length = "llvar", max = 37, encoding = "bcd", pad = "right" }
39 = { name = "response_code", type = "an", length = 2, encoding = "ebcdic" }
41 = { name = "terminal_id", type = "ans", length = 8, encoding = "ebcdic" }
43 = { name = "card_acceptor", type = "ans", length = "lllvar", max = 40, encoding = "ebcdic" }
49 = { name = "currency", type = "n", length = 3, encoding = "bcd" }
52 = { name = "pin_block", type = "b", length = 8 }
55 = { name = "icc", type = "b", length = "lllvar", max = 255, length_encoding = "binary" }
102 = { name = "account", type = "ans", length = "llvar", max = 28, encoding = "ebcdic", length_encoding = "bcd" }
"#;

/// EBCDIC MTI and hex bitmaps, ASCII fields with long LLLVARs and EBCDIC length prefixes.
const EBCDIC_HEX: &str = r#"
mti = "ebcdic"
bitmap = "ebcdic_hex"
[fields]
2  = { name = "pan", type = "n", length = "llvar", max = 19, length_encoding = "ebcdic" }
7  = { name = "transmission_time", type = "n", length = 10, encoding = "ebcdic" }
11 = { name = "stan", type = "n", length = 6 }
39 = { name = "response_code", type = "an", length = 2 }
48 = { name = "additional_data", type = "ans", length = "lllvar", max = 999, length_encoding = "ebcdic" }
62 = { name = "private", type = "ans", length = "lllvar", max = 999 }
70 = { name = "network_code", type = "n", length = 3, encoding = "ebcdic" }
127 = { name = "reserved", type = "b", length = "lllvar", max = 999, length_encoding = "bcd" }
"#;

fn message(mti: &[u8; 4], fields: &[(u8, &[u8])]) -> Message {
    let mut msg = Message::new(*mti);
    for (field, value) in fields {
        msg.set(*field, value.to_vec());
    }
    msg
}

fn seeds(spec: &Spec, messages: &[Message]) -> Vec<Vec<u8>> {
    messages.iter().map(|m| spec.encode(m).unwrap()).collect()
}

fn demo_seeds(spec: &Spec) -> Vec<Vec<u8>> {
    let request: &[(u8, &[u8])] = &[
        (2, b"4761739001010119"),
        (3, b"000000"),
        (4, b"000000001000"),
        (7, b"1231235959"),
        (11, b"000042"),
        (12, b"235959"),
        (13, b"1231"),
        (14, b"2712"),
        (22, b"010"),
        (32, b"4711"),
        (37, b"512312000042"),
        (41, b"T0000001"),
        (42, b"M00000000000001"),
        (49, b"978"),
    ];
    let mut answer = message(b"0110", request);
    answer.set(38, "A1B2C3");
    answer.set(39, "00");
    let mut reversal = message(b"0400", request);
    reversal.set(90, "010000004212312359590000000471100000000000");
    let echo = message(
        b"0800",
        &[(7, b"1231235959"), (11, b"000001"), (70, b"301")],
    );
    seeds(spec, &[message(b"0100", request), answer, reversal, echo])
}

fn mainframe_seeds(spec: &Spec) -> Vec<Vec<u8>> {
    let request: &[(u8, &[u8])] = &[
        (2, b"476173900101011"),
        (3, b"000000"),
        (4, b"000000001000"),
        (11, b"000042"),
        (35, b"476173900101011=2512101"),
        (41, b"ATM 0001"),
        (43, b"Bank of Examples, Main Street"),
        (49, b"978"),
        (52, &[0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF]),
        (
            55,
            &[
                0x9F, 0x26, 0x08, 0, 1, 2, 3, 4, 5, 6, 7, 0x9F, 0x27, 0x01, 0x80,
            ],
        ),
        (102, b"DE89370400440532013000"),
    ];
    let mut answer = message(b"0210", request);
    answer.set(39, "05");
    let short = message(
        b"0210",
        &[(11, b"000042"), (39, b"00"), (43, b"A"), (55, &[0x9F])],
    );
    seeds(spec, &[message(b"0200", request), answer, short])
}

fn ebcdic_hex_seeds(spec: &Spec) -> Vec<Vec<u8>> {
    let long = vec![b'x'; 400];
    let binary: Vec<u8> = (0..=255).collect();
    let request = message(
        b"0200",
        &[
            (2, b"6011000990139424"),
            (7, b"1231235959"),
            (11, b"000042"),
            (48, &long),
            (62, b"private use"),
            (127, &binary),
        ],
    );
    let echo = message(
        b"0800",
        &[(7, b"1231235959"), (11, b"000001"), (70, b"301")],
    );
    // Short LLLVARs: a prefix mutated to 999 then claims far more than the input holds.
    let short = message(
        b"0210",
        &[
            (11, b"000042"),
            (39, b"00"),
            (48, b"ok"),
            (62, b"x"),
            (127, &[0xA5]),
        ],
    );
    seeds(spec, &[request, echo, short])
}

/// One random change to a valid message.
fn mutate(rng: &mut fastrand::Rng, input: &mut Vec<u8>, others: &[Vec<u8>]) {
    const INTERESTING: [u8; 10] = [0x00, 0xFF, 0x7F, 0x80, b'9', b'0', 0xF9, 0x99, 0x0F, 0xC1];
    let len = input.len();
    match rng.u8(0..9) {
        0 if len > 0 => {
            let i = rng.usize(..len);
            input[i] ^= 1 << rng.u8(0..8);
        }
        1 if len > 0 => {
            let i = rng.usize(..len);
            input[i] = rng.u8(..);
        }
        2 if len > 0 => {
            let i = rng.usize(..len);
            input[i] = INTERESTING[rng.usize(..INTERESTING.len())];
        }
        // A length prefix that claims far more than there is, in every prefix encoding.
        3 if len > 3 => {
            let i = rng.usize(..len - 2);
            let claim: &[u8] = match rng.u8(0..5) {
                0 => b"999",
                1 => b"99",
                2 => &[0xFF, 0xFF],
                3 => &[0x09, 0x99],
                _ => &[0xF9, 0xF9, 0xF9],
            };
            let end = (i + claim.len()).min(len);
            input[i..end].copy_from_slice(&claim[..end - i]);
        }
        4 => {
            let at = rng.usize(..=len);
            let count = rng.usize(1..16);
            let bytes: Vec<u8> = (0..count).map(|_| rng.u8(..)).collect();
            input.splice(at..at, bytes);
        }
        5 if len > 0 => {
            let start = rng.usize(..len);
            let end = rng.usize(start..=len.min(start + 16));
            input.drain(start..end);
        }
        6 => input.truncate(rng.usize(..=len)),
        7 if len > 0 => {
            let start = rng.usize(..len);
            let end = rng.usize(start..=len);
            let copy = input[start..end].to_vec();
            let at = rng.usize(..=len);
            input.splice(at..at, copy);
        }
        _ => {
            let other = &others[rng.usize(..others.len())];
            let cut = rng.usize(..=len);
            let from = rng.usize(..=other.len());
            input.truncate(cut);
            input.extend_from_slice(&other[from..]);
        }
    }
}

/// What the decoder made of the inputs.
#[derive(Default)]
struct Outcomes {
    decoded: usize,
    /// Distinct kinds of errors seen, to show the inputs reach past the first bytes.
    errors: BTreeSet<String>,
}

/// Decodes `input` under measure. A `canonical` spec has one wire form per message, so what
/// decodes must encode back to the very same bytes.
fn check(spec: &Spec, canonical: bool, input: &[u8], outcomes: &mut Outcomes) {
    let decoded = catch_unwind(AssertUnwindSafe(|| measured(|| spec.decode(input))));
    let Ok((result, largest, total)) = decoded else {
        panic!("decode panicked on {}", hex::encode(input));
    };
    // BCD doubles a field's bytes as digits; nothing else may grow with the input.
    let allowed = 2 * input.len() + SLACK;
    assert!(
        largest <= allowed,
        "one allocation of {largest} bytes for {} input bytes: {}",
        input.len(),
        hex::encode(input)
    );
    let all_fields = 129 * SLACK;
    assert!(
        total <= 4 * input.len() + all_fields,
        "{total} bytes allocated for {} input bytes: {}",
        input.len(),
        hex::encode(input)
    );
    match result {
        Ok(msg) => {
            outcomes.decoded += 1;
            let again = spec.encode(&msg).unwrap_or_else(|e| {
                panic!(
                    "{e}: a decoded message does not encode: {}",
                    hex::encode(input)
                )
            });
            if canonical {
                assert_eq!(again, input);
            } else {
                assert_eq!(
                    spec.decode(&again).as_ref(),
                    Ok(&msg),
                    "{}",
                    hex::encode(input)
                );
            }
        }
        Err(e) => {
            let variant = |debug: String| debug.split('(').next().unwrap_or_default().to_owned();
            outcomes.errors.insert(match &e {
                CodecError::Field { error, .. } => {
                    format!("field {}", variant(format!("{error:?}")))
                }
                other => variant(format!("{other:?}")),
            });
        }
    }
}

fn fuzz(name: &str, spec_text: &str, canonical: bool, seeds: fn(&Spec) -> Vec<Vec<u8>>, salt: u64) {
    let spec = Spec::from_toml(spec_text).unwrap();
    let seeds = seeds(&spec);
    let mut rng = fastrand::Rng::with_seed(seed() ^ salt);
    let mut outcomes = Outcomes::default();
    for seed in &seeds {
        check(&spec, canonical, seed, &mut outcomes);
    }
    assert_eq!(outcomes.decoded, seeds.len(), "{name}: the seeds decode");
    let runs = iterations();
    for _ in 0..runs {
        let input = if rng.u8(0..10) == 0 {
            let len = rng.usize(0..600);
            (0..len).map(|_| rng.u8(..)).collect()
        } else {
            let mut input = seeds[rng.usize(..seeds.len())].clone();
            for _ in 0..rng.usize(1..5) {
                mutate(&mut rng, &mut input, &seeds);
            }
            input
        };
        check(&spec, canonical, &input, &mut outcomes);
    }
    eprintln!(
        "{name}: {runs} inputs, {} decoded, errors: {:?}",
        outcomes.decoded, outcomes.errors
    );
    // The harness must reach deep into messages, not stop at the MTI every time.
    assert!(
        outcomes.decoded > seeds.len(),
        "{name}: no mutation decoded"
    );
    assert!(
        outcomes.errors.len() >= 5,
        "{name}: only {:?}",
        outcomes.errors
    );
}

#[test]
fn demo_host_decoder_survives_mutations() {
    fuzz("demo", DEMO, true, demo_seeds, 1);
}

#[test]
fn mainframe_decoder_survives_mutations() {
    fuzz("mainframe", MAINFRAME, false, mainframe_seeds, 2);
}

#[test]
fn ebcdic_hex_decoder_survives_mutations() {
    fuzz("ebcdic_hex", EBCDIC_HEX, false, ebcdic_hex_seeds, 3);
}

/// The harness can fail: a length prefix of 999 on a 4-byte input may not allocate for 999.
#[test]
fn the_allocation_bound_is_measured() {
    let (_, largest, _) = measured(|| vec![0u8; 999]);
    assert!(largest >= 999);
    let spec = Spec::from_toml(EBCDIC_HEX).unwrap();
    let mut input = b"\xF0\xF2\xF0\xF0".to_vec();
    // Only field 62, an LLLVAR.
    input.extend_from_slice(b"\xF0\xF0\xF0\xF0\xF0\xF0\xF0\xF0\xF0\xF0\xF0\xF0\xF0\xF0\xF0\xF4");
    input.extend_from_slice(b"999");
    let (result, largest, _) = measured(|| spec.decode(&input));
    assert!(result.is_err());
    assert!(largest <= 2 * input.len() + SLACK, "{largest}");
}
