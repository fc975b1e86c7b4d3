//! A V4L2 memory-to-memory **stateful encoder** (kernel documentation: "Memory-to-Memory
//! Stateful Video Encoder Interface"), driven synchronously: one raw picture in, one coded frame
//! out per [`VideoEncoder::encode`].
//!
//! The device has two multi-planar queues: OUTPUT takes raw pictures, CAPTURE returns coded
//! frames. Initialization follows the specification's order: the coded format on CAPTURE first
//! (it decides which raw formats are possible), then the raw format on OUTPUT, the frame interval,
//! the codec controls, then buffers and streaming. CAPTURE buffers are allocated and queued at
//! once; OUTPUT buffers at the first frame, because only then is it known whether frames arrive
//! as DMABUFs that can be imported (zero copy from [`V4l2Capture`] in
//! [`CaptureMemory::DmabufExport`] mode) or must be copied into mapped buffers.
//!
//! Not every driver implements every control: unsupported ones are skipped and listed by
//! [`V4l2M2mEncoder::skipped_controls`], never fatal. The codec is a parameter
//! ([`FourCc::H264`] for H.264, [`FourCc::FWHT`] for the kernel's `vicodec` test driver).
//!
//! [`V4l2Capture`]: crate::capture::v4l2::V4l2Capture
//! [`CaptureMemory::DmabufExport`]: crate::capture::v4l2::CaptureMemory::DmabufExport

use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::libc;
use nix::poll::PollFlags;
use nix::unistd::{Whence, lseek};

use super::{EncodeError, EncodedFrame, EncoderSettings, VideoEncoder, append_within_capacity};
use crate::capture::{CapturedFrame, FrameDmabuf};
use crate::picture::{Picture, PixelFormat};
use crate::v4l2::bindings as b;
use crate::v4l2::controls::ControlKind;
use crate::v4l2::layout::{PlaneLayout, plane_layout};
use crate::v4l2::queue::{Memory, Queue, QueuePlane};
use crate::v4l2::{Access, BufType, Device, Format, FourCc, V4l2Error, list_devices};

const NAME: &str = "V4L2 M2M encoder";

/// CAPTURE (coded) buffers: enough that the driver always has one to fill while we copy one out.
const CODED_BUFFERS: u32 = 4;
/// OUTPUT (raw) buffers.
const RAW_BUFFERS: u32 = 4;
/// How long to wait for the device before giving up on a frame.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// How raw pictures reach the encoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputMemory {
    /// Copied into the encoder's own mapped buffers.
    Copy,
    /// Imported from the frame's DMABUF: no CPU copy.
    Dmabuf,
}

/// A codec control the driver did not take; encoding goes on with the driver's default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedControl {
    /// The control (`V4L2_CID_MPEG_VIDEO_BITRATE`, …) or setting (`VIDIOC_S_PARM`).
    pub name: &'static str,
    /// The value we asked for.
    pub value: i32,
    /// Why it was skipped: not offered by the driver, or the error it returned.
    pub reason: String,
}

/// A control set by name where the driver has it (vendor controls, whose ids and presence
/// vary by driver): looked up in the driver's own list ([`crate::v4l2::ControlTable::find`]),
/// set with `VIDIOC_S_EXT_CTRLS`; a driver without it gets a [`SkippedControl`], not an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedControl {
    /// What it is for, as reports name it ("insert SPS/PPS at IDR").
    pub label: &'static str,
    /// The names a driver may give it, tried in order ([`crate::v4l2::controls::normalize_name`]
    /// form or as printed).
    pub names: &'static [&'static str],
    /// The id from the vendor's header, tried when no name matches.
    pub id: Option<u32>,
    /// What to set.
    pub value: ControlValue,
}

/// The value of a [`NamedControl`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControlValue {
    /// An integer, boolean or menu control.
    Int(i32),
    /// A compound control whose structure is these 32-bit words in native byte order (NVIDIA's
    /// parameter structs are all `__u32`/enum fields, padded to 4 bytes).
    Words(Vec<u32>),
}

impl ControlValue {
    /// The value as one number for reports: the integer, or the last word of a structure.
    #[must_use]
    pub fn summary(&self) -> i32 {
        match self {
            Self::Int(value) => *value,
            Self::Words(words) => words
                .last()
                .map_or(0, |w| i32::try_from(*w).unwrap_or(i32::MAX)),
        }
    }
}

/// A [`NamedControl`] the driver took.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedControl {
    /// The control's label.
    pub label: &'static str,
    /// The name the driver reports for it.
    pub driver_name: String,
    /// Its id in this driver.
    pub id: u32,
    /// The value set ([`ControlValue::summary`]).
    pub value: i32,
}

/// How to open a [`V4l2M2mEncoder`] beyond the [`EncoderSettings`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct M2mOptions {
    /// Set after the standard controls, each only if the driver has it.
    pub controls: Vec<NamedControl>,
    /// Ask for the one-buffer-per-plane raw format (`NV12M`) first rather than the contiguous
    /// one (`NV12`): what Jetson's encoder takes.
    pub prefer_multi_buffer_input: bool,
    /// How the device is opened: raw system calls, or libv4l2 (JetPack 5's encoder).
    pub access: Access,
    /// The driver reads every plane of a one-buffer-per-plane input format from one DMABUF
    /// passed in each plane, finding the planes itself: NVIDIA's encoder does this with the
    /// NvBufSurface behind the DMABUF, which is how a Jetson camera's frames (one DMABUF for Y
    /// and CbCr) go in without a copy. Other drivers read each plane from the first byte of its
    /// own DMABUF, so without this such frames are copied.
    pub planes_from_one_dmabuf: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Encoding,
    /// `V4L2_ENC_CMD_STOP` sent; waiting for the buffer flagged `V4L2_BUF_FLAG_LAST`.
    Draining,
    /// The LAST buffer came; CAPTURE must be restarted before encoding again.
    Drained,
}

/// One coded buffer taken from the CAPTURE queue.
#[derive(Clone, Copy, Debug)]
struct Coded {
    len: usize,
    keyframe: bool,
    last: bool,
}

/// The V4L2 M2M stateful encoder.
#[derive(Debug)]
pub struct V4l2M2mEncoder {
    // Queues are dropped before the device they belong to (STREAMOFF, munmap, REQBUFS 0).
    output: Option<Queue>,
    capture: Queue,
    device: Arc<Device>,
    settings: EncoderSettings,
    raw: PixelFormat,
    coded: FourCc,
    output_format: Format,
    capture_format: Format,
    layout: [PlaneLayout; 3],
    skipped: Vec<SkippedControl>,
    applied: Vec<AppliedControl>,
    force_keyframe_control: bool,
    /// The driver inserts keyframes every `keyframe_interval` frames (GOP size accepted).
    driver_gop: bool,
    keyframe_requested: bool,
    /// Raw frames queued since the stream (re)started.
    frames: u64,
    timeout: Duration,
    state: State,
    /// Why DMABUF import was not used, when the first frame carried a DMABUF.
    dmabuf_refused: Option<String>,
    /// [`M2mOptions::planes_from_one_dmabuf`].
    planes_from_one_dmabuf: bool,
}

impl V4l2M2mEncoder {
    /// Opens the encoder at `path` and configures it for `settings`: `raw` pictures in,
    /// `coded` frames out (`FourCc::H264` normally).
    pub fn new(
        path: impl AsRef<Path>,
        settings: EncoderSettings,
        raw: PixelFormat,
        coded: FourCc,
    ) -> Result<Self, EncodeError> {
        Self::with_options(path, settings, raw, coded, &M2mOptions::default())
    }

