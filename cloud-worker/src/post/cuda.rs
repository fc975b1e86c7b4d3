//! The CUDA post-processing backend: one image's logits → class map at the picture's size with
//! the `fc_upsample_argmax_f32` kernel (the same bytes as [`super::upsample_argmax`]), then the
//! class histogram on the CPU ([`super::histogram`], one pass over bytes already on the host).
//!
//! What crosses between host and GPU: the logits go up (`classes · h · w` floats at the model's
//! output stride: at stride 8, a 64th of the picture's pixels per class) and the class map comes
//! down (one byte per pixel), since the histogram and the rest of the worker read it on the host.
//! The picture itself is only read for its size.

use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream, DeviceRepr, DriverError, ValidAsZeroBits};
use flowcloud_cuda::{CudaError, GpuContext, KernelSource, LogitShape};

use super::{ImageLogits, Post, PostError, PostOutput, check_upsample_sizes};
use crate::frame::Picture;

/// The CUDA backend of [`Post`] (`"cuda"`), on a stream of its own.
///
/// The engine gives its logits in host memory today, so each image's are uploaded first; with
/// an engine that leaves them in CUDA memory the upload goes away.
pub struct CudaPost {
    gpu: Arc<GpuContext>,
    stream: Arc<CudaStream>,
    /// The logits in CUDA memory, kept between images.
    logits: Option<CudaSlice<f32>>,
    /// The class map in CUDA memory, kept between images.
    class_map: Option<CudaSlice<u8>>,
}

impl std::fmt::Debug for CudaPost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaPost").finish_non_exhaustive()
    }
}

impl CudaPost {
    /// A CUDA post-processing stage on `gpu`. Loads the kernel now, so that a missing NVRTC or
    /// PTX shows when the stage starts rather than at its first frame.
    ///
    /// # Errors
    ///
    /// [`CudaError::Driver`] when the stream cannot be created, or the errors of loading the
    /// kernel ([`GpuContext::load`]).
    pub fn new(gpu: Arc<GpuContext>) -> Result<Self, CudaError> {
        let stream = gpu.context().new_stream().map_err(|e| CudaError::Driver {
            call: "cuStreamCreate",
            status: format!("{:?}", e.0),
        })?;
        gpu.load(KernelSource::UpsampleArgmax)?;
        Ok(Self {
            gpu,
            stream,
            logits: None,
            class_map: None,
        })
    }
}

impl Post for CudaPost {
    fn run(
        &mut self,
        logits: ImageLogits<'_>,
        picture: &Picture,
        out: &mut PostOutput,
    ) -> Result<(), PostError> {
        let (w, h) = (picture.width() as usize, picture.height() as usize);
        // The CPU backend's errors for the sizes it refuses, before anything is uploaded.
        let pixels = check_upsample_sizes(
            logits.classes,
            logits.height,
            logits.width,
            h,
            w,
            logits.data.len(),
        )?;
        let logits_len = logits.data.len();
        let shape = LogitShape {
            classes: to_u32(logits.classes)?,
            in_height: to_u32(logits.height)?,
            in_width: to_u32(logits.width)?,
            out_height: picture.height(),
            out_width: picture.width(),
        };

        let device_logits = reuse(&self.stream, &mut self.logits, logits_len)?;
        self.stream
            .memcpy_htod(logits.data, device_logits)
            .map_err(gpu_error("uploading the logits"))?;
        let class_map = reuse(&self.stream, &mut self.class_map, pixels)?;
        self.gpu
            .upsample_argmax_f32(
                &self.stream,
                &device_logits.as_view(),
                &shape,
                &mut class_map.as_view_mut(),
            )
            .map_err(|e| PostError::Gpu {
                reason: e.to_string(),
            })?;
        out.class_map.resize(pixels, 0);
        self.stream
            .memcpy_dtoh(&*class_map, &mut out.class_map)
            .map_err(gpu_error("copying the class map to the host"))?;
        // The class map is complete, and a failed launch reported, only once the stream has
        // drained.
        self.stream
            .synchronize()
            .map_err(gpu_error("post-processing on the stream"))?;
        out.histogram.resize(logits.classes, 0);
        super::histogram(&out.class_map, logits.classes, &mut out.histogram)?;
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "cuda"
    }
}

