//! The `FCSG` segmentation result: parsing arbitrary APP data, and a structured write → parse
//! → decode round trip from the same input (read through `arbitrary`).
//!
//! Raw bytes, invariants when `ResultView::parse` accepts them:
//! - the histogram has `class_count` entries; wrapped in an RTCP APP packet (when 32-bit
//!   aligned) the data reads back identically through `parse_compound` + `from_app`;
//! - decoding the class map into a bounded buffer (64 KiB) either reports `BufferTooSmall`
//!   (exactly when width × height exceeds it), or fails with a typed error, or yields
//!   width × height class ids, all below `class_count` when it is non-zero, writing nothing
//!   past width × height;
//! - writing the parsed result back with `write_app` (histogram, and the decoded map) takes no
//!   more room than the original, and parsing that gives the same fields, histogram and map;
//!   byte-identical to the original when it had no class map and no padding.
//!
//! Structured: an arbitrary result (histogram of 0..=300 classes, optional class map built from
//! runs) either is refused by `write_app` for a reason it names (too many classes, map size,
//! class out of range, too large, buffer too small — each checked against the input), or
//! parses and decodes back to exactly the input; `encoded_len` is what was written.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use flowcloud_core::results::{
    ClassMap, FCSG_NAME, FCSG_SUBTYPE, MAX_CLASSES, MAX_RESULT_PACKET_LEN, ResultError, ResultView,
    SegmentationResult,
};
use flowcloud_core::rtcp::{App, RtcpPacket, parse_compound};
use libfuzzer_sys::fuzz_target;

const DECODE_LIMIT: usize = 64 << 10;

fn write_and_view<'o>(result: &SegmentationResult<'_>, out: &'o mut [u8]) -> ResultView<'o> {
    let n = result.write_app(0x5eed, out).expect("result writes");
    assert_eq!(n, result.encoded_len(), "encoded_len vs bytes written");
    assert_eq!(n % 4, 0);
    let packet = &out[..n];
    let mut packets = parse_compound(packet);
    let Some(Ok(RtcpPacket::App(app))) = packets.next() else {
        panic!("written result is not one APP packet");
    };
    assert!(packets.next().is_none());
    assert_eq!(
        (app.name, app.subtype, app.ssrc),
        (FCSG_NAME, FCSG_SUBTYPE, 0x5eed)
    );
    ResultView::from_app(&app).expect("written result parses")
}

