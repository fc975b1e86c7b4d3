//! Cityscapes-format files: finding ground truth, predictions and images by their
//! `{city}_{seq}_{frame}` key, and reading them as PNG within size limits.
//!
//! The layout is the dataset's: `gtFine/{split}/{city}/{city}_{seq}_{frame}_gtFine_labelIds.png`
//! and `leftImg8bit/{split}/{city}/{city}_{seq}_{frame}_leftImg8bit.png`. A file's key is the
//! first three `_`-separated parts of its name, as `cityscapesScripts`' `getCsFileInfo` reads it.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};

use super::EvalError;

/// Suffix of ground-truth label images.
pub const GROUND_TRUTH_SUFFIX: &str = "_gtFine_labelIds.png";
/// Suffix of camera images.
pub const IMAGE_SUFFIX: &str = "_leftImg8bit.png";
/// Folders below a search root that are searched at most (a guard against link cycles).
const MAX_DEPTH: usize = 16;

/// Bounds on the files an evaluation reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageLimits {
    /// Widest and tallest image accepted, in pixels (Cityscapes: 2048×1024).
    pub max_side: u32,
    /// Largest PNG file accepted, in bytes.
    pub max_file_bytes: u64,
}

impl Default for ImageLimits {
    /// 8192 pixels a side, 256 MiB a file.
    fn default() -> Self {
        Self {
            max_side: 8192,
            max_file_bytes: 256 << 20,
        }
    }
}

/// The `{city}_{seq}_{frame}` key of a Cityscapes file name: its first three `_`-separated
/// parts, when it has at least four (`aachen_000000_000019_gtFine_labelIds.png` →
/// `aachen_000000_000019`).
#[must_use]
pub fn cityscapes_key(file_name: &str) -> Option<&str> {
    let mut ends = file_name.match_indices('_').map(|(i, _)| i);
    let (_, _, third) = (ends.next()?, ends.next()?, ends.next()?);
    Some(&file_name[..third])
}

/// The city of a key (its first part).
#[must_use]
pub fn city_of(key: &str) -> &str {
    key.split('_').next().unwrap_or(key)
}

/// The folder searched below `root` for `kind` (`gtFine`, `leftImg8bit`): `root/kind/split`
/// when that is a folder, else `root` itself.
#[must_use]
pub fn split_dir(root: &Path, kind: &str, split: &str) -> PathBuf {
    let dir = root.join(kind).join(split);
    if dir.is_dir() { dir } else { root.to_owned() }
}

/// One ground-truth file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroundTruthFile {
    /// `{city}_{seq}_{frame}`.
    pub key: String,
    /// The `*_gtFine_labelIds.png` file.
    pub path: PathBuf,
}

/// Every file below `dir` whose name ends in `suffix`, by key, in key order.
///
/// # Errors
///
/// [`EvalError::Io`] if a folder cannot be read, [`EvalError::FileName`] for a matching name
/// without a key, [`EvalError::Duplicate`] for two files with one key (`what` names them).
pub fn index_files(
    dir: &Path,
    suffix: &str,
    what: &'static str,
) -> Result<BTreeMap<String, PathBuf>, EvalError> {
    let mut found = BTreeMap::new();
    let mut pending = vec![(dir.to_owned(), 0usize)];
    while let Some((folder, depth)) = pending.pop() {
        let io_error = |source| EvalError::Io {
            path: folder.clone(),
            source,
        };
        let mut entries = fs::read_dir(&folder)
            .map_err(io_error)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(io_error)?;
        entries.sort();
        for path in entries {
            // Follows links, so a linked city folder or file is found like a real one.
            let Ok(meta) = fs::metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                if depth < MAX_DEPTH {
                    pending.push((path, depth + 1));
                }
                continue;
            }
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if !meta.is_file() || !name.ends_with(suffix) || name.starts_with('.') {
                continue;
            }
            let Some(key) = cityscapes_key(name) else {
                return Err(EvalError::FileName { path });
            };
            if let Some(first) = found.get(key) {
                return Err(EvalError::Duplicate {
                    what,
                    key: key.to_owned(),
                    first: PathBuf::clone(first),
                    second: path,
                });
            }
            found.insert(key.to_owned(), path);
        }
    }
    Ok(found)
}

