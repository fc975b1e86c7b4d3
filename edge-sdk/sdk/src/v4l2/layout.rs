//! Where the planes of a raw picture lie in a V4L2 buffer: the same rules cut a captured frame
//! into a [`Picture`](crate::picture::Picture) and lay a picture out in an encoder's input buffer.

use crate::picture::PixelFormat;

use super::bindings as b;
use super::{Format, FourCc};

/// Where one picture plane lies in a buffer's memory planes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PlaneLayout {
    /// Memory plane (V4L2 buffer plane) holding it.
    pub(crate) memory_plane: usize,
    /// Offset from the start of that memory plane's payload.
    pub(crate) offset: usize,
    /// Bytes from one row to the next.
    pub(crate) stride: usize,
    /// Rows.
    pub(crate) rows: usize,
}

impl PlaneLayout {
    /// Bytes the plane spans: every row at full stride.
    pub(crate) const fn len(&self) -> usize {
        self.stride * self.rows
    }
}

/// The layout of each plane of `pixel_format` (the first `plane_count()` entries) in buffers of
/// `format`, by the driver's strides. Errors say why a format cannot be used: an odd size,
/// interlacing, a stride shorter than a row, an unexpected plane count, a `sizeimage` too small.
pub(crate) fn plane_layout(
    format: &Format,
    pixel_format: PixelFormat,
) -> Result<[PlaneLayout; 3], String> {
    let (w, h) = (format.width as usize, format.height as usize);
    if w == 0 || h == 0 || !w.is_multiple_of(2) || !h.is_multiple_of(2) {
        return Err(format!(
            "the driver set {w}x{h} {}: both sizes must be even and non-zero",
            format.fourcc
        ));
    }
    if format.field != b::V4L2_FIELD_NONE && format.field != b::V4L2_FIELD_ANY {
        return Err(format!(
            "the driver set field order {} (interlaced); only progressive frames are supported",
            format.field
        ));
    }
    let planes = format.planes();
    let expected = match format.fourcc {
        FourCc::NV12M => 2,
        FourCc::YM12 => 3,
        _ => 1,
    };
    if planes.len() != expected {
        return Err(format!(
            "{} with {} memory planes (expected {expected})",
            format.fourcc,
            planes.len()
        ));
    }
    let min_row = match pixel_format {
        PixelFormat::Yuyv => 2 * w,
        PixelFormat::Nv12 | PixelFormat::I420 => w,
    };
    // Drivers may leave bytesperline 0 for tightly packed rows.
    let stride = |plane: usize, min: usize| -> Result<usize, String> {
        match planes.get(plane).map_or(0, |p| p.bytesperline as usize) {
            0 => Ok(min),
            bpl if bpl < min => Err(format!(
                "{} plane {plane}: bytesperline {bpl} is shorter than a row ({min} bytes)",
                format.fourcc
            )),
            bpl => Ok(bpl),
        }
    };
    let at = |memory_plane, offset, stride, rows| PlaneLayout {
        memory_plane,
        offset,
        stride,
        rows,
    };
    let none = PlaneLayout::default();
    let y = stride(0, min_row)?;
    let layout = match (pixel_format, planes.len()) {
        (PixelFormat::Yuyv, _) => [at(0, 0, y, h), none, none],
        (PixelFormat::Nv12, 1) => [at(0, 0, y, h), at(0, y * h, y, h / 2), none],
        (PixelFormat::Nv12, _) => [at(0, 0, y, h), at(1, 0, stride(1, w)?, h / 2), none],
        // YU12 in one buffer: chroma rows have half the luma stride (the V4L2 format definition).
        (PixelFormat::I420, 1) => [
            at(0, 0, y, h),
            at(0, y * h, y / 2, h / 2),
            at(0, y * h + (y / 2) * (h / 2), y / 2, h / 2),
        ],
        (PixelFormat::I420, _) => [
            at(0, 0, y, h),
            at(1, 0, stride(1, w / 2)?, h / 2),
            at(2, 0, stride(2, w / 2)?, h / 2),
        ],
    };
    // Every memory plane must be big enough for the picture planes cut from it.
    for (index, plane) in planes.iter().enumerate() {
        let needed = layout
            .iter()
            .take(pixel_format.plane_count())
            .filter(|l| l.memory_plane == index)
            .map(|l| l.offset + l.len())
            .max()
            .unwrap_or(0);
        if (plane.sizeimage as usize) < needed {
            return Err(format!(
                "{} plane {index} has sizeimage {}, fewer than the {needed} bytes its rows need",
                format.fourcc, plane.sizeimage
            ));
        }
    }
    Ok(layout)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::v4l2::BufType;

    /// A format as a driver would return it: `planes` as (bytesperline, sizeimage).
    pub(crate) fn format(fourcc: FourCc, width: u32, height: u32, planes: &[(u32, u32)]) -> Format {
        let mut plane_fmt = [b::v4l2_plane_pix_format {
            sizeimage: 0,
            bytesperline: 0,
            reserved: [0; 6],
        }; b::VIDEO_MAX_PLANES];
        for (out, &(bytesperline, sizeimage)) in plane_fmt.iter_mut().zip(planes) {
            out.bytesperline = bytesperline;
            out.sizeimage = sizeimage;
        }
        let raw = b::v4l2_format {
            type_: BufType::VideoCaptureMplane.raw(),
            fmt: b::v4l2_format_fmt {
                pix_mp: b::v4l2_pix_format_mplane {
                    width,
                    height,
                    pixelformat: fourcc.0,
                    field: b::V4L2_FIELD_NONE,
                    colorspace: 0,
                    plane_fmt,
                    num_planes: planes.len() as u8,
                    flags: 0,
                    ycbcr_enc: 0,
                    quantization: 0,
                    xfer_func: 0,
                    reserved: [0; 7],
                },
            },
        };
        Format::from_raw(BufType::VideoCaptureMplane, &raw)
    }

    #[test]
    fn contiguous_nv12_is_cut_at_the_drivers_stride() {
        // 640x480 with rows padded to 768 bytes.
        let f = format(FourCc::NV12, 640, 480, &[(768, 768 * 720)]);
        let layout = plane_layout(&f, PixelFormat::Nv12).unwrap();
        assert_eq!(
            layout[0],
            PlaneLayout {
                memory_plane: 0,
                offset: 0,
                stride: 768,
                rows: 480
            }
        );
        assert_eq!(
            layout[1],
            PlaneLayout {
                memory_plane: 0,
                offset: 768 * 480,
                stride: 768,
                rows: 240
            }
        );
    }

    #[test]
    fn contiguous_i420_chroma_has_half_the_stride() {
        let f = format(FourCc::YU12, 64, 32, &[(64, 64 * 48)]);
        let layout = plane_layout(&f, PixelFormat::I420).unwrap();
        assert_eq!(
            layout.map(|l| (l.offset, l.stride, l.rows)),
            [(0, 64, 32), (2048, 32, 16), (2560, 32, 16)]
        );
    }

    #[test]
    fn multi_buffer_formats_take_each_plane_from_its_own_buffer() {
        let f = format(FourCc::YM12, 64, 32, &[(64, 2048), (32, 512), (32, 512)]);
        let layout = plane_layout(&f, PixelFormat::I420).unwrap();
        assert_eq!(
            layout.map(|l| (l.memory_plane, l.offset, l.stride)),
            [(0, 0, 64), (1, 0, 32), (2, 0, 32)]
        );
        let yuyv = format(FourCc::YUYV, 64, 32, &[(0, 4096)]);
        let layout = plane_layout(&yuyv, PixelFormat::Yuyv).unwrap();
        assert_eq!(layout[0].stride, 128, "bytesperline 0 means tightly packed");
    }

    #[test]
    fn unusable_formats_are_rejected_with_the_reason() {
        let cases = [
            (
                format(FourCc::YUYV, 64, 32, &[(100, 4096)]),
                PixelFormat::Yuyv,
                "shorter than a row",
            ),
            (
                format(FourCc::NV12, 63, 32, &[(64, 4096)]),
                PixelFormat::Nv12,
                "even",
            ),
            (
                format(FourCc::NV12M, 64, 32, &[(64, 4096)]),
                PixelFormat::Nv12,
                "expected 2",
            ),
            (
                format(FourCc::NV12, 64, 32, &[(64, 2048)]),
                PixelFormat::Nv12,
                "sizeimage 2048",
            ),
        ];
        for (f, pixel_format, reason) in cases {
            let error = plane_layout(&f, pixel_format).unwrap_err();
            assert!(error.contains(reason), "{error}");
        }
    }
}