    /// [`V4l2M2mEncoder::new`] with [`M2mOptions`]: vendor controls by name, the raw format
    /// variant to try first, the way to the device (raw system calls or libv4l2).
    pub fn with_options(
        path: impl AsRef<Path>,
        settings: EncoderSettings,
        raw: PixelFormat,
        coded: FourCc,
        options: &M2mOptions,
    ) -> Result<Self, EncodeError> {
        // The driver reports its own size limits when the formats are set.
        settings.validate(u32::MAX, u32::MAX)?;
        let (w, h) = (settings.width, settings.height);
        let device = Arc::new(Device::open_with(path, options.access.clone())?);
        let capability = device.capability()?;
        if !capability.is_m2m_mplane() || !capability.has_streaming() {
            return Err(EncodeError::NotAvailable {
                encoder: NAME,
                reason: format!(
                    "{} ({}, driver {}) is not a multi-planar memory-to-memory device",
                    device.path(),
                    capability.card,
                    capability.driver
                ),
            });
        }

        // 1. The coded format on CAPTURE. The buffer size is ours to choose: a raw frame's size
        //    bounds any sane coded frame.
        let coded_size = u32::try_from(raw.frame_len(w as usize, h as usize))
            .unwrap_or(u32::MAX)
            .max(256 * 1024);
        let capture_format =
            device.set_format(BufType::VideoCaptureMplane, coded, w, h, coded_size)?;
        if capture_format.fourcc != coded {
            return Err(EncodeError::InvalidSettings(format!(
                "{} cannot produce {coded} (it offers {})",
                device.path(),
                list(&device.formats(BufType::VideoCaptureMplane)?)
            )));
        }

        // 2. The raw format on OUTPUT: the format with all planes in one buffer if the driver
        //    takes it, else the one-buffer-per-plane variant (what Jetson's encoder wants).
        let contiguous = FourCc::from(raw);
        let variant = FourCc::multi_buffer_variant(raw);
        let (first, second) = match variant {
            Some(variant) if options.prefer_multi_buffer_input => (variant, Some(contiguous)),
            variant => (contiguous, variant),
        };
        let mut output_format = device.set_format(BufType::VideoOutputMplane, first, w, h, 0)?;
        if output_format.fourcc != first
            && let Some(second) = second
        {
            output_format = device.set_format(BufType::VideoOutputMplane, second, w, h, 0)?;
        }
        if output_format.fourcc.pixel_format() != Some(raw) {
            return Err(EncodeError::InvalidSettings(format!(
                "{} does not take {raw} input (it offers {})",
                device.path(),
                list(&device.formats(BufType::VideoOutputMplane)?)
            )));
        }
        // Drivers round sizes up to their alignment; a smaller size cannot hold the picture.
        if output_format.width < w || output_format.height < h {
            return Err(EncodeError::InvalidSettings(format!(
                "{} set the input size to {}x{}, smaller than {w}x{h}",
                device.path(),
                output_format.width,
                output_format.height
            )));
        }
        let mut cut = output_format;
        (cut.width, cut.height) = (w, h);
        let layout = plane_layout(&cut, raw).map_err(|reason| {
            EncodeError::InvalidSettings(format!("{}: {reason}", device.path()))
        })?;

        // Setting the raw format may have changed the coded buffer size.
        let capture_format = device.format(BufType::VideoCaptureMplane)?;

        // 3. Frame interval (rate control needs it), then the codec controls: before any buffer
        //    exists, as some drivers only accept them then.
        let mut setup = Setup {
            device: &device,
            skipped: Vec::new(),
            applied: Vec::new(),
        };
        match device.set_frame_rate(BufType::VideoOutputMplane, (settings.fps, 1)) {
            Ok(Some(_)) => {}
            Ok(None) => setup.skip(
                "VIDIOC_S_PARM (frame interval)",
                settings.fps,
                "not supported".into(),
            ),
            Err(e) => setup.skip(
                "VIDIOC_S_PARM (frame interval)",
                settings.fps,
                e.to_string(),
            ),
        }
        let controls = setup.apply(&settings, coded)?;
        if !options.controls.is_empty() {
            setup.apply_named(&options.controls)?;
        }
        let (skipped, applied) = (setup.skipped, setup.applied);

        // 4. CAPTURE buffers go to the driver now; OUTPUT waits for the first frame.
        let capture = Queue::allocate(
            Arc::clone(&device),
            BufType::VideoCaptureMplane,
            Memory::Mmap,
            CODED_BUFFERS,
            capture_format.planes().len(),
        )?;
        let mut encoder = Self {
            output: None,
            capture,
            device,
            settings,
            raw,
            coded,
            output_format,
            capture_format,
            layout,
            skipped,
            applied,
            force_keyframe_control: controls.force_keyframe,
            driver_gop: controls.driver_gop,
            keyframe_requested: false,
            frames: 0,
            timeout: DEFAULT_TIMEOUT,
            state: State::Encoding,
            dmabuf_refused: None,
            planes_from_one_dmabuf: options.planes_from_one_dmabuf,
        };
        encoder.start_capture()?;
        Ok(encoder)
    }

    /// The first `/dev/video*` node that is a multi-planar M2M device producing `coded` from
    /// `raw` input (in one buffer or one buffer per plane).
    pub fn find_device(coded: FourCc, raw: PixelFormat) -> std::io::Result<Option<PathBuf>> {
        for info in list_devices()? {
            if !info.capability.is_m2m_mplane() || !info.capability.has_streaming() {
                continue;
            }
            let Ok(device) = Device::open(&info.path) else {
                continue;
            };
            let produces = device
                .formats(BufType::VideoCaptureMplane)
                .is_ok_and(|formats| formats.contains(&coded));
            let takes = device
                .formats(BufType::VideoOutputMplane)
                .is_ok_and(|formats| formats.iter().any(|f| f.pixel_format() == Some(raw)));
            if produces && takes {
                return Ok(Some(info.path));
            }
        }
        Ok(None)
    }

    /// How the device was opened: raw system calls or libv4l2.
    #[must_use]
    pub fn access(&self) -> crate::v4l2::AccessKind {
        self.device.access().kind()
    }

    /// Controls the driver did not take, with the reason.
    #[must_use]
    pub fn skipped_controls(&self) -> &[SkippedControl] {
        &self.skipped
    }

    /// The [`M2mOptions::controls`] the driver took, with the names it reports for them.
    #[must_use]
    pub fn applied_controls(&self) -> &[AppliedControl] {
        &self.applied
    }

    /// Whether [`VideoEncoder::request_keyframe`] can take effect: the driver has
    /// `V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME`. Without it, keyframes come only from the GOP.
    #[must_use]
    pub fn supports_forced_keyframes(&self) -> bool {
        self.force_keyframe_control
    }

    /// How pictures reach the encoder, once the first frame has decided it.
    #[must_use]
    pub fn input_memory(&self) -> Option<InputMemory> {
        self.output.as_ref().map(|queue| match queue.memory() {
            Memory::Mmap => InputMemory::Copy,
            Memory::Dmabuf => InputMemory::Dmabuf,
        })
    }

    /// Why the first frame's DMABUF was not imported, if it carried one.
    #[must_use]
    pub fn dmabuf_refused(&self) -> Option<&str> {
        self.dmabuf_refused.as_deref()
    }

    /// The raw (OUTPUT) format as the driver set it.
    #[must_use]
    pub fn input_format(&self) -> &Format {
        &self.output_format
    }

    /// The coded (CAPTURE) format as the driver set it.
    #[must_use]
    pub fn coded_format(&self) -> &Format {
        &self.capture_format
    }

    /// True once [`VideoEncoder::drain`] has finished: the buffer flagged `V4L2_BUF_FLAG_LAST`
    /// came (or there was nothing to drain). The next [`VideoEncoder::encode`] starts a new
    /// stream.
    #[must_use]
    pub fn is_drained(&self) -> bool {
        self.state == State::Drained
    }

