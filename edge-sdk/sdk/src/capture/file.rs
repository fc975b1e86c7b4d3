//! Frames from files: raw NV12/I420 (or YUYV) frames back to back ([`RawFileSource`]) and
//! YUV4MPEG2 files ([`Y4mSource`]), the format `ffmpeg -f yuv4mpegpipe`, x264 and GStreamer's
//! `y4menc` write.
//!
//! Both read into one buffer allocated when the file is opened, so reading a frame does not
//! allocate. At the end of the file a source either starts again from its first frame
//! ([`RawFileSource::looping`]) or returns [`CaptureError::EndOfStream`]; optionally it paces
//! frames at the file's frame rate, as a camera would deliver them. Each frame is stamped with
//! the time it was read.
//!
//! Bad files are errors, never panics: a trailing partial frame, a malformed header or a
//! truncated frame gives [`CaptureError::InvalidFile`] with the byte offset where it starts.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::time::{Duration, Instant};

use super::{CaptureError, CaptureSource, CapturedFrame};
use crate::picture::{Picture, PixelFormat, VideoFormat};

/// The longest Y4M stream or frame header line accepted, in bytes including the newline; a
/// file without a newline within this is rejected rather than read into memory.
pub const MAX_Y4M_HEADER_LEN: usize = 1024;
/// The largest width or height accepted from a file, so a corrupt header cannot ask for a
/// huge frame buffer.
pub const MAX_DIMENSION: u32 = 16384;
/// Read buffer of the file reader: large enough for Y4M headers, small next to a frame
/// (frame reads larger than the buffer go straight into the frame).
const READ_BUFFER: usize = 16 * 1024;

/// Raw frames of one size and pixel format, back to back with nothing between them (what
/// `ffmpeg -f rawvideo` writes). The size, format and frame rate are not in the file: the
/// caller gives them.
#[derive(Debug)]
pub struct RawFileSource {
    format: VideoFormat,
    frames: FrameReader,
}

impl RawFileSource {
    /// Opens `path`, holding frames of `format` (NV12, I420 or YUYV; tightly packed, planes in
    /// order, no padding).
    pub fn open(path: impl AsRef<Path>, format: VideoFormat) -> Result<Self, CaptureError> {
        check_format(&format)?;
        let frame_len = format
            .pixel_format
            .frame_len(format.width as usize, format.height as usize);
        let path = path.as_ref();
        let reader = open_reader(path)?;
        let frames = FrameReader::new(path.display().to_string(), reader, 0, frame_len);
        Ok(Self { format, frames })
    }

    /// At the end of the file, start again from the first frame instead of returning
    /// [`CaptureError::EndOfStream`].
    #[must_use]
    pub const fn looping(mut self, looping: bool) -> Self {
        self.frames.looping = looping;
        self
    }

    /// Deliver frames no faster than the frame rate (as a camera does) instead of as fast as
    /// they are asked for.
    #[must_use]
    pub fn paced(mut self, paced: bool) -> Self {
        self.frames.pacer = Pacer::new(paced, self.format.frame_rate);
        self
    }
}

impl CaptureSource for RawFileSource {
    fn format(&self) -> VideoFormat {
        self.format
    }

    fn next_frame(&mut self) -> Result<CapturedFrame<'_>, CaptureError> {
        self.frames.pacer.wait();
        let sequence = self.frames.read(no_header)?;
        frame(&self.format, &self.frames.frame, sequence)
    }
}

/// A YUV4MPEG2 (`.y4m`) file: a stream header with the size, frame rate and colour space, then
/// each frame as a `FRAME` line and the picture in planar 4:2:0.
///
/// Accepted: the 8-bit 4:2:0 colour spaces `420jpeg` (also the default when `C` is absent),
/// `420paldv`, `420mpeg2` and `420`, which differ only in chroma siting and all read as I420.
/// The interlacing (`I`), pixel aspect (`A`) and extension (`X`) parameters, and any parameters
/// of a `FRAME` line, are ignored.
#[derive(Debug)]
pub struct Y4mSource {
    format: VideoFormat,
    frames: FrameReader,
}