/// Every `*_gtFine_labelIds.png` below `dir`, in key order.
///
/// # Errors
///
/// As [`index_files`], and [`EvalError::NoGroundTruth`] if there is none.
pub fn ground_truth_files(dir: &Path) -> Result<Vec<GroundTruthFile>, EvalError> {
    let files = index_files(dir, GROUND_TRUTH_SUFFIX, "ground-truth")?;
    if files.is_empty() {
        return Err(EvalError::NoGroundTruth {
            dir: dir.to_owned(),
        });
    }
    Ok(files
        .into_iter()
        .map(|(key, path)| GroundTruthFile { key, path })
        .collect())
}

/// An 8-bit single-channel image: label ids, train ids or class indices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelImage {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width × height` values, row-major.
    pub pixels: Vec<u8>,
}

/// An RGB image, 3 bytes per pixel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `3 × width × height` bytes, R, G, B per pixel, row-major.
    pub rgb: Vec<u8>,
}

/// Opens a PNG within `limits` and reads its header.
fn open_png(
    path: &Path,
    limits: ImageLimits,
    transformations: png::Transformations,
) -> Result<png::Reader<BufReader<File>>, EvalError> {
    let io_error = |source: io::Error| EvalError::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io_error)?;
    let bytes = file.metadata().map_err(io_error)?.len();
    if bytes > limits.max_file_bytes {
        return Err(EvalError::FileTooLarge {
            path: path.to_owned(),
            bytes,
            max: limits.max_file_bytes,
        });
    }
    let png_error = |source| EvalError::Png {
        path: path.to_owned(),
        source,
    };
    // The decoder's own buffers stay within png's default limit (64 MiB); the image itself is
    // bounded by the size check below, before anything is allocated for it.
    let mut decoder = png::Decoder::new(BufReader::new(file));
    decoder.set_transformations(transformations);
    let header = decoder.read_header_info().map_err(png_error)?;
    if header.width > limits.max_side || header.height > limits.max_side {
        return Err(EvalError::TooLarge {
            path: path.to_owned(),
            width: header.width,
            height: header.height,
            max: limits.max_side,
        });
    }
    decoder.read_info().map_err(png_error)
}

/// Decodes the first frame of an opened PNG.
fn decode(path: &Path, reader: &mut png::Reader<BufReader<File>>) -> Result<Vec<u8>, EvalError> {
    let size = reader.output_buffer_size().ok_or_else(|| EvalError::Png {
        path: path.to_owned(),
        source: png::DecodingError::LimitsExceeded,
    })?;
    let mut buf = vec![0; size];
    let info = reader
        .next_frame(&mut buf)
        .map_err(|source| EvalError::Png {
            path: path.to_owned(),
            source,
        })?;
    buf.truncate(info.buffer_size());
    Ok(buf)
}

/// Reads an 8-bit greyscale (or palette: its indices) PNG, as `cityscapesScripts` reads label
/// images with PIL.
///
/// # Errors
///
/// [`EvalError::Io`], [`EvalError::FileTooLarge`], [`EvalError::TooLarge`],
/// [`EvalError::Png`] for a file that is not a valid PNG, [`EvalError::PngFormat`] for any
/// other colour type or bit depth.
pub fn read_label_png(path: &Path, limits: ImageLimits) -> Result<LabelImage, EvalError> {
    let mut reader = open_png(path, limits, png::Transformations::IDENTITY)?;
    let (color, depth) = (reader.info().color_type, reader.info().bit_depth);
    if !matches!(color, png::ColorType::Grayscale | png::ColorType::Indexed)
        || depth != png::BitDepth::Eight
    {
        return Err(EvalError::PngFormat {
            path: path.to_owned(),
            found: format!("{color:?} {}-bit", depth as u8),
            expected: "8-bit greyscale (label ids)",
        });
    }
    let (width, height) = (reader.info().width, reader.info().height);
    let pixels = decode(path, &mut reader)?;
    Ok(LabelImage {
        width,
        height,
        pixels,
    })
}

