//! Throughput of the protocol core's hot paths, against `memcpy` as the roofline.
//!
//! The input is one GOP of synthetic H.264: an IDR access unit of about 200 KB (with a real
//! SPS and PPS in front, so the depacketizer's SPS check runs) and 29 P access units of
//! 20–60 KB each. NAL bodies are seeded pseudo-random bytes with emulation prevention applied,
//! so they are valid NAL units (no `00 00 0x` inside, last byte non-zero), behind 4-byte
//! start codes.
//!
//! - `packetize+frame`: [`Packetizer`] with `next_framed` into a reused buffer, appended to a
//!   reused wire buffer: the TCP byte stream the camera writes.
//! - `deframe+depacketize`: that byte stream fed in 64 KiB reads (as a socket delivers it)
//!   through a boxed `Deframer::<65535>` into a [`Depacketizer`], draining every event.
//! - `memcpy`: copying the same number of bytes, the baseline both are compared with.
//!
//! Every throughput is in bytes of access units (`Throughput::Bytes`), so criterion reports
//! the three side by side. A second group sweeps the payload budget (200, 1400, 64000).
//!
//! After criterion, a short self-timed loop (best of 5 runs of about 0.2 s) prints a summary
//! in GB/s and as a multiple of `memcpy`, with a PASS/MISS line against the design target of
//! at least 1 GB/s per core for each path. In `--test` mode (CI's smoke run) the summary is
//! skipped.
#![allow(clippy::print_stdout)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use flowcloud_core::framing::Deframer;
use flowcloud_core::h264::{
    Depacketizer, DepacketizerConfig, Event, MAX_ACCESS_UNIT_BYTES, Packetizer, PacketizerConfig,
};

/// SPS of a 64x64 baseline stream from x264.
const SPS: [u8; 26] = [
    0x67, 0x42, 0xc0, 0x15, 0xd9, 0x04, 0x26, 0xc0, 0x5a, 0x83, 0x03, 0x03, 0x52, 0x80, 0x00, 0x00,
    0x03, 0x00, 0x80, 0x00, 0x00, 0x1e, 0x47, 0x8b, 0x17, 0x24,
];
/// The PPS that goes with it.
const PPS: [u8; 4] = [0x68, 0xcb, 0x8c, 0xb2];
/// Bytes handed to the deframer per call, like one socket read.
const READ_LEN: usize = 64 * 1024;
/// The design target for each path (DESIGN.md, "Performance targets").
const TARGET_GBPS: f64 = 1.0;
/// Access units in the synthetic GOP (1 IDR, the rest P).
const GOP: usize = 30;
/// 90 kHz ticks between access units (30 fps).
const TICKS_PER_FRAME: u32 = 3000;

/// splitmix64: small, seeded, good enough for filler bytes.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo) as u64) as usize
    }
}

/// Appends a start code and a NAL unit of about `body_len` bytes after `header`, with
/// emulation prevention applied to the random body and a non-zero last byte.
fn push_nal(out: &mut Vec<u8>, header: u8, body_len: usize, rng: &mut Rng) {
    out.extend_from_slice(&[0, 0, 0, 1, header]);
    let mut zeros = 0;
    let mut word = 0u64;
    for i in 0..body_len {
        if i % 8 == 0 {
            word = rng.next_u64();
        }
        let mut byte = (word >> (8 * (i % 8))) as u8;
        if i + 1 == body_len && byte == 0 {
            byte = 0x80; // rbsp_stop_one_bit-like: a NAL unit never ends in zero
        }
        if zeros >= 2 && byte <= 3 {
            out.push(3);
            zeros = 0;
        }
        out.push(byte);
        zeros = if byte == 0 { zeros + 1 } else { 0 };
    }
}