impl Y4mSource {
    /// Opens `path` and reads its stream header.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, CaptureError> {
        let path = path.as_ref();
        let mut reader = open_reader(path)?;
        let mut line = [0; MAX_Y4M_HEADER_LEN];
        let display = path.display().to_string();
        let len = match read_line(&mut reader, &mut line).map_err(|e| read_error(&display, e))? {
            Line::Complete(len) => len,
            Line::End => return Err(invalid(&display, "empty file: no YUV4MPEG2 header".into())),
            Line::Truncated(_) => {
                return Err(invalid(
                    &display,
                    "the YUV4MPEG2 header ends without a newline".into(),
                ));
            }
            Line::TooLong => {
                return Err(invalid(
                    &display,
                    format!("no YUV4MPEG2 header line within {MAX_Y4M_HEADER_LEN} bytes"),
                ));
            }
        };
        let format = parse_stream_header(&line[..len]).map_err(|e| e.into_capture(&display))?;
        let frame_len = PixelFormat::I420.frame_len(format.width as usize, format.height as usize);
        let frames = FrameReader::new(display, reader, len as u64, frame_len);
        Ok(Self { format, frames })
    }

    /// At the end of the file, start again from the first frame instead of returning
    /// [`CaptureError::EndOfStream`].
    #[must_use]
    pub const fn looping(mut self, looping: bool) -> Self {
        self.frames.looping = looping;
        self
    }

    /// Deliver frames no faster than the file's frame rate (as a camera does) instead of as
    /// fast as they are asked for.
    #[must_use]
    pub fn paced(mut self, paced: bool) -> Self {
        self.frames.pacer = Pacer::new(paced, self.format.frame_rate);
        self
    }
}

impl CaptureSource for Y4mSource {
    fn format(&self) -> VideoFormat {
        self.format
    }

    fn next_frame(&mut self) -> Result<CapturedFrame<'_>, CaptureError> {
        self.frames.pacer.wait();
        let sequence = self.frames.read(read_frame_header)?;
        frame(&self.format, &self.frames.frame, sequence)
    }
}

fn frame<'a>(
    format: &VideoFormat,
    data: &'a [u8],
    sequence: u64,
) -> Result<CapturedFrame<'a>, CaptureError> {
    let picture = Picture::packed(format.pixel_format, format.width, format.height, data)?;
    // Stamped once the bytes are in memory: the moment a camera's frame would be complete.
    Ok(CapturedFrame::new(picture, Instant::now(), sequence))
}

/// The part both sources share: a buffered file, the frame buffer, the position and looping.
#[derive(Debug)]
struct FrameReader {
    path: String,
    reader: BufReader<File>,
    /// One frame, allocated once.
    frame: Vec<u8>,
    /// Where the first frame (or its header) starts.
    data_start: u64,
    /// Byte offset of the next unread byte.
    position: u64,
    looping: bool,
    pacer: Pacer,
    sequence: u64,
    /// Frames read since the last start from the top (so an empty file cannot loop forever).
    frames_this_pass: u64,
}

/// Reads what precedes frame `index`'s bytes (nothing for raw files, a `FRAME` line for Y4M);
/// `Ok(false)` at a clean end of the file.
type HeaderReader = fn(&mut FrameReader, u64) -> Result<bool, CaptureError>;

impl FrameReader {
    fn new(path: String, reader: BufReader<File>, data_start: u64, frame_len: usize) -> Self {
        Self {
            path,
            reader,
            frame: vec![0; frame_len],
            data_start,
            position: data_start,
            looping: false,
            pacer: Pacer::new(false, (1, 1)),
            sequence: 0,
            frames_this_pass: 0,
        }
    }

