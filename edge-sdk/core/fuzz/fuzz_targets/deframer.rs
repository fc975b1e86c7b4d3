//! RFC 4571 deframer: arbitrary bytes, fed in arbitrary splits.
//!
//! Input layout: `data[0] % 16` = k, the next k bytes are a chunk-size pattern (cycled; see
//! [`chunk_size`]), the rest is the byte stream. k = 0 means one byte at a time.
//!
//! Invariants, for `Deframer<512>` and `Deframer<65535>`:
//! - the events (frames and `FrameTooLarge` errors) are the same whatever the split, and the
//!   same as an independent reference reading of the stream;
//! - every frame is 1..=N bytes; every call consumes at most its input, and at least one byte
//!   of a non-empty input;
//! - `is_mid_frame()` and `empty_frames()` at the end agree with the reference;
//! - after `reset()`, a well-formed frame goes through.
#![no_main]

use flowcloud_core::framing::{Deframer, FRAME_HEADER_LEN, FramingError, frame_into};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, PartialEq, Eq)]
enum Ev {
    Frame(Vec<u8>),
    TooLarge { len: usize, capacity: usize },
}

/// What a deframer must report for `stream`, read in one go without any buffering logic.
/// Returns (events, empty frames, whether the stream ends inside a frame).
fn reference(stream: &[u8], n: usize) -> (Vec<Ev>, u64, bool) {
    let mut events = Vec::new();
    let mut empty = 0;
    let mut pos = 0;
    loop {
        let rest = &stream[pos..];
        if rest.is_empty() {
            return (events, empty, false);
        }
        if rest.len() < FRAME_HEADER_LEN {
            return (events, empty, true);
        }
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        pos += FRAME_HEADER_LEN;
        if len == 0 {
            empty += 1;
            continue;
        }
        if len > n {
            events.push(Ev::TooLarge { len, capacity: n });
            if stream.len() - pos < len {
                // The skip runs past the end of the stream.
                return (events, empty, true);
            }
            pos += len;
            continue;
        }
        if stream.len() - pos < len {
            return (events, empty, true);
        }
        events.push(Ev::Frame(stream[pos..pos + len].to_vec()));
        pos += len;
    }
}

fn chunk_size(b: u8) -> usize {
    // Mostly small chunks (they stress reassembly), sometimes large ones (fast path).
    if b & 0x80 == 0 {
        usize::from(b) + 1
    } else {
        usize::from(b & 0x7f) * 97 + 1
    }
}

/// Feeds `chunk` to `d` until it is used up, recording events.
fn feed<const N: usize>(d: &mut Deframer<N>, mut chunk: &[u8], out: &mut Vec<Ev>) {
    while !chunk.is_empty() {
        let (used, res) = d.push(chunk);
        match res {
            Ok(Some(frame)) => {
                assert!(!frame.is_empty(), "empty frame returned");
                assert!(
                    frame.len() <= N,
                    "frame of {} bytes from Deframer<{N}>",
                    frame.len()
                );
                out.push(Ev::Frame(frame.to_vec()));
            }
            Ok(None) => {}
            Err(FramingError::FrameTooLarge { len, capacity }) => {
                assert!(
                    len > N && capacity == N,
                    "FrameTooLarge {{ len: {len}, capacity: {capacity} }} from Deframer<{N}>"
                );
                out.push(Ev::TooLarge { len, capacity });
            }
            Err(e) => panic!("unexpected deframer error {e:?}"),
        }
        assert!(
            used <= chunk.len(),
            "consumed {used} of a {}-byte input",
            chunk.len()
        );
        assert!(used > 0, "no progress on a {}-byte input", chunk.len());
        chunk = &chunk[used..];
    }
}

fn check<const N: usize>(pattern: &[u8], stream: &[u8]) {
    let (expected, expected_empty, expected_mid) = reference(stream, N);

    // One shot.
    let mut whole = Deframer::<N>::new();
    let mut whole_events = Vec::new();
    feed(&mut whole, stream, &mut whole_events);
    assert_eq!(
        whole_events, expected,
        "one-shot push disagrees with the reference"
    );
    assert_eq!(whole.empty_frames(), expected_empty);
    assert_eq!(whole.is_mid_frame(), expected_mid);

    // Split by the pattern.
    let mut split = Deframer::<N>::new();
    let mut split_events = Vec::new();
    let mut rest = stream;
    let mut i = 0;
    while !rest.is_empty() {
        let size = pattern
            .get(i % pattern.len().max(1))
            .map_or(1, |&b| chunk_size(b))
            .min(rest.len());
        feed(&mut split, &rest[..size], &mut split_events);
        // An empty push is always allowed and never yields anything.
        let (used, res) = split.push(&[]);
        assert_eq!(used, 0);
        assert_eq!(res, Ok(None));
        rest = &rest[size..];
        i += 1;
    }
    assert_eq!(
        split_events, expected,
        "split push disagrees with the reference"
    );
    assert_eq!(split.empty_frames(), expected_empty);
    assert_eq!(split.is_mid_frame(), expected_mid);

    // After a reset the deframer is at a frame boundary again.
    split.reset();
    assert!(!split.is_mid_frame());
    let mut buf = [0u8; 8];
    let n = frame_into(b"ok", &mut buf).expect("2-byte packet frames");
    let mut after = Vec::new();
    feed(&mut split, &buf[..n], &mut after);
    assert_eq!(after, [Ev::Frame(b"ok".to_vec())]);
}

fuzz_target!(|data: &[u8]| {
    let Some((&k, rest)) = data.split_first() else {
        return;
    };
    let k = usize::from(k % 16).min(rest.len());
    let (pattern, stream) = rest.split_at(k);
    check::<512>(pattern, stream);
    check::<65535>(pattern, stream);
});