/// One GOP: an IDR access unit (SPS, PPS, ~200 KB slice) and `GOP - 1` P access units of
/// 20–60 KB.
fn make_stream() -> Vec<Vec<u8>> {
    let mut rng = Rng(0x5eed_f10c);
    let mut aus = Vec::with_capacity(GOP);
    let mut idr = Vec::new();
    idr.extend_from_slice(&[0, 0, 0, 1]);
    idr.extend_from_slice(&SPS);
    idr.extend_from_slice(&[0, 0, 0, 1]);
    idr.extend_from_slice(&PPS);
    push_nal(&mut idr, 0x65, 200_000, &mut rng);
    aus.push(idr);
    for _ in 1..GOP {
        let mut p = Vec::new();
        push_nal(&mut p, 0x41, rng.range(20_000, 60_000), &mut rng);
        aus.push(p);
    }
    aus
}

/// Packetizes and frames every access unit into `wire` (cleared first).
fn packetize_and_frame(
    packetizer: &mut Packetizer,
    aus: &[Vec<u8>],
    buf: &mut [u8],
    wire: &mut Vec<u8>,
) {
    wire.clear();
    for (i, au) in aus.iter().enumerate() {
        let mut packets = packetizer
            .packetize(au, i as u32 * TICKS_PER_FRAME)
            .expect("valid access unit");
        while let Some(len) = packets
            .next_framed(buf)
            .expect("buffer sized from max_packet_len")
        {
            wire.extend_from_slice(&buf[..len]);
        }
    }
}

/// Deframes `wire` in `READ_LEN` reads and depacketizes it with a fresh depacketizer over
/// `au_buf` (fresh, so every run starts a stream); returns access units and their bytes.
fn deframe_and_depacketize(
    deframer: &mut Deframer<65535>,
    au_buf: &mut [u8],
    wire: &[u8],
) -> (usize, usize) {
    deframer.reset();
    let mut depacketizer = Depacketizer::new(au_buf, DepacketizerConfig::default());
    let (mut count, mut bytes) = (0, 0);
    for mut read in wire.chunks(READ_LEN) {
        while !read.is_empty() {
            let (used, frame) = deframer.push(read);
            if let Some(packet) = frame.expect("well-formed stream") {
                depacketizer.push(packet).expect("well-formed packet");
                while let Some(event) = depacketizer.poll_event() {
                    match event {
                        Event::AccessUnit(au) => {
                            count += 1;
                            bytes += black_box(au.data.len());
                        }
                        Event::Loss(loss) => panic!("loss in a clean stream: {loss:?}"),
                    }
                }
            }
            read = &read[used..];
        }
    }
    (count, bytes)
}

/// Everything both paths need, built once per payload budget.
struct Fixture {
    aus: Vec<Vec<u8>>,
    total: usize,
    packetizer: Packetizer,
    packet_buf: Vec<u8>,
    wire: Vec<u8>,
    deframer: Box<Deframer<65535>>,
    au_buf: Vec<u8>,
}

impl Fixture {
    fn new(aus: Vec<Vec<u8>>, payload_budget: usize) -> Self {
        let total = aus.iter().map(Vec::len).sum();
        let packetizer = Packetizer::new(PacketizerConfig {
            payload_budget,
            ..PacketizerConfig::default()
        })
        .expect("valid budget");
        let packet_buf = vec![0u8; packetizer.max_packet_len() + 2];
        let mut fixture = Self {
            aus,
            total,
            packetizer,
            packet_buf,
            wire: Vec::with_capacity(total * 2 + (1 << 16)),
            deframer: Box::new(Deframer::new()),
            au_buf: vec![0u8; Depacketizer::<Vec<u8>>::buffer_len_for(MAX_ACCESS_UNIT_BYTES)],
        };
        fixture.packetize();
        // Check the round trip once, outside the timed code.
        let (count, bytes) = fixture.depacketize();
        assert_eq!(
            (count, bytes),
            (fixture.aus.len(), total),
            "round trip at budget {payload_budget}"
        );
        fixture
    }

    fn packetize(&mut self) -> usize {
        packetize_and_frame(
            &mut self.packetizer,
            &self.aus,
            &mut self.packet_buf,
            &mut self.wire,
        );
        self.wire.len()
    }

    fn depacketize(&mut self) -> (usize, usize) {
        deframe_and_depacketize(&mut self.deframer, &mut self.au_buf, &self.wire)
    }
}