    /// Reads the next frame into `self.frame` (its header through `header`), starting again at
    /// the top at the end when looping; returns the frame's sequence number.
    fn read(&mut self, header: HeaderReader) -> Result<u64, CaptureError> {
        if !self.read_once(header)? {
            if !self.looping {
                return Err(CaptureError::EndOfStream);
            }
            if self.frames_this_pass == 0 {
                return Err(invalid(
                    &self.path,
                    "the file holds no frames to loop over".into(),
                ));
            }
            self.rewind()?;
            if !self.read_once(header)? {
                // The file shrank while it was being read.
                return Err(CaptureError::EndOfStream);
            }
        }
        let sequence = self.sequence;
        self.sequence += 1;
        self.frames_this_pass += 1;
        Ok(sequence)
    }

    /// One frame from the current position; `Ok(false)` at a clean end of the file.
    fn read_once(&mut self, header: HeaderReader) -> Result<bool, CaptureError> {
        let index = self.frames_this_pass;
        let start = self.position;
        if !header(self, index)? {
            return Ok(false);
        }
        let header_len = self.position - start;
        let read =
            read_up_to(&mut self.reader, &mut self.frame).map_err(|e| read_error(&self.path, e))?;
        self.position += read as u64;
        if read == self.frame.len() {
            return Ok(true);
        }
        // Nothing at all where a raw frame would start is the end of the file; a Y4M `FRAME`
        // line with no picture after it is a truncated frame.
        if read == 0 && header_len == 0 {
            return Ok(false);
        }
        Err(invalid(
            &self.path,
            format!(
                "frame {index} at byte offset {start} is truncated: {read} of {} bytes",
                self.frame.len()
            ),
        ))
    }

    fn rewind(&mut self) -> Result<(), CaptureError> {
        self.reader
            .seek(SeekFrom::Start(self.data_start))
            .map_err(|e| read_error(&self.path, e))?;
        self.position = self.data_start;
        self.frames_this_pass = 0;
        Ok(())
    }
}

/// Raw files have no frame headers.
fn no_header(_: &mut FrameReader, _: u64) -> Result<bool, CaptureError> {
    Ok(true)
}

/// A Y4M frame header: `FRAME`, optional parameters, a newline. `Ok(false)` at a clean end of
/// the file.
fn read_frame_header(frames: &mut FrameReader, index: u64) -> Result<bool, CaptureError> {
    let start = frames.position;
    let mut line = [0; MAX_Y4M_HEADER_LEN];
    let result = read_line(&mut frames.reader, &mut line).map_err(|e| read_error(&frames.path, e));
    let len = match result? {
        Line::End => return Ok(false),
        Line::Complete(len) => len,
        Line::Truncated(len) => {
            return Err(invalid(
                &frames.path,
                format!(
                    "frame {index} at byte offset {start}: the file ends inside its header \
                     ({len} bytes, no newline)"
                ),
            ));
        }
        Line::TooLong => {
            return Err(invalid(
                &frames.path,
                format!(
                    "frame {index} at byte offset {start}: no newline within \
                     {MAX_Y4M_HEADER_LEN} bytes of its header"
                ),
            ));
        }
    };
    frames.position += len as u64;
    let body = &line[..len - 1];
    let is_frame = body
        .strip_prefix(b"FRAME")
        .is_some_and(|rest| rest.is_empty() || rest[0] == b' ');
    if !is_frame {
        return Err(invalid(
            &frames.path,
            format!(
                "frame {index} at byte offset {start}: expected a FRAME header, found {:?}",
                String::from_utf8_lossy(&body[..body.len().min(16)])
            ),
        ));
    }
    Ok(true)
}

/// Why a Y4M stream header is unusable: malformed, or valid but not a format we read.
enum HeaderError {
    Invalid(String),
    Unsupported(String),
}

