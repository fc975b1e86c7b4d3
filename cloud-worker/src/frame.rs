//! Pictures as they move through the worker: in host memory ([`I420Frame`], the CPU path) or in
//! CUDA memory ([`DeviceNv12`], the GPU path: NVDEC's output, read by the CUDA kernels), and
//! [`Picture`], either one, as decoders hand them to preprocessing and post-processing.

use std::sync::{Arc, Mutex, PoisonError};

use cudarc::driver::{CudaSlice, CudaStream, CudaView, DriverError};
use flowcloud_cuda::Nv12Layout;

/// A decoded picture in I420 (planar YUV 4:2:0, BT.601 limited range as H.264 encoders in
/// this field emit it), in host memory, with tightly packed planes: `y` is `width × height`
/// bytes, `u` and `v` are `ceil(width/2) × ceil(height/2)` bytes each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct I420Frame {
    /// Luma width in pixels.
    pub width: u32,
    /// Luma height in pixels.
    pub height: u32,
    /// Luma plane.
    pub y: Vec<u8>,
    /// Cb plane.
    pub u: Vec<u8>,
    /// Cr plane.
    pub v: Vec<u8>,
}

impl I420Frame {
    /// Width and height of each chroma plane.
    #[must_use]
    pub const fn chroma_size(width: u32, height: u32) -> (u32, u32) {
        (width.div_ceil(2), height.div_ceil(2))
    }

    /// A frame of the given size with every plane set to `(y, u, v)`.
    #[must_use]
    pub fn filled(width: u32, height: u32, yuv: (u8, u8, u8)) -> Self {
        let (cw, ch) = Self::chroma_size(width, height);
        Self {
            width,
            height,
            y: vec![yuv.0; (width * height) as usize],
            u: vec![yuv.1; (cw * ch) as usize],
            v: vec![yuv.2; (cw * ch) as usize],
        }
    }
}

/// A decoded picture, wherever it lives.
#[derive(Debug)]
pub enum Picture {
    /// In host memory.
    Host(I420Frame),
    /// In CUDA memory, as NV12.
    Device(DeviceNv12),
}

impl Picture {
    /// Luma width in pixels.
    #[must_use]
    pub const fn width(&self) -> u32 {
        match self {
            Self::Host(frame) => frame.width,
            Self::Device(frame) => frame.layout.width,
        }
    }

    /// Luma height in pixels.
    #[must_use]
    pub const fn height(&self) -> u32 {
        match self {
            Self::Host(frame) => frame.height,
            Self::Device(frame) => frame.layout.height,
        }
    }

    /// Which memory the picture is in, for logs and errors: `"host"` or `"cuda"`.
    #[must_use]
    pub const fn memory(&self) -> &'static str {
        match self {
            Self::Host(_) => "host",
            Self::Device(_) => "cuda",
        }
    }

    /// The picture in host memory: itself, or a copy of a device picture downloaded into
    /// `scratch` (resized only when the size differs).
    ///
    /// # Errors
    ///
    /// The driver's error when the download fails.
    pub fn to_host<'a>(&'a self, scratch: &'a mut I420Frame) -> Result<&'a I420Frame, DriverError> {
        match self {
            Self::Host(frame) => Ok(frame),
            Self::Device(frame) => {
                frame.copy_to_i420(scratch)?;
                Ok(scratch)
            }
        }
    }
}

/// An NV12 picture in CUDA memory, taken from a [`DeviceFramePool`] and given back to it when
/// dropped. Its bytes are complete when it is handed on: whoever wrote it synchronized its
/// stream first, so a kernel on any stream of the same context may read it.
pub struct DeviceNv12 {
    /// `Some` until dropped.
    data: Option<CudaSlice<u8>>,
    layout: Nv12Layout,
    pool: Arc<DeviceFramePool>,
}

impl std::fmt::Debug for DeviceNv12 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceNv12")
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

impl DeviceNv12 {
    /// Where the planes lie in [`view`](Self::view).
    #[must_use]
    pub const fn layout(&self) -> Nv12Layout {
        self.layout
    }

