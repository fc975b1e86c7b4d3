//! The CUDA kernels' NV12 references (flowcloud-cuda) give bit for bit what the worker's I420
//! CPU code gives on the same pictures: the kernels follow one definition, whichever side runs.

#![allow(clippy::unwrap_used)]

use flowcloud_cuda::reference::{self, Nv12};
use flowcloud_cuda::shape::{LogitShape, Nv12Layout};
use flowcloud_cuda::{ChannelOrder, PreprocessParams};
use flowcloud_worker::classes::ClassTable;
use flowcloud_worker::engine::ChannelOrder as WorkerOrder;
use flowcloud_worker::{post, preprocess};

/// A deterministic byte sequence (xorshift), so the pictures cover the whole byte range.
fn bytes(len: usize, seed: u32) -> Vec<u8> {
    let mut s = seed | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s.to_le_bytes()[1]
        })
        .collect()
}

/// An I420 picture and the same samples as NV12 with a padded pitch and a gap before chroma.
struct Picture {
    width: u32,
    height: u32,
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
    nv12: Vec<u8>,
    layout: Nv12Layout,
}

fn picture(width: u32, height: u32, seed: u32) -> Picture {
    let (w, h) = (width as usize, height as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let y = bytes(w * h, seed);
    let u = bytes(cw * ch, seed + 1);
    let v = bytes(cw * ch, seed + 2);
    let pitch = (2 * cw + 7) as u32;
    let layout = Nv12Layout {
        width,
        height,
        pitch,
        chroma_offset: pitch as usize * (h + 3),
    };
    let mut nv12 = vec![0xAA; layout.required_len()];
    for row in 0..h {
        let at = row * pitch as usize;
        nv12[at..at + w].copy_from_slice(&y[row * w..(row + 1) * w]);
    }
    for row in 0..ch {
        for col in 0..cw {
            let at = layout.chroma_offset + row * pitch as usize + 2 * col;
            nv12[at] = u[row * cw + col];
            nv12[at + 1] = v[row * cw + col];
        }
    }
    Picture {
        width,
        height,
        y,
        u,
        v,
        nv12,
        layout,
    }
}

#[test]
fn preprocess_nv12_equals_the_workers_i420_preprocessing() {
    for (i, &((w, h), (ow, oh), order)) in [
        ((64, 48), (32, 24), ChannelOrder::Rgb),
        ((37, 29), (64, 50), ChannelOrder::Bgr),
        ((1, 1), (3, 2), ChannelOrder::Rgb),
        ((130, 71), (52, 52), ChannelOrder::Rgb),
    ]
    .iter()
    .enumerate()
    {
        let pic = picture(w, h, 7 + i as u32);
        let ours = PreprocessParams {
            out_width: ow,
            out_height: oh,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
            channel_order: order,
        };
        let theirs = preprocess::PreprocessParams {
            out_width: ow,
            out_height: oh,
            mean: ours.mean,
            std: ours.std,
            channel_order: match order {
                ChannelOrder::Rgb => WorkerOrder::Rgb,
                ChannelOrder::Bgr => WorkerOrder::Bgr,
            },
        };
        let mut want = vec![0f32; theirs.output_len()];
        preprocess::preprocess_i420(&pic.y, &pic.u, &pic.v, w, h, &theirs, &mut want).unwrap();
        let mut got = vec![0f32; ours.output_len()];
        let frame = Nv12::new(&pic.nv12, pic.layout).unwrap();
        reference::preprocess_nv12(&frame, &ours, &mut got).unwrap();
        let differ = got
            .iter()
            .zip(&want)
            .filter(|(g, w)| g.to_bits() != w.to_bits())
            .count();
        assert_eq!(differ, 0, "{w}×{h} → {ow}×{oh}: {differ} values differ");
    }
}

#[test]
fn upsample_argmax_equals_the_workers() {
    for (i, &(classes, (ih, iw), (oh, ow))) in [
        (19, (8, 8), (64, 64)),
        (3, (5, 7), (23, 11)),
        (256, (2, 3), (9, 9)),
        (4, (6, 6), (6, 6)),
    ]
    .iter()
    .enumerate()
    {
        let shape = LogitShape {
            classes,
            in_height: ih,
            in_width: iw,
            out_height: oh,
            out_width: ow,
        };
        // Small integers (many ties) and spread values.
        let logits: Vec<f32> = bytes(shape.logits_len(), 40 + i as u32)
            .iter()
            .map(|&b| {
                if i % 2 == 0 {
                    f32::from(b % 4)
                } else {
                    (f32::from(b) - 128.0) * 0.37
                }
            })
            .collect();
        let mut want = vec![0u8; shape.class_map_len()];
        post::upsample_argmax(
            &logits,
            classes as usize,
            ih as usize,
            iw as usize,
            oh as usize,
            ow as usize,
            &mut want,
        )
        .unwrap();
        let mut got = vec![0u8; shape.class_map_len()];
        reference::upsample_argmax(&logits, &shape, &mut got).unwrap();
        assert_eq!(got, want, "{classes} classes {iw}×{ih} → {ow}×{oh}");
    }
}

#[test]
fn blend_and_colorize_equal_the_workers() {
    let table = ClassTable::CityscapesTrain;
    let palette = table.palette();
    for (w, h) in [(16u32, 10u32), (9, 7), (1, 1)] {
        let pic = picture(w, h, 99 + w);
        let pixels = (w * h) as usize;
        let class_map: Vec<u8> = bytes(pixels, 5).iter().map(|b| b % 21).collect();
        let mut overlay = vec![0u8; 3 * pixels];
        post::colorize(&class_map, table, &mut overlay).unwrap();

        let mut rgba = vec![0u8; 4 * pixels];
        reference::colorize_rgba(&class_map, &palette, &mut rgba).unwrap();
        for (px, want) in rgba.chunks_exact(4).zip(overlay.chunks_exact(3)) {
            assert_eq!(&px[..3], want);
            assert_eq!(px[3], 255);
        }

        let frame = Nv12::new(&pic.nv12, pic.layout).unwrap();
        for alpha in [0.0, 0.35, 0.5, 1.0] {
            let mut want = vec![0u8; 3 * pixels];
            post::blend_over_i420(
                &pic.y,
                &pic.u,
                &pic.v,
                pic.width as usize,
                pic.height as usize,
                &overlay,
                alpha,
                &mut want,
            )
            .unwrap();
            reference::blend_nv12_rgba(&frame, &class_map, &palette, alpha, &mut rgba).unwrap();
            for (px, want) in rgba.chunks_exact(4).zip(want.chunks_exact(3)) {
                assert_eq!(&px[..3], want, "{w}×{h} alpha {alpha}");
            }
        }
    }
}