impl HeaderError {
    fn into_capture(self, path: &str) -> CaptureError {
        match self {
            Self::Invalid(reason) => invalid(path, reason),
            Self::Unsupported(reason) => {
                CaptureError::UnsupportedFormat(format!("{path}: {reason}"))
            }
        }
    }
}

/// Parses `YUV4MPEG2 W.. H.. F..:.. [I.] [A..:..] [C...] [X...]\n`.
fn parse_stream_header(line: &[u8]) -> Result<VideoFormat, HeaderError> {
    let malformed = |reason: &str| HeaderError::Invalid(reason.to_owned());
    let body = line.strip_suffix(b"\n").unwrap_or(line);
    let mut tokens = body.split(|&b| b == b' ').filter(|t| !t.is_empty());
    if tokens.next() != Some(b"YUV4MPEG2".as_slice()) {
        return Err(malformed("not a YUV4MPEG2 file (no YUV4MPEG2 signature)"));
    }
    let (mut width, mut height, mut rate) = (None, None, None);
    let mut colour = b"420jpeg".as_slice();
    for token in tokens {
        let (tag, value) = (token[0], &token[1..]);
        match tag {
            b'W' => width = Some(parse_dimension("W", value)?),
            b'H' => height = Some(parse_dimension("H", value)?),
            b'F' => rate = Some(parse_ratio(value)?),
            b'C' => colour = value,
            // Interlacing, pixel aspect ratio and extensions do not change how frames are read;
            // unknown tags are skipped as the format asks.
            _ => {}
        }
    }
    let width = width.ok_or_else(|| malformed("the header has no width (W)"))?;
    let height = height.ok_or_else(|| malformed("the header has no height (H)"))?;
    let frame_rate = rate.ok_or_else(|| malformed("the header has no frame rate (F)"))?;
    if !matches!(colour, b"420jpeg" | b"420paldv" | b"420mpeg2" | b"420") {
        return Err(HeaderError::Unsupported(format!(
            "Y4M colour space C{} is not supported: only 8-bit 4:2:0 (420jpeg, 420paldv, \
             420mpeg2, 420)",
            String::from_utf8_lossy(colour)
        )));
    }
    if width % 2 != 0 || height % 2 != 0 {
        return Err(HeaderError::Unsupported(format!(
            "{width}x{height}: odd picture sizes are not supported"
        )));
    }
    Ok(VideoFormat {
        width,
        height,
        pixel_format: PixelFormat::I420,
        frame_rate,
    })
}

fn parse_number(value: &[u8]) -> Option<u32> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

fn parse_dimension(tag: &str, value: &[u8]) -> Result<u32, HeaderError> {
    match parse_number(value) {
        Some(n) if (1..=MAX_DIMENSION).contains(&n) => Ok(n),
        _ => Err(HeaderError::Invalid(format!(
            "{tag}{} is not a size from 1 to {MAX_DIMENSION}",
            String::from_utf8_lossy(value)
        ))),
    }
}

fn parse_ratio(value: &[u8]) -> Result<(u32, u32), HeaderError> {
    let parsed = value.iter().position(|&b| b == b':').and_then(|colon| {
        let (num, den) = (&value[..colon], &value[colon + 1..]);
        Some((parse_number(num)?, parse_number(den)?))
    });
    match parsed {
        Some((num, den)) if num > 0 && den > 0 => Ok((num, den)),
        _ => Err(HeaderError::Invalid(format!(
            "F{} is not a frame rate (expected F<numerator>:<denominator>, both non-zero)",
            String::from_utf8_lossy(value)
        ))),
    }
}

/// What [`read_line`] found.
enum Line {
    /// A line of this many bytes, newline included.
    Complete(usize),
    /// End of file before any byte.
    End,
    /// End of file after this many bytes and no newline.
    Truncated(usize),
    /// No newline within the buffer.
    TooLong,
}

