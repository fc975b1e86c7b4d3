//! Optional per-stream storage of results as PNG files in the Cityscapes `gtFine` naming, so
//! stored class maps can be fed straight to `cityscapesScripts` and the `engines/` evaluation.
//!
//! Layout: `root/<stream>/<frame_index:08>_<rtp_timestamp>_gtFine_labelIds.png` (or
//! `_gtFine_trainIds.png`) and `…_overlay.png`. `<stream>` is the camera's CNAME made safe as
//! one path component by [`sanitize_stream_name`].
//!
//! With frame hashes on, `root/<stream>/frames.tsv` gets one line per segmented frame:
//! `frame_index`, `rtp_timestamp`, `width`, `height` and the SHA-256 (hex) of the decoded
//! picture's I420 planes, packed (Y, then U, then V, no padding), tab-separated. It is for
//! checking the worker's decoding against another decoder's output; at most
//! `max_files_per_stream` lines are kept in it, the previous lines in `frames.tsv.1`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use crate::classes::ClassTable;
use crate::frame::I420Frame;

/// The per-stream log of frame hashes, and where it rotates to.
const FRAME_HASHES: &str = "frames.tsv";
const FRAME_HASHES_PREVIOUS: &str = "frames.tsv.1";

/// Which numbering stored class maps use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LabelFormat {
    /// Label ids 0..=33 in `*_gtFine_labelIds.png` (what Cityscapes evaluation reads).
    LabelIds,
    /// Train ids 0..=18, 255 = ignore, in `*_gtFine_trainIds.png`.
    TrainIds,
}

impl LabelFormat {
    /// File name suffix (without `.png`).
    #[must_use]
    pub const fn suffix(self) -> &'static str {
        match self {
            Self::LabelIds => "gtFine_labelIds",
            Self::TrainIds => "gtFine_trainIds",
        }
    }

    /// The value stored for class index `class` of a model using `table`.
    fn convert(self, table: ClassTable, class: u8) -> u8 {
        match self {
            Self::LabelIds => table.to_label_id(class),
            Self::TrainIds => table.to_train_id(class),
        }
    }
}

const OVERLAY_SUFFIX: &str = "overlay";
/// Every suffix this module writes; eviction removes all of them, so files written under an
/// earlier configuration are cleaned up too.
const SUFFIXES: [&str; 3] = [
    LabelFormat::LabelIds.suffix(),
    LabelFormat::TrainIds.suffix(),
    OVERLAY_SUFFIX,
];

/// What to store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StorageConfig {
    /// Store class maps in this format; `None` stores none.
    pub class_maps: Option<LabelFormat>,
    /// Store colour overlays.
    pub overlays: bool,
    /// Most frames kept per stream (a frame is its class map and overlay together); the oldest
    /// are deleted first. Must be at least 1.
    pub max_files_per_stream: usize,
    /// Log each frame's hash to `frames.tsv` ([`ResultStore::log_frame_hash`]).
    pub frame_hashes: bool,
}

