//! The CUDA preprocessing backend: an NV12 picture in CUDA memory (NVDEC's output) → the
//! model's planar `f32` input, with the `fc_nv12_to_planar_f32` kernel, which computes the
//! parent module's definition (every value within 1e-5 relative of [`CpuPreprocess`]'s).
//!
//! What crosses to the host: only the finished model input, `3 · out_h · out_w` floats per
//! picture, because the engine reads its batch from host memory; the picture stays on the GPU.
//! A picture already in host memory (a stream whose decoder fell back to the CPU) goes through
//! an inner [`CpuPreprocess`] instead, with the CPU's exact output and nothing uploaded.

use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream, DriverError};
use flowcloud_cuda::{CudaError, GpuContext, KernelSource};

use super::{CpuPreprocess, Preprocess, PreprocessError, PreprocessParams};
use crate::engine::ChannelOrder;
use crate::frame::{DeviceNv12, Picture};

// Stages run on worker threads (`Preprocess: Send`) and share one context per GPU through an
// `Arc`, which is `Send` only for a `Send + Sync` context.
const _: () = {
    const fn send_and_sync<T: Send + Sync>() {}
    send_and_sync::<GpuContext>();
};

/// The CUDA backend of [`Preprocess`] (`"cuda"`), on a stream of its own.
pub struct CudaPreprocessor {
    gpu: Arc<GpuContext>,
    stream: Arc<CudaStream>,
    params: PreprocessParams,
    kernel: flowcloud_cuda::PreprocessParams,
    /// The model input in CUDA memory, kept between pictures (allocated at the first).
    tensor: Option<CudaSlice<f32>>,
    /// For pictures in host memory.
    cpu: CpuPreprocess,
}

impl std::fmt::Debug for CudaPreprocessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaPreprocessor")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl CudaPreprocessor {
    /// A CUDA preprocessing stage for a model's input on `gpu`. Loads the kernel now, so that
    /// a missing NVRTC or PTX shows when the stage starts rather than at its first frame.
    ///
    /// # Errors
    ///
    /// [`CudaError::Driver`] when the stream cannot be created, or the errors of loading the
    /// kernel ([`GpuContext::load`]).
    pub fn new(gpu: Arc<GpuContext>, params: PreprocessParams) -> Result<Self, CudaError> {
        let stream = gpu.context().new_stream().map_err(|e| CudaError::Driver {
            call: "cuStreamCreate",
            status: format!("{:?}", e.0),
        })?;
        gpu.load(KernelSource::Preprocess)?;
        Ok(Self {
            gpu,
            stream,
            params,
            kernel: kernel_params(&params),
            tensor: None,
            cpu: CpuPreprocess::new(params),
        })
    }

    fn run_device(&mut self, frame: &DeviceNv12, out: &mut [f32]) -> Result<(), PreprocessError> {
        let p = &self.params;
        // The CPU backend's errors for the sizes it refuses, before anything is launched.
        if p.out_width == 0 || p.out_height == 0 {
            return Err(PreprocessError::EmptySize {
                what: "model input",
                width: p.out_width,
                height: p.out_height,
            });
        }
        let len = p.output_len();
        if out.len() != len {
            return Err(PreprocessError::OutputSize {
                expected: len,
                got: out.len(),
            });
        }
        let tensor = match self.tensor.take() {
            Some(tensor) if tensor.len() == len => tensor,
            old => {
                // Freed before the new one is allocated.
                drop(old);
                self.stream
                    .alloc_zeros::<f32>(len)
                    .map_err(gpu_error("allocating the model input"))?
            }
        };
        let tensor = self.tensor.insert(tensor);
        self.gpu
            .nv12_to_planar_f32(
                &self.stream,
                &frame.view(),
                frame.layout(),
                &self.kernel,
                &mut tensor.as_view_mut(),
            )
            .map_err(|e| PreprocessError::Gpu {
                reason: e.to_string(),
            })?;
        self.stream
            .memcpy_dtoh(&*tensor, out)
            .map_err(gpu_error("copying the model input to the host"))?;
        // `out` is complete, and a failed launch reported, only once the stream has drained.
        self.stream
            .synchronize()
            .map_err(gpu_error("preprocessing on the stream"))
    }
}