fn throughput(c: &mut Criterion, aus: &[Vec<u8>]) {
    let mut fixture = Fixture::new(aus.to_vec(), 1400);
    let total = fixture.total;
    let src: Vec<u8> = aus.concat();
    let mut dst = vec![0u8; total];

    let mut group = c.benchmark_group("throughput");
    group.throughput(Throughput::Bytes(total as u64));
    group.bench_function("packetize+frame", |b| {
        b.iter(|| black_box(fixture.packetize()))
    });
    group.bench_function("deframe+depacketize", |b| {
        b.iter(|| black_box(fixture.depacketize()))
    });
    group.bench_function("memcpy", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&src));
            black_box(&mut dst);
        });
    });
    group.finish();
}

fn budget_sweep(c: &mut Criterion, aus: &[Vec<u8>]) {
    let mut group = c.benchmark_group("payload_budget");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    for budget in [200, 1400, 64_000] {
        let mut fixture = Fixture::new(aus.to_vec(), budget);
        group.throughput(Throughput::Bytes(fixture.total as u64));
        group.bench_with_input(
            BenchmarkId::new("packetize+frame", budget),
            &budget,
            |b, _| {
                b.iter(|| black_box(fixture.packetize()));
            },
        );
        group.bench_with_input(
            BenchmarkId::new("deframe+depacketize", budget),
            &budget,
            |b, _| {
                b.iter(|| black_box(fixture.depacketize()));
            },
        );
    }
    group.finish();
}

/// Best bytes per second of `f` (which handles `bytes` per call) over 5 runs of ~0.2 s.
fn best_rate(bytes: usize, mut f: impl FnMut()) -> f64 {
    let mut best = 0.0f64;
    for _ in 0..5 {
        let start = Instant::now();
        let mut calls = 0u32;
        while start.elapsed() < Duration::from_millis(200) {
            f();
            calls += 1;
        }
        let rate = bytes as f64 * f64::from(calls) / start.elapsed().as_secs_f64();
        best = best.max(rate);
    }
    best
}

fn summary(aus: &[Vec<u8>]) {
    let mut fixture = Fixture::new(aus.to_vec(), 1400);
    let total = fixture.total;
    let src: Vec<u8> = aus.concat();
    let mut dst = vec![0u8; total];

    let memcpy = best_rate(total, || {
        dst.copy_from_slice(black_box(&src));
        black_box(&mut dst);
    });
    let packetize = best_rate(total, || {
        black_box(fixture.packetize());
    });
    let depacketize = best_rate(total, || {
        black_box(fixture.depacketize());
    });

    let gb = |rate: f64| rate / 1e9;
    println!();
    println!(
        "summary: {} access units, {total} bytes, payload budget 1400, best of 5 runs of 0.2 s, one core",
        aus.len()
    );
    println!("  memcpy:              {:6.2} GB/s", gb(memcpy));
    for (name, rate) in [
        ("packetize+frame", packetize),
        ("deframe+depacketize", depacketize),
    ] {
        println!(
            "  {:<20} {:6.2} GB/s ({:.2}× memcpy)",
            format!("{name}:"),
            gb(rate),
            rate / memcpy
        );
    }
    println!(
        "target: ≥ {TARGET_GBPS} GB/s per core for each path (DESIGN.md, performance targets)"
    );
    for (name, rate) in [
        ("packetize+frame", packetize),
        ("deframe+depacketize", depacketize),
    ] {
        let verdict = if gb(rate) >= TARGET_GBPS {
            "PASS"
        } else {
            "MISS"
        };
        println!("  {verdict} {name}: {:.2} GB/s", gb(rate));
    }
}

fn main() {
    let aus = make_stream();
    let mut criterion = Criterion::default().configure_from_args();
    throughput(&mut criterion, &aus);
    budget_sweep(&mut criterion, &aus);
    criterion.final_summary();

    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--test" || a == "--list") {
        println!("summary skipped in --test/--list mode");
        return;
    }
    summary(&aus);
}