/// Paths written for one frame.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredPaths {
    /// The class map PNG, if one was written.
    pub class_map: Option<PathBuf>,
    /// The overlay PNG, if one was written.
    pub overlay: Option<PathBuf>,
}

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The stream name cannot become a directory name.
    #[error("stream name {name:?} is not usable: {reason}")]
    InvalidStreamName {
        /// The name as received.
        name: String,
        /// Why not.
        reason: &'static str,
    },
    /// The configuration is unusable.
    #[error("invalid storage configuration: {0}")]
    InvalidConfig(&'static str),
    /// The image is empty or its size does not fit in memory.
    #[error("invalid image size {width}×{height}")]
    Size {
        /// Width given.
        width: u32,
        /// Height given.
        height: u32,
    },
    /// A buffer does not match the image size.
    #[error("{what} has {actual} bytes, expected {expected}")]
    Length {
        /// Which buffer.
        what: &'static str,
        /// Length implied by the size.
        expected: usize,
        /// Length given.
        actual: usize,
    },
    /// A file system operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path operated on.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// PNG encoding failed (usually an I/O error underneath).
    #[error("{path}: {source}")]
    Png {
        /// The file being written.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: png::EncodingError,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StorageError + '_ {
    move |source| StorageError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Longest stream directory name.
pub const MAX_STREAM_NAME_LEN: usize = 64;
const HASH_HEX_LEN: usize = 16;

/// FNV-1a, 64 bit: tiny and stable across Rust releases and restarts (std's hashers promise
/// neither), which matters because the directory name must be the same after a restart.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Whether `s` ends in `-` and [`HASH_HEX_LEN`] lowercase hex digits, like a changed name.
fn has_hash_suffix(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() > HASH_HEX_LEN
        && b[b.len() - HASH_HEX_LEN - 1] == b'-'
        && b[b.len() - HASH_HEX_LEN..]
            .iter()
            .all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// Turns a stream name from the network into one safe path component.
///
/// Characters other than `[A-Za-z0-9._-]` become `_`. If anything changed, or the result is
/// longer than [`MAX_STREAM_NAME_LEN`], it is cut to fit and `-` plus 16 hex digits of a
/// 64-bit FNV-1a hash of the original bytes is appended, so different names do not collide
/// (FNV is not collision resistant against a deliberate attacker; CNAMEs come from
/// authenticated cameras). A name that already ends like that gets a hash too, so an unchanged
/// name can never equal a changed one.
///
/// # Errors
///
/// [`StorageError::InvalidStreamName`] for `""`, `"."` and `".."`.
pub fn sanitize_stream_name(name: &str) -> Result<String, StorageError> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(StorageError::InvalidStreamName {
            name: name.to_owned(),
            reason: "empty, \".\" or \"..\"",
        });
    }
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let changed = out != name || out.len() > MAX_STREAM_NAME_LEN || has_hash_suffix(&out);
    if changed {
        // `out` is ASCII, so any byte index is a char boundary.
        out.truncate(MAX_STREAM_NAME_LEN - 1 - HASH_HEX_LEN);
        out.push_str(&format!("-{:016x}", fnv1a64(name.as_bytes())));
    }
    Ok(out)
}

/// Identifies one stored frame.
type FrameKey = (u64, u32);

fn file_name(key: FrameKey, suffix: &str) -> String {
    format!("{:08}_{}_{suffix}.png", key.0, key.1)
}

/// The frame a file name written by this module belongs to; `None` for anything else
/// (including non-canonical spellings, which eviction could not find again).
fn parse_file_name(name: &str) -> Option<FrameKey> {
    let stem = name.strip_suffix(".png")?;
    let (index, rest) = stem.split_once('_')?;
    let (ts, suffix) = rest.split_once('_')?;
    if !SUFFIXES.contains(&suffix) {
        return None;
    }
    let key = (index.parse().ok()?, ts.parse().ok()?);
    (file_name(key, suffix) == name).then_some(key)
}

struct StreamState {
    dir: PathBuf,
    /// Stored frames, oldest first.
    frames: VecDeque<FrameKey>,
    /// The same keys, for a cheap duplicate check.
    present: HashSet<FrameKey>,
    /// Lines in `frames.tsv`, counted when first needed.
    hash_lines: Option<usize>,
}

impl StreamState {
    /// Creates the stream directory, or rebuilds the frame list from an existing one (oldest
    /// modification time first, then frame index), removing temporary files a crash left.
    fn open(dir: PathBuf) -> Result<Self, StorageError> {
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let mut found: HashMap<FrameKey, SystemTime> = HashMap::new();
        for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str() else {
                continue;
            };
            if name.starts_with('.') && name.ends_with(".tmp") {
                let path = entry.path();
                remove_if_present(&path)?;
                continue;
            }
            let Some(key) = parse_file_name(name) else {
                continue;
            };
            let mtime = entry
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            found
                .entry(key)
                .and_modify(|t| *t = (*t).min(mtime))
                .or_insert(mtime);
        }
        let mut frames: Vec<(SystemTime, FrameKey)> =
            found.into_iter().map(|(k, t)| (t, k)).collect();
        frames.sort_unstable();
        Ok(Self {
            dir,
            present: frames.iter().map(|&(_, k)| k).collect(),
            frames: frames.into_iter().map(|(_, k)| k).collect(),
            hash_lines: None,
        })
    }

    /// Deletes the oldest frames until at most `max` remain.
    fn enforce(&mut self, max: usize) -> Result<(), StorageError> {
        while self.frames.len() > max {
            let Some(key) = self.frames.pop_front() else {
                break;
            };
            self.present.remove(&key);
            for suffix in SUFFIXES {
                remove_if_present(&self.dir.join(file_name(key, suffix)))?;
            }
        }
        Ok(())
    }
}