    /// Sets how long to wait for the device per frame (default 2 s).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Queues every CAPTURE buffer and starts the queue.
    fn start_capture(&mut self) -> Result<(), V4l2Error> {
        let planes = [QueuePlane::EMPTY; b::VIDEO_MAX_PLANES];
        let count = self.capture.planes();
        for index in 0..self.capture.len() {
            if !self.capture.is_queued(index) {
                self.capture.queue(index, &planes[..count], zero_time())?;
            }
        }
        self.capture.stream_on()
    }

    /// Starts a new stream after a drain: STREAMOFF + STREAMON on CAPTURE resets the encoder,
    /// one of the specification's two ways to resume. The other, `V4L2_ENC_CMD_START`, is not
    /// used: vicodec in Linux 6.1, for one, clears its stopped state before testing it and so
    /// leaves the CAPTURE queue answering EPIPE.
    fn restart(&mut self) -> Result<(), V4l2Error> {
        self.capture.stream_off()?;
        self.start_capture()?;
        self.state = State::Encoding;
        self.frames = 0;
        // A new stream starts with an IDR.
        self.keyframe_requested = true;
        Ok(())
    }

    /// Allocates the OUTPUT buffers for the first frame: DMABUF import when the frame carries a
    /// DMABUF laid out as the encoder expects, else mapped buffers to copy into.
    fn start_output(&mut self, frame: &CapturedFrame<'_>) -> Result<(), V4l2Error> {
        let planes = self.output_format.planes().len();
        let mut memory = Memory::Mmap;
        if let Some(dmabuf) = &frame.dmabuf {
            match self.dmabuf_planes(&frame.picture, dmabuf) {
                Ok(_) => memory = Memory::Dmabuf,
                Err(reason) => self.dmabuf_refused = Some(reason),
            }
        }
        let queue = match Queue::allocate(
            Arc::clone(&self.device),
            BufType::VideoOutputMplane,
            memory,
            RAW_BUFFERS,
            planes,
        ) {
            Ok(queue) => queue,
            Err(e) if memory == Memory::Dmabuf => {
                self.dmabuf_refused = Some(format!("the driver refused DMABUF buffers: {e}"));
                Queue::allocate(
                    Arc::clone(&self.device),
                    BufType::VideoOutputMplane,
                    Memory::Mmap,
                    RAW_BUFFERS,
                    planes,
                )?
            }
            Err(e) => return Err(e),
        };
        let mut queue = queue;
        queue.stream_on()?;
        self.output = Some(queue);
        Ok(())
    }