fn raw(data: &[u8]) {
    let Ok(view) = ResultView::parse(data) else {
        return;
    };
    let histogram: Vec<u32> = view.histogram().collect();
    assert_eq!(histogram.len(), usize::from(view.class_count()));
    assert!(histogram.len() <= MAX_CLASSES);
    assert_eq!(view.histogram().len(), histogram.len());

    // Through an RTCP APP packet.
    if data.len() % 4 == 0 && data.len() <= MAX_RESULT_PACKET_LEN - 12 {
        let app = App {
            subtype: FCSG_SUBTYPE,
            ssrc: 7,
            name: FCSG_NAME,
            data,
        };
        let mut buf = vec![0u8; 12 + data.len()];
        let n = app.write(&mut buf).expect("aligned APP writes");
        let Some(Ok(RtcpPacket::App(parsed))) = parse_compound(&buf[..n]).next() else {
            panic!("APP did not parse back");
        };
        assert_eq!(ResultView::from_app(&parsed), Ok(view));
        let other = App {
            name: *b"FCSH",
            ..parsed
        };
        assert!(matches!(
            ResultView::from_app(&other),
            Err(ResultError::NotFcsg { .. })
        ));
    }

    // Decode into a bounded buffer; a canary byte after the map checks nothing more is written.
    let mut out = vec![0xAAu8; DECODE_LIMIT + 1];
    let decoded = match view.class_map_size() {
        None => {
            assert_eq!(
                view.decode_class_map(&mut out),
                Err(ResultError::NoClassMap)
            );
            None
        }
        Some((w, h)) => {
            let pixels = usize::from(w) * usize::from(h);
            let res = view.decode_class_map(&mut out[..DECODE_LIMIT]);
            if pixels > DECODE_LIMIT {
                assert_eq!(
                    res,
                    Err(ResultError::BufferTooSmall {
                        needed: pixels,
                        capacity: DECODE_LIMIT
                    })
                );
                return;
            }
            assert_eq!(out[pixels], 0xAA, "decode wrote past width × height");
            match res {
                Ok(size) => {
                    assert_eq!(size, (w, h));
                    let map = out[..pixels].to_vec();
                    if !histogram.is_empty() {
                        assert!(
                            map.iter().all(|&c| usize::from(c) < histogram.len()),
                            "class id above class_count"
                        );
                    }
                    // An exact-size buffer works too.
                    let mut exact = vec![0u8; pixels];
                    assert_eq!(view.decode_class_map(&mut exact), Ok((w, h)));
                    assert_eq!(exact, map);
                    Some((w, h, map))
                }
                Err(
                    ResultError::RleTruncated { .. }
                    | ResultError::VarintOverflow { .. }
                    | ResultError::ZeroRun { .. }
                    | ResultError::RunsMismatch { .. }
                    | ResultError::ClassOutOfRange { .. },
                ) => return,
                Err(e) => panic!("unexpected decode error {e:?}"),
            }
        }
    };

    // Write it back and read it again.
    let result = SegmentationResult {
        rtp_timestamp: view.rtp_timestamp,
        decode_us: view.decode_us,
        infer_us: view.infer_us,
        post_us: view.post_us,
        map_width: view.map_width,
        map_height: view.map_height,
        histogram: &histogram,
        class_map: decoded.as_ref().map(|(w, h, map)| ClassMap {
            width: *w,
            height: *h,
            classes: map,
        }),
    };
    // The writer's runs are minimal and merged, so the data can only shrink (to the padding).
    assert!(
        result.encoded_len() <= 12 + data.len().div_ceil(4) * 4,
        "re-encoding a {}-byte result takes {} bytes",
        data.len(),
        result.encoded_len()
    );
    let mut buf = vec![0u8; result.encoded_len()];
    let again = write_and_view(&result, &mut buf);
    assert_eq!(
        (
            again.rtp_timestamp,
            again.decode_us,
            again.infer_us,
            again.post_us,
            again.map_width,
            again.map_height
        ),
        (
            view.rtp_timestamp,
            view.decode_us,
            view.infer_us,
            view.post_us,
            view.map_width,
            view.map_height
        )
    );
    assert_eq!(again.histogram().collect::<Vec<_>>(), histogram);
    assert_eq!(again.class_map_size(), view.class_map_size());
    if let Some((w, h, map)) = &decoded {
        let mut out = vec![0u8; map.len()];
        assert_eq!(again.decode_class_map(&mut out), Ok((*w, *h)));
        assert_eq!(&out, map);
    } else if data.len() % 4 == 0 {
        assert_eq!(
            &buf[12..],
            data,
            "re-encoded result without class map differs"
        );
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    rtp_timestamp: u32,
    decode_us: u32,
    infer_us: u32,
    post_us: u32,
    map_width: u16,
    map_height: u16,
    histogram: Vec<u32>,
    /// Extra classes beyond the histogram, to exceed 256 cheaply.
    extra_classes: u8,
    map: Option<MapSpec>,
    buffer_short_by: Option<u8>,
}

#[derive(Arbitrary, Debug)]
struct MapSpec {
    width: u8,
    height: u8,
    /// (class, run length) pairs, expanded and then cut or padded to width × height.
    runs: Vec<(u8, u16)>,
    /// Make the class list one entry short or long.
    size_error: Option<bool>,
}

fn structured(data: &[u8]) {
    let Ok(input) = Input::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let mut histogram = input.histogram.clone();
    if input.extra_classes > 200 {
        histogram.resize(histogram.len() + usize::from(input.extra_classes), 1);
    }
    let mut classes = Vec::new();
    let mut size = None;
    if let Some(spec) = &input.map {
        let pixels = usize::from(spec.width) * usize::from(spec.height);
        for &(class, run) in &spec.runs {
            if classes.len() >= pixels {
                break;
            }
            let class = if histogram.is_empty() {
                class
            } else {
                (usize::from(class) % histogram.len().min(256)) as u8
            };
            classes.extend(std::iter::repeat_n(class, usize::from(run % 2048) + 1));
        }
        classes.resize(pixels, classes.last().copied().unwrap_or(0));
        match spec.size_error {
            Some(true) => classes.push(0),
            Some(false) => {
                classes.pop();
            }
            None => {}
        }
        size = Some((u16::from(spec.width), u16::from(spec.height), pixels));
    }
    let result = SegmentationResult {
        rtp_timestamp: input.rtp_timestamp,
        decode_us: input.decode_us,
        infer_us: input.infer_us,
        post_us: input.post_us,
        map_width: input.map_width,
        map_height: input.map_height,
        histogram: &histogram,
        class_map: size.map(|(w, h, _)| ClassMap {
            width: w,
            height: h,
            classes: &classes,
        }),
    };
    let len = result.encoded_len();
    let short = input.buffer_short_by.map_or(0, |s| usize::from(s % 8) + 1);
    let mut buf = vec![0u8; len.saturating_sub(short)];
    let expected_err = if histogram.len() > MAX_CLASSES {
        Some(ResultError::TooManyClasses {
            count: histogram.len(),
        })
    } else if let Some((_, _, pixels)) = size.filter(|s| s.2 != classes.len()) {
        Some(ResultError::ClassMapSize {
            expected: pixels,
            len: classes.len(),
        })
    } else if len > MAX_RESULT_PACKET_LEN {
        Some(ResultError::TooLarge { len })
    } else if short > 0 {
        Some(ResultError::BufferTooSmall {
            needed: len,
            capacity: buf.len(),
        })
    } else {
        None
    };
    if let Some(err) = expected_err {
        assert_eq!(result.write_app(1, &mut buf), Err(err));
        return;
    }
    // Class ids are reduced modulo the class count above, so none is out of range.
    let view = write_and_view(&result, &mut buf);
    assert_eq!(
        (
            view.rtp_timestamp,
            view.decode_us,
            view.infer_us,
            view.post_us,
            view.map_width,
            view.map_height
        ),
        (
            input.rtp_timestamp,
            input.decode_us,
            input.infer_us,
            input.post_us,
            input.map_width,
            input.map_height
        )
    );
    assert_eq!(view.histogram().collect::<Vec<_>>(), histogram);
    match size {
        None => assert_eq!(view.class_map_size(), None),
        Some((w, h, pixels)) => {
            assert_eq!(view.class_map_size(), Some((w, h)));
            let mut out = vec![0u8; pixels];
            assert_eq!(view.decode_class_map(&mut out), Ok((w, h)));
            assert_eq!(out, classes, "decoded class map differs");
            if pixels > 0 {
                assert_eq!(
                    view.decode_class_map(&mut out[..pixels - 1]),
                    Err(ResultError::BufferTooSmall {
                        needed: pixels,
                        capacity: pixels - 1
                    })
                );
            }
        }
    }
    // An out-of-range class id is refused on write.
    if let Some((w, h, pixels)) = size
        && pixels > 0
        && !histogram.is_empty()
        && histogram.len() < 256
    {
        let mut bad = classes.clone();
        bad[pixels / 2] = histogram.len() as u8;
        let r = SegmentationResult {
            class_map: Some(ClassMap {
                width: w,
                height: h,
                classes: &bad,
            }),
            ..result
        };
        let mut buf = vec![0u8; r.encoded_len()];
        assert_eq!(
            r.write_app(1, &mut buf),
            Err(ResultError::ClassOutOfRange {
                class: histogram.len() as u8,
                class_count: histogram.len() as u16
            })
        );
    }
}

fuzz_target!(|data: &[u8]| {
    raw(data);
    structured(data);
});