fn remove_if_present(path: &Path) -> Result<(), StorageError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(path)(e)),
        _ => Ok(()),
    }
}

/// Writes an 8-bit PNG atomically: to a hidden temporary file in the same directory, then
/// renamed over `path`, so readers never see a partial file. No fsync: this is optional debug
/// and evaluation output, and a per-frame fsync would cost more than the encode.
pub(crate) fn write_png_atomic(
    path: &Path,
    width: u32,
    height: u32,
    color: png::ColorType,
    data: &[u8],
) -> Result<(), StorageError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let png_err = |source| StorageError::Png {
        path: path.to_owned(),
        source,
    };
    // Encoded in memory so every write error surfaces (a BufWriter's drop would swallow one).
    let mut encoded = Vec::new();
    let mut encoder = png::Encoder::new(&mut encoded, width, height);
    encoder.set_color(color);
    encoder.set_depth(png::BitDepth::Eight);
    // Class maps are long runs of equal bytes; the fast deflate handles them well.
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header().map_err(png_err)?;
    writer.write_image_data(data).map_err(png_err)?;
    writer.finish().map_err(png_err)?;
    let result = fs::write(&tmp, &encoded)
        .map_err(io_err(&tmp))
        .and_then(|()| fs::rename(&tmp, path).map_err(io_err(path)));
    if result.is_err() {
        // Best effort: the error being returned matters more than a failed clean-up, and the
        // next start-up scan removes leftovers anyway.
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Stores class maps and overlays per stream, keeping at most a configured number of frames
/// per stream, also across restarts.
pub struct ResultStore {
    root: PathBuf,
    config: StorageConfig,
    /// Per stream, keyed by the name as received.
    streams: HashMap<String, StreamState>,
}

impl ResultStore {
    /// A store under `root` (created if missing). Stream directories are scanned when a stream
    /// first stores a frame.
    ///
    /// # Errors
    ///
    /// [`StorageError::InvalidConfig`] if `max_files_per_stream` is 0, [`StorageError::Io`] if
    /// `root` cannot be created.
    pub fn new(root: PathBuf, config: StorageConfig) -> Result<Self, StorageError> {
        if config.max_files_per_stream == 0 {
            return Err(StorageError::InvalidConfig(
                "max_files_per_stream must be at least 1",
            ));
        }
        fs::create_dir_all(&root).map_err(io_err(&root))?;
        Ok(Self {
            root,
            config,
            streams: HashMap::new(),
        })
    }

    /// The root directory.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &StorageConfig {
        &self.config
    }

    /// Drops the in-memory state of a stream (e.g. when its connection closes); its files stay
    /// and are rescanned if it comes back.
    pub fn forget(&mut self, stream: &str) {
        self.streams.remove(stream);
    }

    fn stream_state(&mut self, stream: &str) -> Result<&mut StreamState, StorageError> {
        Ok(match self.streams.entry(stream.to_owned()) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let dir = self.root.join(sanitize_stream_name(stream)?);
                e.insert(StreamState::open(dir)?)
            }
        })
    }

    /// Appends `frame`'s hash line to the stream's `frames.tsv` (when frame hashes are on) and
    /// returns the file; rotates it to `frames.tsv.1` once it holds `max_files_per_stream`
    /// lines.
    ///
    /// # Errors
    ///
    /// [`StorageError`] for an unusable stream name or a failed file operation.
    pub fn log_frame_hash(
        &mut self,
        stream: &str,
        frame_index: u64,
        rtp_timestamp: u32,
        frame: &I420Frame,
    ) -> Result<Option<PathBuf>, StorageError> {
        if !self.config.frame_hashes {
            return Ok(None);
        }
        let max_lines = self.config.max_files_per_stream;
        let state = self.stream_state(stream)?;
        let path = state.dir.join(FRAME_HASHES);
        let lines = match state.hash_lines {
            Some(lines) => lines,
            None => match fs::read(&path) {
                Ok(bytes) => bytes.iter().filter(|&&b| b == b'\n').count(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
                Err(e) => return Err(io_err(&path)(e)),
            },
        };
        let lines = if lines >= max_lines {
            let previous = state.dir.join(FRAME_HASHES_PREVIOUS);
            fs::rename(&path, &previous).map_err(io_err(&previous))?;
            0
        } else {
            lines
        };
        let line = format!(
            "{frame_index}\t{rtp_timestamp}\t{}\t{}\t{}\n",
            frame.width,
            frame.height,
            i420_sha256(frame)
        );
        let mut file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        file.write_all(line.as_bytes()).map_err(io_err(&path))?;
        state.hash_lines = Some(lines + 1);
        Ok(Some(path))
    }

    /// Stores one frame's results as configured and returns what was written.
    ///
    /// `class_map` is `width × height` class indices of a model using `table`; it is converted
    /// to label ids or train ids as configured (train id 255 and unknown classes → label id 0
    /// `unlabeled`; ignored or unknown label ids → train id 255), as `cityscapesScripts`
    /// expects. `overlay_rgb` (packed RGB, `3 · width · height`) is stored only if overlays are
    /// enabled. Writing the same `(frame_index, rtp_timestamp)` again replaces that frame.
    /// Nothing configured or given: nothing written, nothing counted.
    ///
    /// # Errors
    ///
    /// [`StorageError`] for an unusable stream name, a size or length mismatch, or a failed
    /// file operation.
    #[allow(clippy::too_many_arguments)]
    pub fn store(
        &mut self,
        stream: &str,
        rtp_timestamp: u32,
        frame_index: u64,
        class_map: &[u8],
        width: u32,
        height: u32,
        table: ClassTable,
        overlay_rgb: Option<&[u8]>,
    ) -> Result<StoredPaths, StorageError> {
        let pixels = usize::try_from(u64::from(width) * u64::from(height))
            .ok()
            .filter(|&p| p > 0 && p.checked_mul(3).is_some())
            .ok_or(StorageError::Size { width, height })?;
        if class_map.len() != pixels {
            return Err(StorageError::Length {
                what: "class_map",
                expected: pixels,
                actual: class_map.len(),
            });
        }
        let overlay = overlay_rgb.filter(|_| self.config.overlays);
        if let Some(rgb) = overlay
            && rgb.len() != pixels * 3
        {
            return Err(StorageError::Length {
                what: "overlay_rgb",
                expected: pixels * 3,
                actual: rgb.len(),
            });
        }
        if self.config.class_maps.is_none() && overlay.is_none() {
            return Ok(StoredPaths::default());
        }

        let max_files = self.config.max_files_per_stream;
        let class_maps = self.config.class_maps;
        let state = self.stream_state(stream)?;
        // Track the frame before writing, so files of a write that fails half way are still
        // evicted later; evict first, so the bound holds even then.
        let key = (frame_index, rtp_timestamp);
        if !state.present.insert(key) {
            state.frames.retain(|&k| k != key);
        }
        state.frames.push_back(key);
        state.enforce(max_files)?;

        let mut paths = StoredPaths::default();
        if let Some(format) = class_maps {
            let lut: Vec<u8> = (0..=u8::MAX).map(|c| format.convert(table, c)).collect();
            let ids: Vec<u8> = class_map.iter().map(|&c| lut[usize::from(c)]).collect();
            let path = state.dir.join(file_name(key, format.suffix()));
            write_png_atomic(&path, width, height, png::ColorType::Grayscale, &ids)?;
            paths.class_map = Some(path);
        }
        if let Some(rgb) = overlay {
            let path = state.dir.join(file_name(key, OVERLAY_SUFFIX));
            write_png_atomic(&path, width, height, png::ColorType::Rgb, rgb)?;
            paths.overlay = Some(path);
        }
        Ok(paths)
    }
}