    /// [`import_planes`] for this encoder's input format.
    fn dmabuf_planes<'f>(
        &self,
        picture: &Picture<'_>,
        dmabuf: &FrameDmabuf<'f>,
    ) -> Result<[QueuePlane<'f>; b::VIDEO_MAX_PLANES], String> {
        import_planes(
            &self.output_format,
            &self.layout,
            self.planes_from_one_dmabuf,
            picture,
            dmabuf,
        )
    }

    /// Copies the picture into OUTPUT buffer `index`; returns bytes used per memory plane.
    fn fill(
        &mut self,
        index: usize,
        picture: &Picture<'_>,
    ) -> Result<[u32; b::VIDEO_MAX_PLANES], EncodeError> {
        let mut used = [0; b::VIDEO_MAX_PLANES];
        for (plane_format, used) in self.output_format.planes().iter().zip(&mut used) {
            *used = plane_format.sizeimage;
        }
        let Some(queue) = self.output.as_mut() else {
            return Err(backend("the input queue is not set up"));
        };
        let row_lens = row_lengths(self.raw, picture.width() as usize);
        for ((plane, layout), row_len) in picture.planes().iter().zip(&self.layout).zip(row_lens) {
            let Some(memory) = queue.plane_mut(index, layout.memory_plane) else {
                return Err(backend(
                    "input buffer is not mapped or still with the driver",
                ));
            };
            let Some(dst) = memory.get_mut(layout.offset..) else {
                return Err(backend("input buffer smaller than its format"));
            };
            for row in 0..layout.rows {
                let src = plane
                    .data
                    .get(row * plane.stride..row * plane.stride + row_len);
                let dst_row = dst.get_mut(row * layout.stride..row * layout.stride + row_len);
                match (src, dst_row) {
                    (Some(src), Some(dst_row)) => dst_row.copy_from_slice(src),
                    _ => return Err(backend("picture rows do not fit the input buffer")),
                }
            }
        }
        Ok(used)
    }

    /// Takes back OUTPUT buffers the driver has finished with.
    fn reclaim_output(&mut self) -> Result<(), V4l2Error> {
        if let Some(queue) = self.output.as_mut() {
            while queue.any_queued() {
                if queue.dequeue()?.is_none() {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Waits until the device has something for us or the deadline passes.
    fn wait(&self, deadline: Instant, what: &'static str) -> Result<(), V4l2Error> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(self.device.error(what, Errno::ETIMEDOUT));
        }
        let events = self
            .device
            .poll(PollFlags::POLLIN | PollFlags::POLLOUT, left)?;
        if events.contains(PollFlags::POLLERR) {
            // Not streaming or a device error; the next DQBUF says which, or we report EIO.
            std::thread::sleep(Duration::from_millis(1).min(left));
        }
        Ok(())
    }

    /// A free OUTPUT buffer, waiting for one if all are with the driver.
    fn free_output(&mut self, deadline: Instant) -> Result<usize, EncodeError> {
        loop {
            self.reclaim_output()?;
            match self.output.as_ref().map(Queue::free_buffer) {
                Some(Some(index)) => return Ok(index),
                Some(None) => self.wait(
                    deadline,
                    "VIDIOC_DQBUF (no input buffer came back before the timeout)",
                )?,
                None => return Err(backend("the input queue is not set up")),
            }
        }
    }

    /// Waits until OUTPUT buffer `index` is back from the driver.
    fn wait_released(&mut self, index: usize, deadline: Instant) -> Result<(), V4l2Error> {
        loop {
            self.reclaim_output()?;
            if !self.output.as_ref().is_some_and(|q| q.is_queued(index)) {
                return Ok(());
            }
            self.wait(
                deadline,
                "VIDIOC_DQBUF (the imported DMABUF did not come back before the timeout)",
            )?;
        }
    }

    /// Waits for the next coded buffer, appends its payload to `out` and gives it back to the
    /// driver. H.264 buffers holding only parameter sets (drivers that send headers separately)
    /// are appended and the wait goes on, so one call yields one whole access unit.
    ///
    /// With `expected`, coded buffers of earlier frames (left over after a timed-out
    /// [`VideoEncoder::encode`]) are dropped, so output stays aligned with input; M2M drivers
    /// copy the OUTPUT timestamp, which carries the frame number, to the CAPTURE buffer.
    fn next_coded(
        &mut self,
        out: &mut Vec<u8>,
        deadline: Instant,
        expected: Option<u64>,
    ) -> Result<Coded, EncodeError> {
        let mut keyframe = false;
        loop {
            self.reclaim_output()?;
            let done = match self.capture.dequeue() {
                Ok(Some(done)) => done,
                Ok(None) => {
                    self.wait(deadline, "VIDIOC_DQBUF (no coded frame before the timeout)")?;
                    continue;
                }
                // After the LAST buffer the queue answers EPIPE: the stream is over.
                Err(e) if e.errno == Errno::EPIPE => {
                    return Ok(Coded {
                        len: out.len(),
                        keyframe,
                        last: true,
                    });
                }
                Err(e) => return Err(e.into()),
            };
            let copied =
                done.flags & b::V4L2_BUF_FLAG_TIMESTAMP_MASK == b::V4L2_BUF_FLAG_TIMESTAMP_COPY;
            let frame = u64::try_from(done.timestamp.tv_sec).unwrap_or(0) * 1_000_000
                + u64::try_from(done.timestamp.tv_usec).unwrap_or(0);
            let stale = copied
                && done.flags & b::V4L2_BUF_FLAG_LAST == 0
                && expected.is_some_and(|expected| frame < expected);
            let (offset, used) = done.payload[0];
            let payload = self
                .capture
                .plane(done.index, 0)
                .and_then(|memory| memory.get(offset as usize..used as usize));
            let appended = match payload {
                Some(_) if stale => Ok(true),
                Some(data) => {
                    keyframe |= is_keyframe(self.coded, done.flags, data);
                    let headers_only =
                        self.coded == FourCc::H264 && !data.is_empty() && !has_h264_picture(data);
                    append_within_capacity(out, data).map(|()| headers_only)
                }
                None => Err(backend(&format!(
                    "the driver reported payload {offset}..{used} outside its buffer"
                ))),
            };
            // Back to the driver before anything else, so the queue never runs dry.
            let planes = [QueuePlane::EMPTY; b::VIDEO_MAX_PLANES];
            self.capture
                .queue(done.index, &planes[..self.capture.planes()], zero_time())?;
            // `incomplete`: a stale buffer (dropped) or parameter sets only; wait for more.
            let incomplete = appended?;
            let last = done.flags & b::V4L2_BUF_FLAG_LAST != 0;
            if done.flags & b::V4L2_BUF_FLAG_ERROR != 0 && !stale {
                return Err(backend("the driver flagged the coded buffer as erroneous"));
            }
            if !incomplete || last {
                return Ok(Coded {
                    len: out.len(),
                    keyframe,
                    last,
                });
            }
        }
    }
}

/// Configuration of a freshly opened encoder: what took and what was skipped.
struct Setup<'a> {
    device: &'a Device,
    skipped: Vec<SkippedControl>,
    applied: Vec<AppliedControl>,
}

/// What the controls left us with.
struct Controls {
    /// The driver inserts keyframes every `keyframe_interval` frames (GOP size accepted).
    driver_gop: bool,
    /// `V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME` exists.
    force_keyframe: bool,
}

impl Setup<'_> {
    fn skip(&mut self, name: &'static str, value: impl TryInto<i32>, reason: String) {
        self.skipped.push(SkippedControl {
            name,
            value: value.try_into().unwrap_or(i32::MAX),
            reason,
        });
    }

    /// Sets one control if the driver offers it; returns whether it took.
    fn control(&mut self, name: &'static str, id: u32, value: i32) -> Result<bool, V4l2Error> {
        match self.device.query_control(id)? {
            None => {
                self.skip(name, value, "not offered by the driver".into());
                Ok(false)
            }
            Some((min, max)) if value < min || value > max => {
                self.skip(
                    name,
                    value,
                    format!("outside the driver's range {min}..={max}"),
                );
                Ok(false)
            }
            Some(_) => match self.device.set_control(id, value) {
                Ok(_) => Ok(true),
                Err(e) => {
                    self.skip(name, value, e.to_string());
                    Ok(false)
                }
            },
        }
    }

    /// Sets each named control the driver lists; the others are skipped with the reason.
    fn apply_named(&mut self, controls: &[NamedControl]) -> Result<(), V4l2Error> {
        let table = self.device.controls()?;
        for control in controls {
            let value = control.value.summary();
            let Some(info) = table.find(control.names, control.id) else {
                let mut tried = control.names.join("\", \"");
                if let Some(id) = control.id {
                    tried.push_str(&format!("\" or id {id:#010x}"));
                } else {
                    tried.push('"');
                }
                self.skip(
                    control.label,
                    value,
                    format!("not offered by the driver (looked for \"{tried})"),
                );
                continue;
            };
            if !info.is_writable() {
                self.skip(
                    control.label,
                    value,
                    format!("\"{}\" is disabled or read-only", info.name),
                );
                continue;
            }
            let result = match (&control.value, info.kind) {
                (ControlValue::Int(v), kind) if kind.is_integer() => {
                    if *v < info.minimum || *v > info.maximum {
                        self.skip(
                            control.label,
                            value,
                            format!(
                                "outside \"{}\"'s range {}..={}",
                                info.name, info.minimum, info.maximum
                            ),
                        );
                        continue;
                    }
                    self.device.set_ext_control(info.id, *v)
                }
                (ControlValue::Words(words), ControlKind::Compound(_)) => {
                    let mut payload: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
                    self.device.set_compound_control(info.id, &mut payload)
                }
                (_, kind) => {
                    self.skip(
                        control.label,
                        value,
                        format!(
                            "\"{}\" is a {kind:?} control, not the value given",
                            info.name
                        ),
                    );
                    continue;
                }
            };
            match result {
                Ok(()) => self.applied.push(AppliedControl {
                    label: control.label,
                    driver_name: info.name.clone(),
                    id: info.id,
                    value,
                }),
                Err(e) => self.skip(control.label, value, e.to_string()),
            }
        }
        Ok(())
    }

    /// The low-latency configuration: no B-frames, one reference, IDR period from the settings,
    /// constant bitrate; for H.264 constrained baseline, a level that fits, and SPS/PPS in front
    /// of every IDR.
    fn apply(&mut self, s: &EncoderSettings, coded: FourCc) -> Result<Controls, V4l2Error> {
        let bitrate = i32::try_from(s.bitrate_bps).unwrap_or(i32::MAX);
        let mut driver_gop = false;
        self.control(
            "V4L2_CID_MPEG_VIDEO_B_FRAMES",
            b::V4L2_CID_MPEG_VIDEO_B_FRAMES,
            0,
        )?;
        self.control(
            "V4L2_CID_MPEG_VIDEO_MAX_REF_PIC",
            b::V4L2_CID_MPEG_VIDEO_MAX_REF_PIC,
            1,
        )?;
        if s.bitrate_bps > 0 {
            self.control(
                "V4L2_CID_MPEG_VIDEO_BITRATE_MODE",
                b::V4L2_CID_MPEG_VIDEO_BITRATE_MODE,
                b::V4L2_MPEG_VIDEO_BITRATE_MODE_CBR,
            )?;
            self.control(
                "V4L2_CID_MPEG_VIDEO_BITRATE",
                b::V4L2_CID_MPEG_VIDEO_BITRATE,
                bitrate,
            )?;
        }
        if s.keyframe_interval > 0 {
            let interval = i32::try_from(s.keyframe_interval).unwrap_or(i32::MAX);
            driver_gop = self.control(
                "V4L2_CID_MPEG_VIDEO_GOP_SIZE",
                b::V4L2_CID_MPEG_VIDEO_GOP_SIZE,
                interval,
            )?;
            if coded == FourCc::H264 {
                self.control(
                    "V4L2_CID_MPEG_VIDEO_H264_I_PERIOD",
                    b::V4L2_CID_MPEG_VIDEO_H264_I_PERIOD,
                    interval,
                )?;
            }
        }
        if coded == FourCc::H264 {
            let constrained = self.control(
                "V4L2_CID_MPEG_VIDEO_H264_PROFILE",
                b::V4L2_CID_MPEG_VIDEO_H264_PROFILE,
                b::V4L2_MPEG_VIDEO_H264_PROFILE_CONSTRAINED_BASELINE,
            )?;
            // Older drivers only list plain baseline; the stream is the same without B-frames or
            // FMO/ASO, which encoders do not use.
            if !constrained
                && self.control(
                    "V4L2_CID_MPEG_VIDEO_H264_PROFILE",
                    b::V4L2_CID_MPEG_VIDEO_H264_PROFILE,
                    b::V4L2_MPEG_VIDEO_H264_PROFILE_BASELINE,
                )?
            {
                self.skipped
                    .retain(|skipped| skipped.name != "V4L2_CID_MPEG_VIDEO_H264_PROFILE");
            }
            self.control(
                "V4L2_CID_MPEG_VIDEO_H264_LEVEL",
                b::V4L2_CID_MPEG_VIDEO_H264_LEVEL,
                h264_level(s.width, s.height, s.fps, s.bitrate_bps),
            )?;
            self.control(
                "V4L2_CID_MPEG_VIDEO_HEADER_MODE",
                b::V4L2_CID_MPEG_VIDEO_HEADER_MODE,
                b::V4L2_MPEG_VIDEO_HEADER_MODE_JOINED_WITH_1ST_FRAME,
            )?;
            // Two controls for the same wish: the older one many SoC drivers have, the newer
            // standard one.
            self.control(
                "V4L2_CID_MPEG_VIDEO_REPEAT_SEQ_HEADER",
                b::V4L2_CID_MPEG_VIDEO_REPEAT_SEQ_HEADER,
                1,
            )?;
            self.control(
                "V4L2_CID_MPEG_VIDEO_PREPEND_SPSPPS_TO_IDR",
                b::V4L2_CID_MPEG_VIDEO_PREPEND_SPSPPS_TO_IDR,
                1,
            )?;
        }
        let force_keyframe = self
            .device
            .query_control(b::V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME)?
            .is_some();
        if !force_keyframe {
            self.skip(
                "V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME",
                1,
                "not offered by the driver: keyframes come only from the GOP".into(),
            );
        }
        Ok(Controls {
            driver_gop,
            force_keyframe,
        })
    }
}