/// The buffer in `slot` when it has `len` elements, else a new one (the old one freed first).
fn reuse<'a, T: DeviceRepr + ValidAsZeroBits>(
    stream: &Arc<CudaStream>,
    slot: &'a mut Option<CudaSlice<T>>,
    len: usize,
) -> Result<&'a mut CudaSlice<T>, PostError> {
    let buffer = match slot.take() {
        Some(buffer) if buffer.len() == len => buffer,
        old => {
            // Freed before the new one is allocated.
            drop(old);
            stream
                .alloc_zeros::<T>(len)
                .map_err(gpu_error("allocating a buffer"))?
        }
    };
    Ok(slot.insert(buffer))
}

/// The kernels take `u32` sizes (at most 16384 per side, which they check themselves).
fn to_u32(value: usize) -> Result<u32, PostError> {
    u32::try_from(value).map_err(|_| PostError::Overflow)
}

fn gpu_error(what: &'static str) -> impl Fn(DriverError) -> PostError {
    move |e| PostError::Gpu {
        reason: format!("{what}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::frame::{DeviceFramePool, I420Frame};
    use crate::post::CpuPost;
    use crate::preprocess::cuda::tests::{XorShift, check_start, device_picture, gpu_or_skip};

    #[test]
    fn new_fails_clearly_exactly_without_a_usable_gpu() {
        check_start(|gpu| {
            let stage = CudaPost::new(gpu)?;
            assert_eq!(stage.backend(), "cuda");
            Ok(stage)
        });
    }

    /// 21-class logits at 1/8 of the picture (rounded up), uniform in [-8, 8).
    fn random_logits(width: u32, height: u32, seed: u64) -> (Vec<f32>, usize, usize) {
        let (lw, lh) = (width.div_ceil(8) as usize, height.div_ceil(8) as usize);
        let mut rng = XorShift(seed);
        let data = (0..21 * lw * lh)
            .map(|_| {
                // 24 random bits: exact in f32.
                #[allow(clippy::cast_precision_loss)]
                let unit = (rng.next() >> 40) as f32 / (1u32 << 24) as f32;
                unit * 16.0 - 8.0
            })
            .collect();
        (data, lh, lw)
    }

    #[test]
    fn matches_the_cpu_backend_on_a_gpu() {
        let Some(gpu) = gpu_or_skip() else { return };
        let pool = DeviceFramePool::new(gpu.context().new_stream().expect("a stream"), 2);
        let mut stage = CudaPost::new(Arc::clone(&gpu)).expect("cuda stage");
        // The same stage throughout: its buffers are reused, then reallocated on a size change.
        let sizes = [(1280, 720), (1280, 720), (321, 241), (1280, 720)];
        for (seed, (width, height)) in (1..).zip(sizes) {
            let frame = I420Frame::filled(width, height, (16, 128, 128));
            let (data, lh, lw) = random_logits(width, height, seed);
            let logits = ImageLogits {
                data: &data,
                classes: 21,
                height: lh,
                width: lw,
            };
            let mut expected = PostOutput::default();
            CpuPost
                .run(logits, &Picture::Host(frame.clone()), &mut expected)
                .expect("cpu");
            for picture in [device_picture(&pool, &frame, true), Picture::Host(frame)] {
                let mut got = PostOutput::default();
                stage.run(logits, &picture, &mut got).expect("cuda run");
                let what = format!("{width}×{height}, {} picture", picture.memory());
                assert_eq!(got.class_map.len(), expected.class_map.len(), "{what}");
                if let Some(i) =
                    (0..got.class_map.len()).find(|&i| got.class_map[i] != expected.class_map[i])
                {
                    panic!(
                        "{what}: pixel {i}: gpu class {}, cpu class {}",
                        got.class_map[i], expected.class_map[i]
                    );
                }
                assert_eq!(got.histogram, expected.histogram, "{what}");
            }
        }
    }
}