/// SHA-256 (lower-case hex) of a picture's I420 planes, packed: Y, then U, then V.
#[must_use]
pub fn i420_sha256(frame: &I420Frame) -> String {
    let mut hasher = Sha256::new();
    hasher.update(&frame.y);
    hasher.update(&frame.u);
    hasher.update(&frame.v);
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh directory, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            static N: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "flowcloud-storage-test-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&path);
            fs::create_dir_all(&path).unwrap();
            Self(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn config(class_maps: Option<LabelFormat>, overlays: bool, max: usize) -> StorageConfig {
        StorageConfig {
            class_maps,
            overlays,
            max_files_per_stream: max,
            frame_hashes: false,
        }
    }

    #[test]
    fn frame_hashes_are_logged_per_stream_and_rotate_at_the_limit() {
        let tmp = TempDir::new();
        let mut store = ResultStore::new(
            tmp.0.clone(),
            StorageConfig {
                frame_hashes: true,
                ..config(None, false, 3)
            },
        )
        .unwrap();
        // 3×3: chroma planes are 2×2, packed without padding.
        let frame = I420Frame::filled(3, 3, (16, 128, 128));
        let mut bytes = vec![16u8; 9];
        bytes.extend([128u8; 8]);
        let expected: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(i420_sha256(&frame), expected);
        for i in 0..5u32 {
            let path = store
                .log_frame_hash("cam", u64::from(i), i * 3000, &frame)
                .unwrap()
                .unwrap();
            assert_eq!(path, tmp.0.join("cam").join(FRAME_HASHES));
        }
        let current = fs::read_to_string(tmp.0.join("cam").join(FRAME_HASHES)).unwrap();
        let previous = fs::read_to_string(tmp.0.join("cam").join(FRAME_HASHES_PREVIOUS)).unwrap();
        assert_eq!(
            current,
            format!("3\t9000\t3\t3\t{expected}\n4\t12000\t3\t3\t{expected}\n")
        );
        assert_eq!(previous.lines().count(), 3);
        assert!(previous.starts_with("0\t0\t3\t3\t"));
        // A restarted store counts the lines already there.
        drop(store);
        let mut store = ResultStore::new(
            tmp.0.clone(),
            StorageConfig {
                frame_hashes: true,
                ..config(None, false, 3)
            },
        )
        .unwrap();
        store.log_frame_hash("cam", 5, 15000, &frame).unwrap();
        store.log_frame_hash("cam", 6, 18000, &frame).unwrap();
        let current = fs::read_to_string(tmp.0.join("cam").join(FRAME_HASHES)).unwrap();
        assert_eq!(current.lines().count(), 1, "{current}");
        // Off: nothing written.
        let mut off = ResultStore::new(tmp.0.join("off"), config(None, false, 3)).unwrap();
        assert_eq!(off.log_frame_hash("cam", 0, 0, &frame).unwrap(), None);
        assert!(!tmp.0.join("off").join("cam").exists());
    }

    fn decode(path: &Path) -> (png::OutputInfo, Vec<u8>) {
        let decoder = png::Decoder::new(io::BufReader::new(fs::File::open(path).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        buf.truncate(info.buffer_size());
        (info, buf)
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn label_ids_round_trip_from_train_ids() {
        let tmp = TempDir::new();
        let mut store = ResultStore::new(
            tmp.0.clone(),
            config(Some(LabelFormat::LabelIds), false, 10),
        )
        .unwrap();
        let (w, h) = (7u32, 3u32);
        let map: Vec<u8> = (0..21u8).map(|i| i % 20).collect(); // 19 is out of range
        let paths = store
            .store(
                "cam1",
                90_000,
                5,
                &map,
                w,
                h,
                ClassTable::CityscapesTrain,
                None,
            )
            .unwrap();
        let path = paths.class_map.unwrap();
        assert_eq!(path, tmp.0.join("cam1/00000005_90000_gtFine_labelIds.png"));
        assert_eq!(paths.overlay, None);
        let (info, pixels) = decode(&path);
        assert_eq!((info.width, info.height), (w, h));
        assert_eq!(info.color_type, png::ColorType::Grayscale);
        assert_eq!(info.bit_depth, png::BitDepth::Eight);
        let expect: Vec<u8> = map
            .iter()
            .map(|&c| crate::classes::train_id_to_label_id(c))
            .collect();
        assert_eq!(pixels, expect);
        assert_eq!(&pixels[..3], &[7, 8, 11]); // road, sidewalk, building
        assert_eq!(pixels[19], 0); // train id 19 does not exist → unlabeled
    }

    #[test]
    fn train_ids_and_overlay_round_trip() {
        let tmp = TempDir::new();
        let mut store =
            ResultStore::new(tmp.0.clone(), config(Some(LabelFormat::TrainIds), true, 10)).unwrap();
        // A label-id model: label ids 0, 7, 26, 9 → train ids 255, 0, 13, 255.
        let map = [0u8, 7, 26, 9];
        let overlay: Vec<u8> = (0..12).map(|i| i * 20).collect();
        let paths = store
            .store(
                "cam",
                1,
                2,
                &map,
                2,
                2,
                ClassTable::CityscapesLabels,
                Some(&overlay),
            )
            .unwrap();
        let (_, ids) = decode(paths.class_map.as_ref().unwrap());
        assert_eq!(ids, [255, 0, 13, 255]);
        assert!(
            paths
                .class_map
                .unwrap()
                .ends_with("00000002_1_gtFine_trainIds.png")
        );
        let (info, rgb) = decode(&paths.overlay.unwrap());
        assert_eq!(info.color_type, png::ColorType::Rgb);
        assert_eq!(rgb, overlay);
        // No temporary files are left behind.
        assert_eq!(
            listing(&tmp.0.join("cam")),
            ["00000002_1_gtFine_trainIds.png", "00000002_1_overlay.png"]
        );
    }

    #[test]
    fn overlay_ignored_when_disabled_and_nothing_configured_writes_nothing() {
        let tmp = TempDir::new();
        let mut store = ResultStore::new(tmp.0.clone(), config(None, false, 3)).unwrap();
        let paths = store
            .store(
                "cam",
                0,
                0,
                &[0],
                1,
                1,
                ClassTable::CityscapesTrain,
                Some(&[1, 2, 3]),
            )
            .unwrap();
        assert_eq!(paths, StoredPaths::default());
        assert!(listing(&tmp.0).is_empty());
    }

    #[test]
    fn retention_holds_across_a_restart() {
        let tmp = TempDir::new();
        let cfg = config(Some(LabelFormat::LabelIds), true, 3);
        let store_frame = |store: &mut ResultStore, i: u64| {
            store
                .store(
                    "cam",
                    3000 * i as u32,
                    i,
                    &[1],
                    1,
                    1,
                    ClassTable::CityscapesTrain,
                    Some(&[9, 9, 9]),
                )
                .unwrap();
        };
        let dir = tmp.0.join("cam");
        {
            let mut store = ResultStore::new(tmp.0.clone(), cfg).unwrap();
            for i in 0..5 {
                store_frame(&mut store, i);
            }
            assert_eq!(listing(&dir).len(), 6);
            assert!(listing(&dir)[0].starts_with("00000002_"));
        }
        // A crash left a temporary file and someone put a foreign file in the directory.
        fs::write(dir.join(".00000009_1_overlay.png.tmp"), b"partial").unwrap();
        fs::write(dir.join("notes.txt"), b"keep me").unwrap();
        {
            let mut store = ResultStore::new(tmp.0.clone(), cfg).unwrap();
            store_frame(&mut store, 5);
            let names = listing(&dir);
            assert_eq!(names.len(), 7, "{names:?}"); // 3 frames × 2 files + notes.txt
            assert!(names[0].starts_with("00000003_"), "{names:?}");
            assert!(names.contains(&"notes.txt".to_owned()));
        }
        // Restart with a smaller bound and frame indices starting over (a new connection): the
        // bound shrinks at once and the new frame is kept although its index is smallest.
        {
            let mut store =
                ResultStore::new(tmp.0.clone(), config(Some(LabelFormat::LabelIds), true, 2))
                    .unwrap();
            store_frame(&mut store, 0);
            let names = listing(&dir);
            assert_eq!(
                names,
                [
                    "00000000_0_gtFine_labelIds.png",
                    "00000000_0_overlay.png",
                    "00000005_15000_gtFine_labelIds.png",
                    "00000005_15000_overlay.png",
                    "notes.txt"
                ]
            );
        }
    }

    #[test]
    fn rewriting_a_frame_does_not_count_twice() {
        let tmp = TempDir::new();
        let mut store =
            ResultStore::new(tmp.0.clone(), config(Some(LabelFormat::LabelIds), false, 2)).unwrap();
        for (i, ts) in [(1, 10), (2, 20), (2, 20), (2, 20)] {
            store
                .store("c", ts, i, &[0], 1, 1, ClassTable::CityscapesTrain, None)
                .unwrap();
        }
        assert_eq!(listing(&tmp.0.join("c")).len(), 2);
        store
            .store("c", 30, 3, &[0], 1, 1, ClassTable::CityscapesTrain, None)
            .unwrap();
        assert_eq!(
            listing(&tmp.0.join("c")),
            [
                "00000002_20_gtFine_labelIds.png",
                "00000003_30_gtFine_labelIds.png"
            ]
        );
    }

    #[test]
    fn streams_are_bounded_independently() {
        let tmp = TempDir::new();
        let mut store =
            ResultStore::new(tmp.0.clone(), config(Some(LabelFormat::LabelIds), false, 1)).unwrap();
        for i in 0..3 {
            for cam in ["a", "b"] {
                store
                    .store(cam, 0, i, &[0], 1, 1, ClassTable::CityscapesTrain, None)
                    .unwrap();
            }
        }
        assert_eq!(
            listing(&tmp.0.join("a")),
            ["00000002_0_gtFine_labelIds.png"]
        );
        assert_eq!(
            listing(&tmp.0.join("b")),
            ["00000002_0_gtFine_labelIds.png"]
        );
    }

    #[test]
    fn bad_input_is_rejected() {
        let tmp = TempDir::new();
        assert!(matches!(
            ResultStore::new(tmp.0.clone(), config(None, true, 0)),
            Err(StorageError::InvalidConfig(_))
        ));
        let mut store =
            ResultStore::new(tmp.0.clone(), config(Some(LabelFormat::LabelIds), true, 2)).unwrap();
        let t = ClassTable::CityscapesTrain;
        assert!(matches!(
            store.store("c", 0, 0, &[0; 3], 2, 2, t, None),
            Err(StorageError::Length {
                what: "class_map",
                ..
            })
        ));
        assert!(matches!(
            store.store("c", 0, 0, &[0; 4], 2, 2, t, Some(&[0; 11])),
            Err(StorageError::Length {
                what: "overlay_rgb",
                ..
            })
        ));
        assert!(matches!(
            store.store("c", 0, 0, &[], 0, 2, t, None),
            Err(StorageError::Size { .. })
        ));
        assert!(matches!(
            store.store("..", 0, 0, &[0], 1, 1, t, None),
            Err(StorageError::InvalidStreamName { .. })
        ));
        assert!(listing(&tmp.0).is_empty());
    }

    #[test]
    fn hostile_stream_names_stay_inside_root() {
        let tmp = TempDir::new();
        let mut store =
            ResultStore::new(tmp.0.clone(), config(Some(LabelFormat::LabelIds), false, 2)).unwrap();
        for name in ["../../etc", "a/b", "/abs", "x\0y", "..\\..\\win"] {
            let paths = store
                .store(name, 0, 0, &[0], 1, 1, ClassTable::CityscapesTrain, None)
                .unwrap();
            let path = paths.class_map.unwrap();
            assert_eq!(path.parent().unwrap().parent().unwrap(), tmp.0);
        }
        assert_eq!(listing(&tmp.0).len(), 5);
    }

    #[test]
    fn sanitize_keeps_safe_names() {
        for name in [
            "cam-01",
            "front.left_2",
            "A",
            "...",
            "x".repeat(64).as_str(),
        ] {
            assert_eq!(sanitize_stream_name(name).unwrap(), name);
        }
    }

    #[test]
    fn sanitize_rejects_empty_and_dots() {
        for name in ["", ".", ".."] {
            assert!(matches!(
                sanitize_stream_name(name),
                Err(StorageError::InvalidStreamName { .. })
            ));
        }
    }

    #[test]
    fn sanitize_changes_get_a_hash() {
        let safe = |s: &str| {
            let out = sanitize_stream_name(s).unwrap();
            assert!(out.len() <= MAX_STREAM_NAME_LEN, "{out}");
            assert!(
                out.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
                "{out}"
            );
            assert!(has_hash_suffix(&out), "{out}");
            assert!(out != "." && out != "..");
            out
        };
        let traversal = safe("../../etc");
        assert!(traversal.starts_with(".._.._etc-"), "{traversal}");
        assert!(safe("a/b").starts_with("a_b-"));
        assert_ne!(safe("a/b"), safe("a:b")); // same replacement, different originals
        assert_ne!(safe("a/b"), "a_b");
        assert!(safe("café").starts_with("caf_-"));
        assert_ne!(safe("café"), safe("cafè"));
        let long_a = "x".repeat(65);
        let long_b = format!("{}y", "x".repeat(64));
        assert_eq!(safe(&long_a).len(), MAX_STREAM_NAME_LEN);
        assert_ne!(safe(&long_a), safe(&long_b));
        assert!(safe(&"é".repeat(100)).len() <= MAX_STREAM_NAME_LEN);
        // An already-sanitized-looking name cannot impersonate the name it came from.
        let impostor = safe(&safe("a/b"));
        assert_ne!(impostor, safe("a/b"));
        // Stable across runs: the directory must be found again after a restart.
        assert_eq!(safe("a/b"), format!("a_b-{:016x}", fnv1a64(b"a/b")));
    }

    #[test]
    fn file_names_parse_only_when_canonical() {
        assert_eq!(parse_file_name("00000012_345_overlay.png"), Some((12, 345)));
        assert_eq!(
            parse_file_name("123456789_0_gtFine_labelIds.png"),
            Some((123_456_789, 0))
        );
        assert_eq!(parse_file_name("12_345_overlay.png"), None);
        assert_eq!(parse_file_name("00000012_0345_overlay.png"), None);
        assert_eq!(parse_file_name("00000012_345_leftImg8bit.png"), None);
        assert_eq!(parse_file_name("00000012_99999999999_overlay.png"), None);
    }
}