impl VideoEncoder for V4l2M2mEncoder {
    fn settings(&self) -> &EncoderSettings {
        &self.settings
    }

    fn request_keyframe(&mut self) {
        self.keyframe_requested = true;
    }

    fn encode(
        &mut self,
        frame: &CapturedFrame<'_>,
        out: &mut Vec<u8>,
    ) -> Result<EncodedFrame, EncodeError> {
        let started = Instant::now();
        out.clear();
        let picture = &frame.picture;
        self.settings.check_picture(picture, Some(self.raw))?;
        match self.state {
            State::Encoding => {}
            State::Draining => {
                return Err(backend(
                    "drain() is in progress: call it until it returns None",
                ));
            }
            State::Drained => self.restart()?,
        }
        if self.output.is_none() {
            self.start_output(frame)?;
        }
        let deadline = started + self.timeout;
        let index = self.free_output(deadline)?;
        let mut planes = [QueuePlane::EMPTY; b::VIDEO_MAX_PLANES];
        let dmabuf = self.input_memory() == Some(InputMemory::Dmabuf);
        if dmabuf {
            let Some(frame_dmabuf) = &frame.dmabuf else {
                return Err(backend(
                    "the encoder imports DMABUFs (the first frame had one); this frame has none",
                ));
            };
            planes = self
                .dmabuf_planes(picture, frame_dmabuf)
                .map_err(|reason| {
                    backend(&format!("this frame's DMABUF cannot be imported: {reason}"))
                })?;
        } else {
            let used = self.fill(index, picture)?;
            for (plane, used) in planes.iter_mut().zip(used) {
                plane.bytesused = used;
            }
        }

        // Keyframes: on request, or on our own schedule when the driver has no GOP control.
        let interval = u64::from(self.settings.keyframe_interval);
        let scheduled = !self.driver_gop
            && interval > 0
            && self.frames > 0
            && self.frames.is_multiple_of(interval);
        if (self.keyframe_requested || scheduled) && self.force_keyframe_control {
            self.device
                .set_control(b::V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME, 1)?;
        }
        self.keyframe_requested = false;

        // The frame number as timestamp: M2M drivers copy it to the coded buffer.
        let stamp = libc::timeval {
            tv_sec: (self.frames / 1_000_000) as libc::time_t,
            tv_usec: (self.frames % 1_000_000) as libc::suseconds_t,
        };
        let count = self.output_format.planes().len();
        if let Some(queue) = self.output.as_mut() {
            queue.queue(index, &planes[..count], stamp)?;
        }
        let frame_number = self.frames;
        self.frames += 1;

        let coded = self.next_coded(out, deadline, Some(frame_number));
        // An imported frame goes back to its source after this call: wait until the driver has
        // let go of it, on the error path too.
        let released = if dmabuf {
            self.wait_released(index, deadline)
        } else {
            Ok(())
        };
        let coded = match coded.and_then(|coded| released.map(|()| coded).map_err(Into::into)) {
            Ok(coded) => coded,
            Err(e) => {
                // This frame's data may come late and be dropped, and later frames may refer
                // to it: ask for a fresh start.
                self.keyframe_requested = true;
                return Err(e);
            }
        };
        if coded.last {
            self.state = State::Drained;
        }
        Ok(EncodedFrame {
            len: coded.len,
            keyframe: coded.keyframe,
            encode_time: started.elapsed(),
        })
    }