impl Preprocess for CudaPreprocessor {
    fn params(&self) -> &PreprocessParams {
        &self.params
    }

    fn run(&mut self, picture: &Picture, out: &mut [f32]) -> Result<(), PreprocessError> {
        match picture {
            Picture::Host(_) => self.cpu.run(picture, out),
            Picture::Device(frame) => self.run_device(frame, out),
        }
    }

    fn backend(&self) -> &'static str {
        "cuda"
    }
}

/// The kernel's parameters for the worker's: the same sizes, normalization and plane order.
#[must_use]
pub const fn kernel_params(params: &PreprocessParams) -> flowcloud_cuda::PreprocessParams {
    flowcloud_cuda::PreprocessParams {
        out_width: params.out_width,
        out_height: params.out_height,
        mean: params.mean,
        std: params.std,
        channel_order: kernel_channel_order(params.channel_order),
    }
}

/// The kernel's name for a manifest's plane order.
#[must_use]
pub const fn kernel_channel_order(order: ChannelOrder) -> flowcloud_cuda::ChannelOrder {
    match order {
        ChannelOrder::Rgb => flowcloud_cuda::ChannelOrder::Rgb,
        ChannelOrder::Bgr => flowcloud_cuda::ChannelOrder::Bgr,
    }
}

fn gpu_error(what: &'static str) -> impl Fn(DriverError) -> PreprocessError {
    move |e| PreprocessError::Gpu {
        reason: format!("{what}: {e}"),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use flowcloud_cuda::{Capabilities, CudaError, GpuContext, Nv12Layout, Probe};

    use super::*;
    use crate::frame::{DeviceFramePool, I420Frame};

    fn params(out_width: u32, out_height: u32, channel_order: ChannelOrder) -> PreprocessParams {
        PreprocessParams {
            out_width,
            out_height,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
            channel_order,
        }
    }

    /// Deterministic pseudo-random numbers (xorshift64).
    pub(crate) struct XorShift(pub(crate) u64);

    impl XorShift {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        pub(crate) fn byte(&mut self) -> u8 {
            self.next().to_le_bytes()[7]
        }
    }

    /// A picture of random bytes, with smooth areas too (so that clamping and exact zeros occur).
    pub(crate) fn random_frame(width: u32, height: u32, seed: u64) -> I420Frame {
        let mut rng = XorShift(seed);
        let mut frame = I420Frame::filled(width, height, (0, 0, 0));
        for plane in [&mut frame.y, &mut frame.u, &mut frame.v] {
            for (i, b) in plane.iter_mut().enumerate() {
                // A quarter of each plane saturates, the rest is noise.
                *b = if i % 4 == 0 { 255 } else { rng.byte() };
            }
        }
        frame
    }

    /// An NVDEC-like layout: pitch rounded up to 256 bytes, chroma after the luma rows
    /// rounded up to 16; or the tightest one.
    pub(crate) fn layout(width: u32, height: u32, pitched: bool) -> Nv12Layout {
        if pitched {
            let pitch = (width.div_ceil(2) * 2).next_multiple_of(256);
            Nv12Layout {
                width,
                height,
                pitch,
                chroma_offset: pitch as usize * height.next_multiple_of(16) as usize,
            }
        } else {
            Nv12Layout::packed(width, height)
        }
    }

    /// `frame` as NV12 bytes laid out as `layout` (U, V interleaved), padding filled with a
    /// byte the kernels must not read.
    pub(crate) fn nv12_bytes(frame: &I420Frame, layout: Nv12Layout) -> Vec<u8> {
        let mut bytes = vec![0xA5; layout.required_len()];
        let (w, pitch) = (frame.width as usize, layout.pitch as usize);
        for (row, src) in frame.y.chunks_exact(w).enumerate() {
            bytes[row * pitch..row * pitch + w].copy_from_slice(src);
        }
        let (cw, _) = I420Frame::chroma_size(frame.width, frame.height);
        let cw = cw as usize;
        for (row, (u, v)) in frame
            .u
            .chunks_exact(cw)
            .zip(frame.v.chunks_exact(cw))
            .enumerate()
        {
            let dst = &mut bytes[layout.chroma_offset + row * pitch..][..2 * cw];
            for ((pair, &u), &v) in dst.chunks_exact_mut(2).zip(u).zip(v) {
                pair.copy_from_slice(&[u, v]);
            }
        }
        bytes
    }

    /// `frame` uploaded into a buffer of `pool`, as a decoder hands it on (synchronized).
    pub(crate) fn device_picture(
        pool: &Arc<DeviceFramePool>,
        frame: &I420Frame,
        pitched: bool,
    ) -> Picture {
        let layout = layout(frame.width, frame.height, pitched);
        let host = nv12_bytes(frame, layout);
        let mut picture = pool.take(layout).expect("a pool buffer");
        let stream = Arc::clone(picture.stream());
        stream
            .memcpy_htod(&host, picture.buffer_mut())
            .expect("upload");
        stream.synchronize().expect("upload completes");
        Picture::Device(picture)
    }

    /// The GPU, or why the test is skipped.
    pub(crate) fn gpu_or_skip() -> Option<Arc<GpuContext>> {
        match GpuContext::new(0) {
            Ok(gpu) => Some(Arc::new(gpu)),
            Err(e) => {
                eprintln!("SKIP {e}");
                None
            }
        }
    }

    /// Checks a stage's start against the probe: without a usable GPU 0 it fails with the
    /// probe's reason (on a machine without the driver, the driver-not-found error), with one
    /// it starts.
    pub(crate) fn check_start<T, F>(start: F)
    where
        F: FnOnce(Arc<GpuContext>) -> Result<T, CudaError>,
    {
        let caps = Capabilities::probe();
        let started = GpuContext::new(0).and_then(|gpu| start(Arc::new(gpu)));
        match (caps.kernels_unavailable(0), started) {
            (None, Ok(_)) => {}
            (None, Err(e)) => panic!("the probe finds GPU 0 usable, but the stage fails: {e}"),
            (Some(why), Ok(_)) => panic!("the probe finds no usable GPU 0 ({why}), but it starts"),
            (Some(why), Err(e)) => {
                if let Probe::Unavailable(driver) = &caps.driver {
                    assert!(
                        matches!(
                            e,
                            CudaError::DriverNotFound { .. } | CudaError::Driver { .. }
                        ),
                        "{e:?}"
                    );
                    assert!(e.to_string().starts_with("CUDA is not available"), "{e}");
                    assert_eq!(&e.to_string(), driver);
                } else {
                    assert!(!why.is_empty());
                }
            }
        }
    }

    #[test]
    fn new_fails_clearly_exactly_without_a_usable_gpu() {
        check_start(|gpu| {
            let stage = CudaPreprocessor::new(gpu, params(97, 55, ChannelOrder::Rgb))?;
            assert_eq!(stage.backend(), "cuda");
            Ok(stage)
        });
    }

    #[test]
    fn kernel_params_carry_sizes_normalization_and_plane_order() {
        for order in [ChannelOrder::Rgb, ChannelOrder::Bgr] {
            let p = PreprocessParams {
                out_width: 520,
                out_height: 97,
                mean: [0.1, 0.2, 0.3],
                std: [0.4, 0.5, 0.6],
                channel_order: order,
            };
            let k = kernel_params(&p);
            assert_eq!((k.out_width, k.out_height), (520, 97));
            assert_eq!(k.mean, p.mean);
            assert_eq!(k.std, p.std);
            assert_eq!(k.output_len(), p.output_len());
            // Same planes: the channel the worker puts in plane `p` is the one the kernel
            // writes there.
            for (plane, channel) in order.plane_sources().into_iter().enumerate() {
                assert_eq!(k.plane_of(channel), plane, "{order:?}");
            }
        }
        assert_eq!(
            kernel_channel_order(ChannelOrder::Rgb),
            flowcloud_cuda::ChannelOrder::Rgb
        );
        assert_eq!(
            kernel_channel_order(ChannelOrder::Bgr),
            flowcloud_cuda::ChannelOrder::Bgr
        );
    }

    /// Each value within 1e-5 relative of the CPU's, and 0 exactly where the CPU's is.
    fn assert_close(got: &[f32], expected: &[f32], what: &str) {
        assert_eq!(got.len(), expected.len(), "{what}");
        for (i, (&g, &c)) in got.iter().zip(expected).enumerate() {
            let ok = if c == 0.0 {
                g == 0.0
            } else {
                (g - c).abs() <= 1e-5 * c.abs()
            };
            assert!(ok, "{what}: element {i}: gpu {g}, cpu {c}");
        }
    }

    /// Pictures × model sizes × plane order × NV12 layout (pitched like NVDEC or packed).
    const CASES: [(u32, u32, u32, u32, ChannelOrder, bool); 4] = [
        (1280, 720, 520, 520, ChannelOrder::Rgb, false),
        (1280, 720, 97, 55, ChannelOrder::Bgr, true),
        (321, 241, 520, 520, ChannelOrder::Bgr, false),
        (321, 241, 97, 55, ChannelOrder::Rgb, true),
    ];

    /// The GPU test's inputs without a GPU: its NV12 bytes and kernel parameters, through the
    /// kernel's Rust reference, give the CPU backend's values.
    #[test]
    fn test_pictures_through_the_kernel_reference_match_the_cpu() {
        for (seed, (width, height, out_w, out_h, order, pitched)) in (1..).zip(CASES) {
            let p = params(out_w, out_h, order);
            let frame = random_frame(width, height, seed);
            let mut expected = vec![0.0; p.output_len()];
            CpuPreprocess::new(p)
                .run(&Picture::Host(frame.clone()), &mut expected)
                .expect("cpu");
            let layout = layout(width, height, pitched);
            let bytes = nv12_bytes(&frame, layout);
            let nv12 = flowcloud_cuda::reference::Nv12::new(&bytes, layout).expect("layout");
            let mut got = vec![f32::NAN; p.output_len()];
            flowcloud_cuda::reference::preprocess_nv12(&nv12, &kernel_params(&p), &mut got)
                .expect("reference");
            assert_close(&got, &expected, &format!("{width}×{height} {order:?}"));
        }
    }

    #[test]
    fn matches_the_cpu_backend_on_a_gpu() {
        let Some(gpu) = gpu_or_skip() else { return };
        let pool = DeviceFramePool::new(gpu.context().new_stream().expect("a stream"), 2);
        for (seed, (width, height, out_w, out_h, order, pitched)) in (1..).zip(CASES) {
            let what = format!("{width}×{height} → {out_w}×{out_h} {order:?} pitched {pitched}");
            let p = params(out_w, out_h, order);
            let frame = random_frame(width, height, seed);
            let mut cpu = CpuPreprocess::new(p);
            let mut expected = vec![0.0; p.output_len()];
            cpu.run(&Picture::Host(frame.clone()), &mut expected)
                .expect("cpu");
            let mut stage = CudaPreprocessor::new(Arc::clone(&gpu), p).expect("cuda stage");
            let device = device_picture(&pool, &frame, pitched);
            // Twice: the second run reuses the device tensor.
            for run in 0..2 {
                let mut got = vec![f32::NAN; p.output_len()];
                stage.run(&device, &mut got).expect("cuda run");
                assert_close(&got, &expected, &format!("{what}, run {run}"));
            }
            // A host picture goes through the CPU code: the CPU's exact output.
            let mut got = vec![f32::NAN; p.output_len()];
            stage
                .run(&Picture::Host(frame), &mut got)
                .expect("host picture");
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&expected), "{what}: host picture");
            // The wrong output length is refused as on the CPU.
            let mut short = vec![0.0; p.output_len() - 1];
            assert!(matches!(
                stage.run(&device, &mut short),
                Err(PreprocessError::OutputSize { .. })
            ));
        }
    }
}