/// Reads a PNG as 8-bit RGB: RGB as it is, RGBA without its alpha, greyscale repeated, a
/// palette looked up, 16-bit channels cut to their high byte.
///
/// # Errors
///
/// As [`read_label_png`].
pub fn read_rgb_png(path: &Path, limits: ImageLimits) -> Result<RgbImage, EvalError> {
    let mut reader = open_png(
        path,
        limits,
        png::Transformations::EXPAND | png::Transformations::STRIP_16,
    )?;
    let (width, height) = (reader.info().width, reader.info().height);
    let (color, _) = reader.output_color_type();
    let data = decode(path, &mut reader)?;
    let rgb = match color {
        png::ColorType::Rgb => data,
        png::ColorType::Rgba => data
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect(),
        png::ColorType::Grayscale => data.iter().flat_map(|&v| [v, v, v]).collect(),
        png::ColorType::GrayscaleAlpha => data
            .chunks_exact(2)
            .flat_map(|p| [p[0], p[0], p[0]])
            .collect(),
        png::ColorType::Indexed => {
            return Err(EvalError::PngFormat {
                path: path.to_owned(),
                found: "palette without a PLTE chunk".to_owned(),
                expected: "8-bit RGB",
            });
        }
    };
    Ok(RgbImage { width, height, rgb })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testing::TempDir;

    fn write_png(path: &Path, width: u32, height: u32, color: png::ColorType, data: &[u8]) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let file = File::create(path).unwrap();
        let mut encoder = png::Encoder::new(io::BufWriter::new(file), width, height);
        encoder.set_color(color);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(data).unwrap();
        writer.finish().unwrap();
    }

    #[test]
    fn keys_as_cityscapes_scripts_reads_them() {
        assert_eq!(
            cityscapes_key("aachen_000000_000019_gtFine_labelIds.png"),
            Some("aachen_000000_000019")
        );
        assert_eq!(
            cityscapes_key("aachen_000000_000019_labelIds.png"),
            Some("aachen_000000_000019")
        );
        assert_eq!(cityscapes_key("aachen_000000_000019.png"), None);
        assert_eq!(cityscapes_key("labelIds.png"), None);
        assert_eq!(city_of("aachen_000000_000019"), "aachen");
    }

    #[test]
    fn index_finds_nested_files_and_rejects_duplicates() {
        let dir = TempDir::new();
        let root = dir.path();
        for name in [
            "gtFine/val/b/b_000000_000002_gtFine_labelIds.png",
            "gtFine/val/a/a_000000_000001_gtFine_labelIds.png",
            "gtFine/val/a/a_000000_000001_gtFine_color.png",
            "gtFine/train/c/c_000000_000003_gtFine_labelIds.png",
        ] {
            fs::create_dir_all(root.join(name).parent().unwrap()).unwrap();
            fs::write(root.join(name), b"x").unwrap();
        }
        let val = split_dir(root, "gtFine", "val");
        assert_eq!(val, root.join("gtFine/val"));
        assert_eq!(split_dir(root, "gtFine", "test"), root);
        let files = ground_truth_files(&val).unwrap();
        let keys: Vec<_> = files.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(keys, ["a_000000_000001", "b_000000_000002"]);
        assert_eq!(ground_truth_files(root).unwrap().len(), 3);

        fs::write(
            root.join("gtFine/val/b/a_000000_000001_gtFine_labelIds.png"),
            b"x",
        )
        .unwrap();
        let err = ground_truth_files(&val).unwrap_err();
        assert!(matches!(err, EvalError::Duplicate { .. }), "{err}");
        assert!(err.to_string().contains("a_000000_000001"), "{err}");

        let empty = TempDir::new();
        assert!(matches!(
            ground_truth_files(empty.path()),
            Err(EvalError::NoGroundTruth { .. })
        ));
        fs::write(empty.path().join("x_gtFine_labelIds.png"), b"x").unwrap();
        assert!(matches!(
            ground_truth_files(empty.path()),
            Err(EvalError::FileName { .. })
        ));
    }

    #[test]
    fn reads_label_and_rgb_pngs() {
        let dir = TempDir::new();
        let label = dir.path().join("l.png");
        write_png(
            &label,
            3,
            2,
            png::ColorType::Grayscale,
            &[0, 7, 26, 33, 255, 1],
        );
        let image = read_label_png(&label, ImageLimits::default()).unwrap();
        assert_eq!((image.width, image.height), (3, 2));
        assert_eq!(image.pixels, [0, 7, 26, 33, 255, 1]);

        let rgb = dir.path().join("rgb.png");
        write_png(&rgb, 2, 1, png::ColorType::Rgb, &[1, 2, 3, 4, 5, 6]);
        assert_eq!(
            read_rgb_png(&rgb, ImageLimits::default()).unwrap().rgb,
            [1, 2, 3, 4, 5, 6]
        );
        let rgba = dir.path().join("rgba.png");
        write_png(&rgba, 2, 1, png::ColorType::Rgba, &[1, 2, 3, 9, 4, 5, 6, 9]);
        assert_eq!(
            read_rgb_png(&rgba, ImageLimits::default()).unwrap().rgb,
            [1, 2, 3, 4, 5, 6]
        );
        // Greyscale reads as RGB too, but RGB is not a label image.
        assert_eq!(
            read_rgb_png(&label, ImageLimits::default()).unwrap().rgb[3..6],
            [7, 7, 7]
        );
        let err = read_label_png(&rgb, ImageLimits::default()).unwrap_err();
        assert!(matches!(err, EvalError::PngFormat { .. }), "{err}");
        assert!(err.to_string().contains("rgb.png"), "{err}");
    }

    #[test]
    fn bad_files_are_errors_naming_the_file() {
        let dir = TempDir::new();
        let big = dir.path().join("big.png");
        write_png(&big, 40, 10, png::ColorType::Grayscale, &[0; 400]);
        let small = ImageLimits {
            max_side: 32,
            ..ImageLimits::default()
        };
        let err = read_label_png(&big, small).unwrap_err();
        assert!(
            matches!(
                err,
                EvalError::TooLarge {
                    width: 40,
                    height: 10,
                    max: 32,
                    ..
                }
            ),
            "{err}"
        );
        let tiny_files = ImageLimits {
            max_file_bytes: 10,
            ..ImageLimits::default()
        };
        assert!(matches!(
            read_label_png(&big, tiny_files),
            Err(EvalError::FileTooLarge { .. })
        ));

        let truncated = dir.path().join("truncated.png");
        let bytes = fs::read(&big).unwrap();
        fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
        let err = read_label_png(&truncated, ImageLimits::default()).unwrap_err();
        assert!(err.to_string().contains("truncated.png"), "{err}");

        let garbage = dir.path().join("garbage.png");
        fs::write(&garbage, b"not a png at all").unwrap();
        let err = read_rgb_png(&garbage, ImageLimits::default()).unwrap_err();
        assert!(matches!(err, EvalError::Png { .. }), "{err}");
        assert!(err.to_string().contains("garbage.png"), "{err}");

        let missing = dir.path().join("missing.png");
        let err = read_label_png(&missing, ImageLimits::default()).unwrap_err();
        assert!(matches!(err, EvalError::Io { .. }), "{err}");
        assert!(err.to_string().contains("missing.png"), "{err}");
    }
}