    /// `V4L2_ENC_CMD_STOP`, then the coded buffers still inside the encoder, one per call, until
    /// the one flagged `V4L2_BUF_FLAG_LAST` (an empty LAST buffer ends it with `Ok(None)`).
    fn drain(&mut self, out: &mut Vec<u8>) -> Result<Option<EncodedFrame>, EncodeError> {
        out.clear();
        let started = Instant::now();
        match self.state {
            State::Drained => return Ok(None),
            State::Encoding => {
                let streaming = self.output.as_ref().is_some_and(Queue::is_streaming);
                if !streaming || self.frames == 0 {
                    // Nothing was ever queued: nothing to drain, and the specification says the
                    // command would not start a drain anyway.
                    self.state = State::Drained;
                    return Ok(None);
                }
                match self.device.encoder_command(b::V4L2_ENC_CMD_STOP) {
                    Ok(()) => self.state = State::Draining,
                    // Without the command there is no way to flush; in synchronous use nothing
                    // is held back.
                    Err(e) if matches!(e.errno, Errno::ENOTTY | Errno::EINVAL) => {
                        self.state = State::Drained;
                        return Ok(None);
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            State::Draining => {}
        }
        loop {
            let coded = self.next_coded(out, started + self.timeout, None)?;
            if coded.last {
                self.state = State::Drained;
            }
            if coded.len > 0 {
                return Ok(Some(EncodedFrame {
                    len: coded.len,
                    keyframe: coded.keyframe,
                    encode_time: started.elapsed(),
                }));
            }
            // The LAST buffer may be empty: it only marks the end.
            if coded.last {
                return Ok(None);
            }
        }
    }
}

fn backend(message: &str) -> EncodeError {
    EncodeError::Backend {
        encoder: NAME,
        message: message.to_owned(),
    }
}

fn list(formats: &[FourCc]) -> String {
    if formats.is_empty() {
        return "nothing".into();
    }
    formats
        .iter()
        .map(FourCc::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The OUTPUT buffer planes that import a frame's DMABUFs into `input` (cut by `layout`) as they are, or why they
/// cannot be imported:
///
/// - Each picture plane must be where the input format puts it: rows at the format's
///   stride, and the picture planes of one memory plane in one DMABUF at the format's
///   offsets from its first byte (encoders read a buffer from its start). So `NV12` input
///   takes one DMABUF holding both planes, `NV12M` one DMABUF per plane.
/// - With [`M2mOptions::planes_from_one_dmabuf`], a frame whose planes all lie in one
///   DMABUF goes into one-buffer-per-plane input as that DMABUF in every plane, wherever the
///   planes are in it: the driver reads their layout from the buffer itself.
///
/// A DMABUF must hold at least the bytes the driver reads from it (the format's `sizeimage`
/// for its plane).
fn import_planes<'f>(
    input: &Format,
    layout: &[PlaneLayout; 3],
    planes_from_one_dmabuf: bool,
    picture: &Picture<'_>,
    dmabuf: &FrameDmabuf<'f>,
) -> Result<[QueuePlane<'f>; b::VIDEO_MAX_PLANES], String> {
    let formats = input.planes();
    let fourcc = input.fourcc;
    let pictures = picture.planes();
    if dmabuf.len() != pictures.len() {
        return Err(format!(
            "the frame gives {} DMABUF planes for its {} picture planes",
            dmabuf.len(),
            pictures.len()
        ));
    }
    let mut planes = [QueuePlane::EMPTY; b::VIDEO_MAX_PLANES];
    if planes_from_one_dmabuf && formats.len() > 1 && dmabuf.is_shared() {
        let Some(first) = dmabuf.plane(0) else {
            return Err("the frame has no DMABUF plane".into());
        };
        let size = dmabuf_size(first.fd)?;
        // The driver finds the planes itself; they must still lie inside the DMABUF.
        for (index, (plane, at)) in pictures.iter().zip(dmabuf.planes()).enumerate() {
            let end = at.offset.saturating_add(plane.data.len());
            if end > size as usize {
                return Err(format!(
                    "plane {index} ends at byte {end} of a {size}-byte DMABUF"
                ));
            }
        }
        for (index, (out, format)) in planes.iter_mut().zip(formats).enumerate() {
            if format.sizeimage > size {
                return Err(format!(
                    "the DMABUF has {size} bytes, {fourcc} plane {index} needs {}",
                    format.sizeimage
                ));
            }
            *out = QueuePlane {
                bytesused: format.sizeimage,
                dmabuf: Some(first.fd),
                length: size,
            };
        }
        return Ok(planes);
    }
    for (index, ((plane, cut), at)) in pictures.iter().zip(layout).zip(dmabuf.planes()).enumerate()
    {
        let Some(out) = planes.get_mut(cut.memory_plane) else {
            return Err(format!("plane {index} has no memory plane"));
        };
        match out.dmabuf {
            None => out.dmabuf = Some(at.fd),
            Some(fd) if crate::capture::same_buffer(fd, at.fd) => {}
            Some(_) => {
                return Err(format!(
                    "plane {index} is in a DMABUF of its own; {fourcc} input has it in the same buffer as plane {}",
                    index - 1
                ));
            }
        }
        if plane.stride != cut.stride || at.offset != cut.offset {
            return Err(format!(
                "plane {index} is at byte {} of its DMABUF with stride {}, {fourcc} input has it at byte {} with stride {}",
                at.offset, plane.stride, cut.offset, cut.stride
            ));
        }
    }
    for (index, (out, format)) in planes.iter_mut().zip(formats).enumerate() {
        let Some(fd) = out.dmabuf else {
            return Err(format!("no picture plane lies in {fourcc} plane {index}"));
        };
        let size = dmabuf_size(fd)?;
        if size < format.sizeimage {
            return Err(format!(
                "the DMABUF of {fourcc} plane {index} has {size} bytes, the encoder needs {}",
                format.sizeimage
            ));
        }
        out.bytesused = format.sizeimage;
        out.length = size;
    }
    Ok(planes)
}

/// A DMABUF's size: where seeking to its end lands.
fn dmabuf_size(fd: BorrowedFd<'_>) -> Result<u32, String> {
    let size = lseek(fd, 0, Whence::SeekEnd)
        .map_err(|errno| format!("cannot tell the DMABUF's size: {errno}"))?;
    u32::try_from(size)
        .map_err(|_| format!("the DMABUF has {size} bytes, more than a V4L2 plane describes"))
}

fn zero_time() -> libc::timeval {
    libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    }
}

/// Bytes of one row of each plane.
fn row_lengths(format: PixelFormat, width: usize) -> [usize; 3] {
    match format {
        PixelFormat::Yuyv => [2 * width, 0, 0],
        PixelFormat::Nv12 => [width, width, 0],
        PixelFormat::I420 => [width, width / 2, width / 2],
    }
}

/// Whether a coded buffer starts a keyframe. Drivers are not required to set
/// `V4L2_BUF_FLAG_KEYFRAME` on encoded buffers (vicodec never does), so the bitstream decides
/// where it can: for H.264 an IDR slice (what the rest of the SDK calls a keyframe; a non-IDR I
/// frame the flag may mark does not reset decoding), for FWHT the header's I-frame flag.
fn is_keyframe(coded: FourCc, flags: u32, data: &[u8]) -> bool {
    match coded {
        FourCc::H264 => h264_nal_types(data).any(|t| t == 5),
        _ if flags & b::V4L2_BUF_FLAG_KEYFRAME != 0 => true,
        _ if flags & (b::V4L2_BUF_FLAG_PFRAME | b::V4L2_BUF_FLAG_BFRAME) != 0 => false,
        FourCc::FWHT => fwht_is_intra(data),
        _ => false,
    }
}

/// NAL unit types of an Annex-B buffer (none if it is not Annex-B).
fn h264_nal_types(data: &[u8]) -> impl Iterator<Item = u8> + '_ {
    flowcloud_core::h264::annexb::nal_units(data)
        .into_iter()
        .flatten()
        .filter_map(|nal| nal.first().map(|b| b & 0x1f))
}

/// Whether an H.264 buffer holds a coded picture (a VCL NAL unit, types 1 to 5), not only
/// parameter sets or SEI.
fn has_h264_picture(data: &[u8]) -> bool {
    h264_nal_types(data).any(|t| (1..=5).contains(&t))
}

/// The FWHT frame header (vicodec's `struct fwht_cframe_hdr`): two magic words, then big-endian
/// version, width, height, flags, …; flag bit 10 is `V4L2_FWHT_FL_I_FRAME`.
fn fwht_is_intra(data: &[u8]) -> bool {
    const MAGIC: [u8; 8] = [0x4f, 0x4f, 0x4f, 0x4f, 0xff, 0xff, 0xff, 0xff];
    const I_FRAME: u32 = 1 << 10;
    match (data.get(..8), data.get(20..24)) {
        (Some(magic), Some(flags)) if magic == MAGIC => {
            let flags = u32::from_be_bytes([flags[0], flags[1], flags[2], flags[3]]);
            flags & I_FRAME != 0
        }
        _ => false,
    }
}

/// The lowest H.264 level (Table A-1) whose frame size, macroblock rate and baseline bitrate
/// limits hold the settings, as the V4L2 control value; 5.2 if none does.
fn h264_level(width: u32, height: u32, fps: u32, bitrate_bps: u32) -> i32 {
    // (V4L2 index from LEVEL_1_0, MaxFS in macroblocks, MaxMBPS, MaxBR in kbit/s)
    const LEVELS: [(i32, u64, u64, u64); 16] = [
        (0, 99, 1_485, 64),
        (2, 396, 3_000, 192),
        (3, 396, 6_000, 384),
        (4, 396, 11_880, 768),
        (5, 396, 11_880, 2_000),
        (6, 792, 19_800, 4_000),
        (7, 1_620, 20_250, 4_000),
        (8, 1_620, 40_500, 10_000),
        (9, 3_600, 108_000, 14_000),
        (10, 5_120, 216_000, 20_000),
        (11, 8_192, 245_760, 20_000),
        (12, 8_192, 245_760, 50_000),
        (13, 8_704, 522_240, 50_000),
        (14, 22_080, 589_824, 135_000),
        (15, 36_864, 983_040, 240_000),
        (16, 36_864, 2_073_600, 240_000),
    ];
    let mbs = u64::from(width.div_ceil(16)) * u64::from(height.div_ceil(16));
    let mbps = mbs * u64::from(fps);
    let kbps = u64::from(bitrate_bps).div_ceil(1000);
    LEVELS
        .iter()
        .find(|&&(_, max_fs, max_mbps, max_br)| mbs <= max_fs && mbps <= max_mbps && kbps <= max_br)
        .map_or(16, |&(level, ..)| b::V4L2_MPEG_VIDEO_H264_LEVEL_1_0 + level)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::DmabufPlane;
    use crate::picture::Plane;
    use crate::v4l2::layout::tests::format;
    use nix::sys::memfd::{MFdFlags, memfd_create};
    use std::os::fd::{AsFd, AsRawFd, OwnedFd};

    /// A file of `len` bytes standing in for a DMABUF: import only reads its size.
    fn buffer(len: usize) -> OwnedFd {
        let fd = memfd_create(c"fake-dmabuf", MFdFlags::MFD_CLOEXEC).unwrap();
        nix::unistd::ftruncate(&fd, len as i64).unwrap();
        fd
    }

    /// A 64x32 NV12 picture with 64-byte rows, and the layout of `input` for it.
    fn nv12<'a>(bytes: &'a [u8], input: &Format) -> (Picture<'a>, [PlaneLayout; 3]) {
        let planes = [
            Plane {
                data: &bytes[..2048],
                stride: 64,
            },
            Plane {
                data: &bytes[2048..3072],
                stride: 64,
            },
        ];
        let picture = Picture::new(PixelFormat::Nv12, 64, 32, &planes).unwrap();
        (picture, plane_layout(input, PixelFormat::Nv12).unwrap())
    }

    /// (fd, bytesused, length) of each memory plane.
    fn described(planes: &[QueuePlane<'_>], count: usize) -> Vec<(i32, u32, u32)> {
        planes[..count]
            .iter()
            .map(|p| {
                (
                    p.dmabuf.map_or(-1, |fd| fd.as_raw_fd()),
                    p.bytesused,
                    p.length,
                )
            })
            .collect()
    }

    #[test]
    fn contiguous_input_imports_one_dmabuf_holding_every_plane() {
        let input = format(FourCc::NV12, 64, 32, &[(64, 3072)]);
        let bytes = vec![0; 3072];
        let (picture, layout) = nv12(&bytes, &input);
        let fd = buffer(4096);
        let raw = fd.as_raw_fd();
        let dmabuf = FrameDmabuf::shared(fd.as_fd(), &[0, 2048]);
        let planes = import_planes(&input, &layout, false, &picture, &dmabuf).unwrap();
        assert_eq!(described(&planes, 1), [(raw, 3072, 4096)]);
        assert!(planes[1].dmabuf.is_none());

        // CbCr a row further on than the format puts it.
        let moved = FrameDmabuf::shared(fd.as_fd(), &[0, 2112]);
        let error = import_planes(&input, &layout, false, &picture, &moved).unwrap_err();
        assert!(error.contains("plane 1 is at byte 2112"), "{error}");
        assert!(error.contains("NV12 input has it at byte 2048"), "{error}");

        // The picture must start at the DMABUF's first byte: encoders read from there.
        let late = FrameDmabuf::shared(fd.as_fd(), &[64, 2112]);
        let error = import_planes(&input, &layout, false, &picture, &late).unwrap_err();
        assert!(error.contains("plane 0 is at byte 64"), "{error}");

        // Too small for the format's sizeimage.
        let small = buffer(3000);
        let dmabuf = FrameDmabuf::shared(small.as_fd(), &[0, 2048]);
        let error = import_planes(&input, &layout, false, &picture, &dmabuf).unwrap_err();
        assert!(
            error.contains("has 3000 bytes, the encoder needs 3072"),
            "{error}"
        );

        // The CbCr plane through another fd of the same buffer (exported twice, or dup'ed):
        // still one buffer, queued through the first plane's fd.
        let again = fd.try_clone().unwrap();
        let twice = FrameDmabuf::new(&[
            Some(DmabufPlane {
                fd: fd.as_fd(),
                offset: 0,
            }),
            Some(DmabufPlane {
                fd: again.as_fd(),
                offset: 2048,
            }),
        ])
        .unwrap();
        let planes = import_planes(&input, &layout, false, &picture, &twice).unwrap();
        assert_eq!(described(&planes, 1), [(raw, 3072, 4096)]);

        // One plane described for a two-plane picture.
        let short = FrameDmabuf::shared(fd.as_fd(), &[0]);
        let error = import_planes(&input, &layout, false, &picture, &short).unwrap_err();
        assert!(error.contains("1 DMABUF planes for its 2"), "{error}");
    }

    #[test]
    fn contiguous_input_refuses_a_dmabuf_per_plane() {
        let input = format(FourCc::NV12, 64, 32, &[(64, 3072)]);
        let bytes = vec![0; 3072];
        let (picture, layout) = nv12(&bytes, &input);
        let (y, cbcr) = (buffer(2048), buffer(1024));
        let dmabuf = FrameDmabuf::per_plane(&[y.as_fd(), cbcr.as_fd()]);
        for nvidia in [false, true] {
            let error = import_planes(&input, &layout, nvidia, &picture, &dmabuf).unwrap_err();
            assert!(
                error.contains("plane 1 is in a DMABUF of its own; NV12 input has it in the same buffer as plane 0"),
                "{error}"
            );
        }
    }

    #[test]
    fn multi_buffer_input_imports_a_dmabuf_per_plane() {
        let input = format(FourCc::NV12M, 64, 32, &[(64, 2048), (64, 1024)]);
        let bytes = vec![0; 3072];
        let (picture, layout) = nv12(&bytes, &input);
        let (y, cbcr) = (buffer(2048), buffer(4096));
        let dmabuf = FrameDmabuf::per_plane(&[y.as_fd(), cbcr.as_fd()]);
        let planes = import_planes(&input, &layout, false, &picture, &dmabuf).unwrap();
        assert_eq!(
            described(&planes, 2),
            [(y.as_raw_fd(), 2048, 2048), (cbcr.as_raw_fd(), 1024, 4096)]
        );

        let small = buffer(512);
        let dmabuf = FrameDmabuf::per_plane(&[y.as_fd(), small.as_fd()]);
        let error = import_planes(&input, &layout, false, &picture, &dmabuf).unwrap_err();
        assert!(
            error.contains("the DMABUF of NM12 plane 1 has 512 bytes, the encoder needs 1024"),
            "{error}"
        );
    }

    /// Runs in the v4l2-vm guest (`FLOWCLOUD_V4L2_GUEST` set), whose multi-planar vivid has a
    /// capture and an output node: NV12M frames captured with a DMABUF per plane go, as the
    /// encoder imports them, into the output node's NV12M DMABUF queue, and the driver takes
    /// and returns each. Skipped, saying so, where there is no such vivid.
    #[test]
    fn in_guest_a_dmabuf_per_plane_imports_into_a_drivers_nv12m_queue() {
        use crate::capture::CaptureSource;
        use crate::capture::v4l2::{CaptureMemory, V4l2Capture, V4l2CaptureConfig};

        let name = "in_guest_a_dmabuf_per_plane_imports_into_a_drivers_nv12m_queue";
        let guest = std::env::var_os("FLOWCLOUD_V4L2_GUEST").is_some();
        let nodes = list_devices().unwrap_or_default();
        let vivid = |caps: u32| {
            nodes
                .iter()
                .find(|info| {
                    let c = &info.capability;
                    c.driver == "vivid" && c.has_streaming() && c.node_caps() & caps != 0
                })
                .map(|info| info.path.clone())
        };
        let (Some(camera), Some(output)) = (
            vivid(b::V4L2_CAP_VIDEO_CAPTURE_MPLANE),
            vivid(b::V4L2_CAP_VIDEO_OUTPUT_MPLANE),
        ) else {
            assert!(
                !guest,
                "no multi-planar vivid capture and output node: {nodes:?}"
            );
            eprintln!("SKIP {name}: no multi-planar vivid here (it runs in the v4l2-vm guest)");
            return;
        };

        let mut config = V4l2CaptureConfig::new(640, 480, PixelFormat::Nv12);
        config.memory = CaptureMemory::DmabufExport;
        config.multi_buffer = true;
        config.timeout = Duration::from_secs(10);
        let mut capture = V4l2Capture::open(&camera, &config).unwrap();
        assert_eq!(capture.device_format().fourcc, FourCc::NV12M);

        let device = Arc::new(Device::open(&output).unwrap());
        let input = device
            .set_format(BufType::VideoOutputMplane, FourCc::NV12M, 640, 480, 0)
            .unwrap();
        assert_eq!(
            (input.fourcc, input.width, input.height),
            (FourCc::NV12M, 640, 480)
        );
        // vivid's first output is S-Video, so interlaced; the rows of an interlaced frame lie
        // as a progressive one's, and only the import is under test here.
        let mut progressive = input;
        progressive.field = b::V4L2_FIELD_NONE;
        let layout = plane_layout(&progressive, PixelFormat::Nv12).unwrap();
        let mut queue = Queue::allocate(
            Arc::clone(&device),
            BufType::VideoOutputMplane,
            Memory::Dmabuf,
            2,
            2,
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut done_frames = 0;
        for n in 0..8 {
            let frame = capture.next_frame().unwrap();
            let dmabuf = frame.dmabuf.expect("exported NV12M frames carry DMABUFs");
            let planes = import_planes(&input, &layout, false, &frame.picture, &dmabuf).unwrap();
            let fds = [planes[0].dmabuf, planes[1].dmabuf].map(|fd| fd.map(|fd| fd.as_raw_fd()));
            assert!(fds[0].is_some() && fds[0] != fds[1], "frame {n}: {fds:?}");
            // vivid starts streaming with two buffers queued, and keeps the last one queued
            // (it loops the newest frame back): the frame goes into both, one comes back done,
            // and STREAMOFF takes the other back so the camera can have its buffers again.
            queue.stream_on().unwrap();
            for index in 0..queue.len() {
                queue.queue(index, &planes[..2], zero_time()).unwrap();
            }
            let done = loop {
                assert!(Instant::now() < deadline, "frame {n} was never done");
                match queue.dequeue().unwrap() {
                    Some(done) => break done,
                    None => {
                        device
                            .poll(PollFlags::POLLOUT, Duration::from_secs(1))
                            .unwrap();
                    }
                }
            };
            assert_eq!(done.flags & b::V4L2_BUF_FLAG_ERROR, 0, "frame {n}");
            queue.stream_off().unwrap();
            done_frames += 1;
        }
        assert_eq!(done_frames, 8);
        eprintln!("{name}: 8 NV12M frames imported as a DMABUF per plane and done by the driver");
    }

    #[test]
    fn one_dmabuf_goes_into_every_plane_only_for_a_driver_that_finds_the_planes_itself() {
        // A Jetson camera frame: one NvBufSurface, rows padded to 256 bytes, CbCr after Y.
        let input = format(FourCc::NV12M, 64, 32, &[(64, 2048), (64, 1024)]);
        let layout = plane_layout(&input, PixelFormat::Nv12).unwrap();
        let bytes = vec![0; 256 * 48];
        let planes = [
            Plane {
                data: &bytes[..256 * 32],
                stride: 256,
            },
            Plane {
                data: &bytes[256 * 32..],
                stride: 256,
            },
        ];
        let picture = Picture::new(PixelFormat::Nv12, 64, 32, &planes).unwrap();
        let surface = buffer(256 * 48);
        let dmabuf = FrameDmabuf::shared(surface.as_fd(), &[0, 256 * 32]);

        let error = import_planes(&input, &layout, false, &picture, &dmabuf).unwrap_err();
        assert!(
            error.contains("plane 0 is at byte 0 of its DMABUF with stride 256, NM12 input has it at byte 0 with stride 64"),
            "{error}"
        );

        let planes = import_planes(&input, &layout, true, &picture, &dmabuf).unwrap();
        let raw = surface.as_raw_fd();
        assert_eq!(
            described(&planes, 2),
            [(raw, 2048, 256 * 48), (raw, 1024, 256 * 48)]
        );

        // The planes the frame describes must lie inside the DMABUF.
        let short = buffer(256 * 40);
        let dmabuf = FrameDmabuf::shared(short.as_fd(), &[0, 256 * 32]);
        let error = import_planes(&input, &layout, true, &picture, &dmabuf).unwrap_err();
        assert!(
            error.contains("plane 1 ends at byte 12288 of a 10240-byte DMABUF"),
            "{error}"
        );
    }

    #[test]
    fn h264_levels_follow_table_a1() {
        // 1280x720 = 3600 macroblocks; at 30 fps 108000 MB/s: level 3.1 (index 9).
        assert_eq!(h264_level(1280, 720, 30, 2_764_800), 9);
        // 1920x1080 at 30 fps: 8160 MBs, 244800 MB/s: level 4.0 (11).
        assert_eq!(h264_level(1920, 1080, 30, 6_000_000), 11);
        // 640x480 at 30 fps: 1200 MBs, 36000 MB/s: level 3.0 (8)
        assert_eq!(h264_level(640, 480, 30, 921_600), 8);
        // Bitrate alone can raise it: 720p30 at 30 Mbit/s needs 4.1 (12).
        assert_eq!(h264_level(1280, 720, 30, 30_000_000), 12);
        // Beyond every level: the highest.
        assert_eq!(h264_level(8192, 4320, 120, 1_000_000), 16);
    }

    #[test]
    fn keyframes_come_from_the_bitstream_when_the_driver_is_silent() {
        let idr = [
            0, 0, 0, 1, 0x67, 1, 0, 0, 0, 1, 0x68, 2, 0, 0, 0, 1, 0x65, 3,
        ];
        let p = [0, 0, 0, 1, 0x41, 9];
        // H.264: the IDR slice decides, whatever the flags say.
        assert!(is_keyframe(FourCc::H264, 0, &idr));
        assert!(!is_keyframe(FourCc::H264, b::V4L2_BUF_FLAG_KEYFRAME, &p));
        assert!(has_h264_picture(&idr) && has_h264_picture(&p));
        assert!(!has_h264_picture(&idr[..12]), "SPS + PPS only");

        let mut fwht = [0u8; 28];
        fwht[..8].copy_from_slice(&[0x4f, 0x4f, 0x4f, 0x4f, 0xff, 0xff, 0xff, 0xff]);
        assert!(!is_keyframe(FourCc::FWHT, 0, &fwht));
        fwht[22] = 0x04; // flags (big-endian) bit 10
        assert!(is_keyframe(FourCc::FWHT, 0, &fwht));
        // Flags, when set, are believed for codecs other than H.264.
        assert!(!is_keyframe(FourCc::FWHT, b::V4L2_BUF_FLAG_PFRAME, &fwht));
        assert!(is_keyframe(FourCc::HEVC, b::V4L2_BUF_FLAG_KEYFRAME, &[]));
        assert!(
            !is_keyframe(FourCc::FWHT, 0, &[0x4f; 3]),
            "short buffers are not keyframes"
        );
    }

    #[test]
    fn invalid_settings_are_refused_before_opening_anything() {
        let settings = EncoderSettings::new(641, 480, 30);
        assert!(matches!(
            V4l2M2mEncoder::new("/dev/null", settings, PixelFormat::Nv12, FourCc::H264),
            Err(EncodeError::InvalidSettings(_))
        ));
    }

    #[test]
    fn a_missing_device_is_a_device_error_and_a_non_v4l2_one_too() {
        let settings = EncoderSettings::new(640, 480, 30);
        match V4l2M2mEncoder::new(
            "/dev/flowcloud-no-such-encoder",
            settings,
            PixelFormat::Nv12,
            FourCc::H264,
        ) {
            Err(EncodeError::Device(e)) => assert_eq!((e.call, e.errno), ("open", Errno::ENOENT)),
            other => panic!("expected a device error, got {other:?}"),
        }
        if !crate::v4l2::ioctls_reach_the_kernel(
            "a_missing_device_is_a_device_error_and_a_non_v4l2_one_too (the /dev/null part)",
        ) {
            return;
        }
        match V4l2M2mEncoder::new("/dev/null", settings, PixelFormat::Nv12, FourCc::H264) {
            Err(EncodeError::Device(e)) => {
                assert_eq!((e.call, e.errno), ("VIDIOC_QUERYCAP", Errno::ENOTTY));
            }
            other => panic!("expected a device error, got {other:?}"),
        }
    }
}