    /// The picture's bytes: [`Nv12Layout::required_len`] of them.
    #[must_use]
    pub fn view(&self) -> CudaView<'_, u8> {
        let data = self.data.as_ref().expect("present until dropped");
        data.slice(..self.layout.required_len())
    }

    /// The buffer, for the decoder that writes the picture into it.
    pub fn buffer_mut(&mut self) -> &mut CudaSlice<u8> {
        self.data.as_mut().expect("present until dropped")
    }

    /// The stream the pool allocates and copies on.
    #[must_use]
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.pool.stream
    }

    /// Downloads the picture into `out` as I420 (the CbCr pairs split on the host); `out`'s
    /// planes are resized only when the size differs. For the parts of the worker that need
    /// the picture on the host (stored overlays, frame hashes, the CPU preprocessor).
    ///
    /// # Errors
    ///
    /// The driver's error when the copy fails; `out` is then untouched.
    pub fn copy_to_i420(&self, out: &mut I420Frame) -> Result<(), DriverError> {
        let layout = self.layout;
        let packed = self.pool.stream.clone_dtoh(&self.view())?;
        let (width, height) = (layout.width, layout.height);
        let (cw, ch) = I420Frame::chroma_size(width, height);
        let (w, pitch) = (width as usize, layout.pitch as usize);
        out.width = width;
        out.height = height;
        out.y.resize(w * height as usize, 0);
        out.u.resize(cw as usize * ch as usize, 0);
        out.v.resize(cw as usize * ch as usize, 0);
        for (row, dst) in out.y.chunks_exact_mut(w).enumerate() {
            dst.copy_from_slice(&packed[row * pitch..row * pitch + w]);
        }
        let cw = cw as usize;
        for row in 0..ch as usize {
            let src = &packed[layout.chroma_offset + row * pitch..][..2 * cw];
            let (u, v) = (
                &mut out.u[row * cw..(row + 1) * cw],
                &mut out.v[row * cw..(row + 1) * cw],
            );
            for ((pair, u), v) in src.chunks_exact(2).zip(u).zip(v) {
                (*u, *v) = (pair[0], pair[1]);
            }
        }
        Ok(())
    }
}

impl Drop for DeviceNv12 {
    fn drop(&mut self) {
        if let Some(data) = self.data.take() {
            self.pool.give_back(data);
        }
    }
}

/// Reuses the CUDA buffers of one stream's [`DeviceNv12`] pictures, so that decoding does not
/// allocate per frame. It keeps at most `keep` free buffers; how many are out at once is
/// bounded by the pipeline's queues (every picture is in a decode call, the batcher's bounded
/// queue or the batch being run).
pub struct DeviceFramePool {
    stream: Arc<CudaStream>,
    free: Mutex<Vec<CudaSlice<u8>>>,
    keep: usize,
}

impl std::fmt::Debug for DeviceFramePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceFramePool")
            .field("keep", &self.keep)
            .finish_non_exhaustive()
    }
}

impl DeviceFramePool {
    /// A pool allocating on `stream`, keeping up to `keep` free buffers.
    #[must_use]
    pub fn new(stream: Arc<CudaStream>, keep: usize) -> Arc<Self> {
        Arc::new(Self {
            stream,
            free: Mutex::new(Vec::new()),
            keep,
        })
    }

    /// A picture buffer for `layout` (contents undefined): a free buffer of the same size, or
    /// a new one. Buffers of another size (after a resolution change) are freed.
    ///
    /// # Errors
    ///
    /// The driver's error when allocating fails.
    pub fn take(self: &Arc<Self>, layout: Nv12Layout) -> Result<DeviceNv12, DriverError> {
        let len = layout.required_len();
        let reused = {
            let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
            free.retain(|buffer| buffer.len() == len);
            free.pop()
        };
        let data = match reused {
            Some(data) => data,
            None => {
                let data = self.stream.alloc_zeros::<u8>(len)?;
                // Stream-ordered allocation: complete before another stream writes into it.
                self.stream.synchronize()?;
                data
            }
        };
        Ok(DeviceNv12 {
            data: Some(data),
            layout,
            pool: Arc::clone(self),
        })
    }

    fn give_back(&self, data: CudaSlice<u8>) {
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        if free.len() < self.keep {
            free.push(data);
        }
    }

    /// Free buffers held now.
    #[must_use]
    pub fn free_buffers(&self) -> usize {
        self.free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}