/// Reads one `\n`-terminated line into `out` without allocating.
fn read_line(reader: &mut impl BufRead, out: &mut [u8]) -> io::Result<Line> {
    let mut len = 0;
    loop {
        let available = match reader.fill_buf() {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(if len == 0 {
                Line::End
            } else {
                Line::Truncated(len)
            });
        }
        let newline = available.iter().position(|&b| b == b'\n');
        let take = newline.map_or(available.len(), |i| i + 1);
        if len + take > out.len() {
            return Ok(Line::TooLong);
        }
        out[len..len + take].copy_from_slice(&available[..take]);
        len += take;
        reader.consume(take);
        if newline.is_some() {
            return Ok(Line::Complete(len));
        }
    }
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn open_reader(path: &Path) -> Result<BufReader<File>, CaptureError> {
    let file = File::open(path).map_err(|source| CaptureError::Io {
        context: format!("opening {}", path.display()),
        source,
    })?;
    Ok(BufReader::with_capacity(READ_BUFFER, file))
}

fn check_format(format: &VideoFormat) -> Result<(), CaptureError> {
    let (w, h) = (format.width, format.height);
    if w == 0 || h == 0 || w % 2 != 0 || h % 2 != 0 || w > MAX_DIMENSION || h > MAX_DIMENSION {
        return Err(CaptureError::UnsupportedFormat(format!(
            "{w}x{h}: width and height must be even, non-zero and at most {MAX_DIMENSION}"
        )));
    }
    let (num, den) = format.frame_rate;
    if num == 0 || den == 0 {
        return Err(CaptureError::UnsupportedFormat(format!(
            "frame rate {num}/{den}: both terms must be non-zero"
        )));
    }
    Ok(())
}

fn invalid(path: &str, reason: String) -> CaptureError {
    CaptureError::InvalidFile {
        path: path.to_owned(),
        reason,
    }
}

fn read_error(path: &str, source: io::Error) -> CaptureError {
    CaptureError::Io {
        context: format!("reading {path}"),
        source,
    }
}

/// Frame pacing as [`super::pattern::PatternSource`] does it.
#[derive(Debug)]
struct Pacer {
    interval: Option<Duration>,
    next_due: Option<Instant>,
}

impl Pacer {
    fn new(paced: bool, (num, den): (u32, u32)) -> Self {
        let interval = (paced && num > 0).then(|| {
            let nanos = 1_000_000_000u128 * u128::from(den) / u128::from(num);
            Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
        });
        Self {
            interval,
            next_due: None,
        }
    }

    fn wait(&mut self) {
        let Some(interval) = self.interval else {
            return;
        };
        let now = Instant::now();
        let due = self.next_due.unwrap_or(now);
        if due > now {
            std::thread::sleep(due - now);
        }
        // Late frames do not accumulate a debt: the schedule restarts from now.
        self.next_due = Some(due.max(now) + interval);
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    /// A file in the temporary directory, removed when dropped.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(contents: &[u8]) -> Self {
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let name = format!(
                "flowcloud-file-source-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            );
            let path = std::env::temp_dir().join(name);
            std::fs::write(&path, contents).unwrap();
            Self(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// A 4x2 frame with every byte `fill`.
    fn frame_bytes(format: PixelFormat, fill: u8) -> Vec<u8> {
        vec![fill; format.frame_len(4, 2)]
    }

    fn raw_format(pixel_format: PixelFormat) -> VideoFormat {
        VideoFormat {
            width: 4,
            height: 2,
            pixel_format,
            frame_rate: (30, 1),
        }
    }

    fn first_byte(source: &mut impl CaptureSource) -> Result<(u8, u64), CaptureError> {
        let frame = source.next_frame()?;
        Ok((frame.picture.planes()[0].data[0], frame.sequence))
    }

    fn y4m(header: &str, frames: &[u8]) -> Vec<u8> {
        let mut bytes = header.as_bytes().to_vec();
        for &fill in frames {
            bytes.extend_from_slice(b"FRAME\n");
            bytes.extend_from_slice(&frame_bytes(PixelFormat::I420, fill));
        }
        bytes
    }

    fn invalid_reason(result: Result<impl Sized, CaptureError>) -> String {
        match result {
            Err(CaptureError::InvalidFile { reason, .. }) => reason,
            Err(other) => panic!("expected InvalidFile, got {other:?}"),
            Ok(_) => panic!("expected InvalidFile, got a frame"),
        }
    }

    #[test]
    fn raw_frames_come_back_in_order_then_end() {
        for format in [PixelFormat::I420, PixelFormat::Nv12] {
            let mut bytes = frame_bytes(format, 10);
            bytes.extend(frame_bytes(format, 20));
            let file = TempFile::new(&bytes);
            let mut source = RawFileSource::open(&file.0, raw_format(format)).unwrap();
            assert_eq!(source.format(), raw_format(format));
            let before = Instant::now();
            let frame = source.next_frame().unwrap();
            assert!(frame.captured_at >= before && frame.captured_at <= Instant::now());
            assert_eq!(frame.picture.format(), format);
            assert_eq!(frame.picture.planes().len(), format.plane_count());
            assert!(
                frame
                    .picture
                    .planes()
                    .iter()
                    .all(|p| p.data.iter().all(|&b| b == 10))
            );
            assert_eq!(first_byte(&mut source).unwrap(), (20, 1));
            assert!(matches!(
                source.next_frame(),
                Err(CaptureError::EndOfStream)
            ));
        }
    }

    #[test]
    fn a_trailing_partial_raw_frame_names_its_offset() {
        let len = PixelFormat::Nv12.frame_len(4, 2);
        let mut bytes = frame_bytes(PixelFormat::Nv12, 1);
        bytes.extend_from_slice(&[2; 5]);
        let file = TempFile::new(&bytes);
        let mut source = RawFileSource::open(&file.0, raw_format(PixelFormat::Nv12)).unwrap();
        source.next_frame().unwrap();
        let error = source.next_frame().unwrap_err();
        let text = error.to_string();
        assert!(text.contains(&file.0.display().to_string()), "{text}");
        let reason = invalid_reason(Err::<(), _>(error));
        assert!(reason.contains(&format!("byte offset {len}")), "{reason}");
        assert!(reason.contains(&format!("5 of {len} bytes")), "{reason}");
    }

    #[test]
    fn raw_files_loop_from_the_first_frame_with_one_buffer() {
        let mut bytes = frame_bytes(PixelFormat::I420, 1);
        bytes.extend(frame_bytes(PixelFormat::I420, 2));
        let file = TempFile::new(&bytes);
        let mut source = RawFileSource::open(&file.0, raw_format(PixelFormat::I420))
            .unwrap()
            .looping(true);
        let buffer = source.next_frame().unwrap().picture.planes()[0]
            .data
            .as_ptr();
        let read: Vec<(u8, u64)> = (0..4).map(|_| first_byte(&mut source).unwrap()).collect();
        assert_eq!(read, [(2, 1), (1, 2), (2, 3), (1, 4)]);
        // Every frame lands in the buffer allocated at open.
        assert_eq!(
            source.next_frame().unwrap().picture.planes()[0]
                .data
                .as_ptr(),
            buffer
        );
    }

    #[test]
    fn an_empty_file_ends_at_once_and_cannot_loop() {
        let file = TempFile::new(&[]);
        let mut source = RawFileSource::open(&file.0, raw_format(PixelFormat::I420)).unwrap();
        assert!(matches!(
            source.next_frame(),
            Err(CaptureError::EndOfStream)
        ));
        let mut looping = RawFileSource::open(&file.0, raw_format(PixelFormat::I420))
            .unwrap()
            .looping(true);
        assert!(invalid_reason(looping.next_frame()).contains("no frames"));
    }

    #[test]
    fn raw_sources_check_their_format_and_path() {
        let file = TempFile::new(&[]);
        let mut odd = raw_format(PixelFormat::I420);
        odd.width = 3;
        assert!(matches!(
            RawFileSource::open(&file.0, odd),
            Err(CaptureError::UnsupportedFormat(_))
        ));
        let mut no_rate = raw_format(PixelFormat::I420);
        no_rate.frame_rate = (30, 0);
        assert!(matches!(
            RawFileSource::open(&file.0, no_rate),
            Err(CaptureError::UnsupportedFormat(_))
        ));
        let missing = file.0.with_extension("missing");
        assert!(matches!(
            RawFileSource::open(&missing, raw_format(PixelFormat::I420)),
            Err(CaptureError::Io { .. })
        ));
    }

    #[test]
    fn y4m_header_and_frames_are_read() {
        let mut bytes = y4m(
            "YUV4MPEG2 W4 H2 F30000:1001 Ip A1:1 C420jpeg XYSCSS=420JPEG\n",
            &[7],
        );
        // Frame parameters are allowed and ignored.
        bytes.extend_from_slice(b"FRAME Ixyz Xfoo=bar\n");
        bytes.extend(frame_bytes(PixelFormat::I420, 8));
        let file = TempFile::new(&bytes);
        let mut source = Y4mSource::open(&file.0).unwrap();
        assert_eq!(
            source.format(),
            VideoFormat {
                width: 4,
                height: 2,
                pixel_format: PixelFormat::I420,
                frame_rate: (30000, 1001),
            }
        );
        let frame = source.next_frame().unwrap();
        assert_eq!(frame.picture.format(), PixelFormat::I420);
        assert!(
            frame
                .picture
                .planes()
                .iter()
                .all(|p| p.data.iter().all(|&b| b == 7))
        );
        assert_eq!(first_byte(&mut source).unwrap(), (8, 1));
        assert!(matches!(
            source.next_frame(),
            Err(CaptureError::EndOfStream)
        ));
    }

    #[test]
    fn every_420_colour_space_reads_as_i420_and_others_are_refused() {
        for colour in ["", " C420jpeg", " C420paldv", " C420mpeg2", " C420"] {
            let file = TempFile::new(&y4m(&format!("YUV4MPEG2 W4 H2 F25:1{colour}\n"), &[1]));
            let mut source = Y4mSource::open(&file.0).unwrap();
            assert_eq!(first_byte(&mut source).unwrap(), (1, 0), "{colour:?}");
        }
        for colour in ["C444", "C422", "Cmono", "C420p10"] {
            let file = TempFile::new(&y4m(&format!("YUV4MPEG2 W4 H2 F25:1 {colour}\n"), &[1]));
            match Y4mSource::open(&file.0) {
                Err(CaptureError::UnsupportedFormat(reason)) => {
                    assert!(
                        reason.contains(colour) && reason.contains("4:2:0"),
                        "{reason}"
                    );
                }
                other => panic!("{colour}: expected UnsupportedFormat, got {other:?}"),
            }
        }
    }

    #[test]
    fn malformed_y4m_headers_are_rejected() {
        let cases: [(&[u8], &str); 12] = [
            (b"", "empty file"),
            (b"YUV4MPEG W4 H2 F25:1\n", "signature"),
            (b"P5 4 2 255\n", "signature"),
            (b"YUV4MPEG2 H2 F25:1\n", "no width"),
            (b"YUV4MPEG2 W4 F25:1\n", "no height"),
            (b"YUV4MPEG2 W4 H2\n", "no frame rate"),
            (b"YUV4MPEG2 W0 H2 F25:1\n", "W0"),
            (b"YUV4MPEG2 Wx H2 F25:1\n", "Wx"),
            (b"YUV4MPEG2 W99999999999 H2 F25:1\n", "W99999999999"),
            (b"YUV4MPEG2 W4 H2 F25\n", "F25"),
            (b"YUV4MPEG2 W4 H2 F25:0\n", "F25:0"),
            (b"YUV4MPEG2 W4 H2 F25:1", "without a newline"),
        ];
        for (header, expected) in cases {
            let file = TempFile::new(header);
            let reason = invalid_reason(Y4mSource::open(&file.0));
            assert!(reason.contains(expected), "{expected}: {reason}");
        }
        // A header line with no end is refused after the bound, not read into memory.
        let mut endless = b"YUV4MPEG2 W4 H2 F25:1 X".to_vec();
        endless.resize(10 * MAX_Y4M_HEADER_LEN, b'a');
        let file = TempFile::new(&endless);
        let reason = invalid_reason(Y4mSource::open(&file.0));
        assert!(reason.contains(&MAX_Y4M_HEADER_LEN.to_string()), "{reason}");
        let odd = TempFile::new(b"YUV4MPEG2 W3 H2 F25:1\n");
        assert!(matches!(
            Y4mSource::open(&odd.0),
            Err(CaptureError::UnsupportedFormat(_))
        ));
    }

    #[test]
    fn malformed_and_truncated_y4m_frames_name_their_offset() {
        let header = "YUV4MPEG2 W4 H2 F25:1\n";
        let second = header.len() + 6 + PixelFormat::I420.frame_len(4, 2);
        let good = y4m(header, &[1]);
        let cases: [(&[u8], &str); 5] = [
            (b"FRAMX\n", "expected a FRAME header"),
            (b"FRAMES\n", "expected a FRAME header"),
            (b"FRAME", "ends inside its header"),
            (b"FRAME\n", "0 of 12 bytes"),
            (b"FRAME\n\x01\x02\x03", "3 of 12 bytes"),
        ];
        for (tail, expected) in cases {
            let mut bytes = good.clone();
            bytes.extend_from_slice(tail);
            let file = TempFile::new(&bytes);
            let mut source = Y4mSource::open(&file.0).unwrap();
            assert_eq!(first_byte(&mut source).unwrap(), (1, 0));
            let reason = invalid_reason(source.next_frame());
            assert!(reason.contains(expected), "{expected}: {reason}");
            assert!(
                reason.contains(&format!("byte offset {second}")),
                "{reason}"
            );
        }
        let mut long = good;
        long.extend_from_slice(b"FRAME ");
        long.resize(long.len() + MAX_Y4M_HEADER_LEN, b'x');
        let file = TempFile::new(&long);
        let mut source = Y4mSource::open(&file.0).unwrap();
        source.next_frame().unwrap();
        assert!(invalid_reason(source.next_frame()).contains("no newline within"));
    }

    #[test]
    fn y4m_loops_back_to_the_first_frame_after_the_header() {
        let file = TempFile::new(&y4m("YUV4MPEG2 W4 H2 F25:1\n", &[1, 2, 3]));
        let mut source = Y4mSource::open(&file.0).unwrap().looping(true);
        let read: Vec<(u8, u64)> = (0..7).map(|_| first_byte(&mut source).unwrap()).collect();
        assert_eq!(
            read,
            [(1, 0), (2, 1), (3, 2), (1, 3), (2, 4), (3, 5), (1, 6)]
        );
    }

    #[test]
    fn paced_sources_deliver_at_the_frame_rate() {
        let file = TempFile::new(&y4m("YUV4MPEG2 W4 H2 F50:1\n", &[1]));
        let mut source = Y4mSource::open(&file.0).unwrap().looping(true).paced(true);
        let started = Instant::now();
        for _ in 0..4 {
            source.next_frame().unwrap();
        }
        // The first frame is due at once, then one every 20 ms.
        assert!(
            started.elapsed() >= Duration::from_millis(55),
            "{:?}",
            started.elapsed()
        );
        let mut unpaced = Y4mSource::open(&file.0).unwrap().looping(true);
        let started = Instant::now();
        for _ in 0..4 {
            unpaced.next_frame().unwrap();
        }
        assert!(started.elapsed() < Duration::from_millis(55));
    }
}
