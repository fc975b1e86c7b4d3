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

    /// Fills the frame from an NV12 picture of `width × height` in host memory laid out as
    /// `rows` says, splitting the CbCr pairs. The planes are resized only when the size
    /// differs, so a stream of same-sized pictures allocates once.
    ///
    /// # Errors
    ///
    /// [`Nv12TooShort`] when `nv12` ends before the last chroma row does; the frame is then
    /// untouched.
    pub fn copy_from_nv12(
        &mut self,
        nv12: &[u8],
        width: u32,
        height: u32,
        rows: Nv12Rows,
    ) -> Result<(), Nv12TooShort> {
        let (cw, ch) = Self::chroma_size(width, height);
        let (w, h, cw, ch) = (width as usize, height as usize, cw as usize, ch as usize);
        let needed = if w == 0 || h == 0 {
            0
        } else {
            (rows.chroma_offset + (ch - 1) * rows.chroma_pitch + 2 * cw)
                .max((h - 1) * rows.luma_pitch + w)
        };
        if nv12.len() < needed || rows.luma_pitch < w || rows.chroma_pitch < 2 * cw {
            return Err(Nv12TooShort {
                needed,
                got: nv12.len(),
            });
        }
        self.width = width;
        self.height = height;
        self.y.resize(w * h, 0);
        self.u.resize(cw * ch, 0);
        self.v.resize(cw * ch, 0);
        for (row, dst) in self.y.chunks_exact_mut(w.max(1)).enumerate() {
            let start = row * rows.luma_pitch;
            dst.copy_from_slice(&nv12[start..start + w]);
        }
        let chroma_rows = self
            .u
            .chunks_exact_mut(cw.max(1))
            .zip(self.v.chunks_exact_mut(cw.max(1)));
        for (row, (u, v)) in chroma_rows.enumerate() {
            let start = rows.chroma_offset + row * rows.chroma_pitch;
            for ((pair, u), v) in nv12[start..start + 2 * cw].chunks_exact(2).zip(u).zip(v) {
                (*u, *v) = (pair[0], pair[1]);
            }
        }
        Ok(())
    }
}

/// Where the rows of an NV12 picture lie in a host buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Nv12Rows {
    /// Bytes from one luma row to the next, the first at byte 0.
    pub luma_pitch: usize,
    /// Byte of the first CbCr row.
    pub chroma_offset: usize,
    /// Bytes from one CbCr row to the next.
    pub chroma_pitch: usize,
}

impl From<Nv12Layout> for Nv12Rows {
    fn from(layout: Nv12Layout) -> Self {
        Self {
            luma_pitch: layout.pitch as usize,
            chroma_offset: layout.chroma_offset,
            chroma_pitch: layout.pitch as usize,
        }
    }
}

/// An NV12 buffer shorter than its layout (or a pitch narrower than a row).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "NV12 buffer of {got} bytes does not hold its picture ({needed} bytes, rows at least as wide as the picture)"
)]
pub struct Nv12TooShort {
    /// Bytes the layout needs.
    pub needed: usize,
    /// Bytes given.
    pub got: usize,
}

/// Why a picture in CUDA memory could not be brought to the host.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The copy failed.
    #[error("copying the picture from CUDA memory: {0}")]
    Driver(#[from] DriverError),
    /// The buffer does not hold its layout.
    #[error(transparent)]
    Layout(#[from] Nv12TooShort),
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
    /// [`DownloadError`] when the download fails.
    pub fn to_host<'a>(
        &'a self,
        scratch: &'a mut I420Frame,
    ) -> Result<&'a I420Frame, DownloadError> {
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
    /// [`DownloadError`] when the copy fails; `out` is then untouched.
    pub fn copy_to_i420(&self, out: &mut I420Frame) -> Result<(), DownloadError> {
        let layout = self.layout;
        let packed = self.pool.stream.clone_dtoh(&self.view())?;
        out.copy_from_nv12(&packed, layout.width, layout.height, layout.into())?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A 3×3 picture: chroma 2×2.
    const LUMA: [u8; 9] = [1, 2, 3, 4, 5, 6, 7, 8, 9];

    #[test]
    fn tight_nv12_splits_into_i420() {
        let nv12 = [
            1, 2, 3, 4, 5, 6, 7, 8, 9, // luma, 3 bytes a row
            10, 20, 11, 21, // CbCr row 0
            12, 22, 13, 23, // CbCr row 1
        ];
        let rows = Nv12Rows {
            luma_pitch: 3,
            chroma_offset: 9,
            chroma_pitch: 4,
        };
        let mut out = I420Frame::filled(0, 0, (0, 0, 0));
        out.copy_from_nv12(&nv12, 3, 3, rows).unwrap();
        assert_eq!((out.width, out.height), (3, 3));
        assert_eq!(out.y, LUMA);
        assert_eq!(out.u, [10, 11, 12, 13]);
        assert_eq!(out.v, [20, 21, 22, 23]);
        // The same size again does not reallocate.
        let y_ptr = out.y.as_ptr();
        out.copy_from_nv12(&nv12, 3, 3, rows).unwrap();
        assert_eq!(out.y.as_ptr(), y_ptr);
    }

    #[test]
    fn pitched_nv12_skips_the_padding() {
        // Nv12Layout::packed(3, 3): every row 4 bytes (a CbCr row's), 0xEE in the padding.
        let layout = Nv12Layout::packed(3, 3);
        assert_eq!((layout.pitch, layout.chroma_offset), (4, 12));
        let nv12 = [
            1, 2, 3, 0xEE, 4, 5, 6, 0xEE, 7, 8, 9, 0xEE, // luma
            10, 20, 11, 21, // CbCr row 0
            12, 22, 13, 23, // CbCr row 1
        ];
        assert_eq!(nv12.len(), layout.required_len());
        let mut out = I420Frame::filled(1, 1, (0, 0, 0));
        out.copy_from_nv12(&nv12, 3, 3, layout.into()).unwrap();
        assert_eq!(out.y, LUMA);
        assert_eq!(out.u, [10, 11, 12, 13]);
        assert_eq!(out.v, [20, 21, 22, 23]);
    }

    #[test]
    fn a_short_buffer_or_narrow_pitch_is_refused_and_leaves_the_frame() {
        let layout = Nv12Layout::packed(3, 3);
        let before = I420Frame::filled(2, 2, (7, 8, 9));
        let mut out = before.clone();
        let short = [0u8; 19];
        assert_eq!(
            out.copy_from_nv12(&short, 3, 3, layout.into()),
            Err(Nv12TooShort {
                needed: 20,
                got: 19
            })
        );
        let narrow = Nv12Rows {
            luma_pitch: 2,
            ..layout.into()
        };
        assert!(out.copy_from_nv12(&[0u8; 64], 3, 3, narrow).is_err());
        assert_eq!(out, before);
    }
}
