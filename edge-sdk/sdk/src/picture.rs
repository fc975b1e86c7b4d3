//! Uncompressed pictures as capture sources hand them to encoders: a pixel format, a size and
//! borrowed planes with their strides.

/// Pixel layouts the SDK moves between capture sources and encoders.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// Planar 4:2:0: Y, then U, then V at half resolution (`I420`/`YU12`).
    I420,
    /// Semi-planar 4:2:0: Y, then interleaved UV at half resolution (`NV12`).
    Nv12,
    /// Packed 4:2:2: `Y0 U Y1 V` per pixel pair (`YUYV`/`YUY2`).
    Yuyv,
}

impl PixelFormat {
    /// Planes of this format.
    #[must_use]
    pub const fn plane_count(self) -> usize {
        match self {
            Self::I420 => 3,
            Self::Nv12 => 2,
            Self::Yuyv => 1,
        }
    }

    /// Bytes of a tightly packed `width × height` picture.
    #[must_use]
    pub const fn frame_len(self, width: usize, height: usize) -> usize {
        match self {
            Self::I420 | Self::Nv12 => {
                width * height + 2 * (width.div_ceil(2) * height.div_ceil(2))
            }
            Self::Yuyv => width.div_ceil(2) * 4 * height,
        }
    }

    /// The V4L2 / FourCC code of this format.
    #[must_use]
    pub const fn fourcc(self) -> [u8; 4] {
        match self {
            Self::I420 => *b"YU12",
            Self::Nv12 => *b"NV12",
            Self::Yuyv => *b"YUYV",
        }
    }
}

impl core::fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::I420 => "I420",
            Self::Nv12 => "NV12",
            Self::Yuyv => "YUYV",
        })
    }
}

/// What a source produces: size, pixel format and nominal frame rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VideoFormat {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Pixel layout.
    pub pixel_format: PixelFormat,
    /// Nominal frames per second (numerator, denominator).
    pub frame_rate: (u32, u32),
}

/// One plane of a picture: its bytes and the distance between rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plane<'a> {
    /// The plane's bytes, at least `stride × rows` (the last row may be short of the stride).
    pub data: &'a [u8],
    /// Bytes from one row to the next.
    pub stride: usize,
}

/// Why bytes cannot be viewed as a picture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PictureError {
    /// Width or height is zero or odd (4:2:0 and 4:2:2 need even sizes here).
    #[error("picture size {width}x{height} is invalid: both must be even and non-zero")]
    InvalidSize {
        /// Width.
        width: u32,
        /// Height.
        height: u32,
    },
    /// A plane is shorter than its rows need or its stride is below the row length.
    #[error(
        "plane {plane} of a {format} picture needs {needed} bytes with stride {stride}, has {len}"
    )]
    PlaneTooShort {
        /// The pixel format.
        format: PixelFormat,
        /// Plane index.
        plane: usize,
        /// Bytes needed.
        needed: usize,
        /// Bytes present.
        len: usize,
        /// The stride given.
        stride: usize,
    },
}

/// A borrowed uncompressed picture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Picture<'a> {
    width: u32,
    height: u32,
    format: PixelFormat,
    planes: [Plane<'a>; 3],
}

const EMPTY: Plane<'static> = Plane {
    data: &[],
    stride: 0,
};

impl<'a> Picture<'a> {
    /// A picture from planes with explicit strides; checks that every plane holds its rows.
    pub fn new(
        format: PixelFormat,
        width: u32,
        height: u32,
        planes: &[Plane<'a>],
    ) -> Result<Self, PictureError> {
        if width == 0 || height == 0 || !width.is_multiple_of(2) || !height.is_multiple_of(2) {
            return Err(PictureError::InvalidSize { width, height });
        }
        let (w, h) = (width as usize, height as usize);
        let rows_and_len: &[(usize, usize)] = match format {
            PixelFormat::I420 => &[(h, w), (h / 2, w / 2), (h / 2, w / 2)],
            PixelFormat::Nv12 => &[(h, w), (h / 2, w)],
            PixelFormat::Yuyv => &[(h, w * 2)],
        };
        let mut out = [EMPTY; 3];
        for (index, &(rows, row_len)) in rows_and_len.iter().enumerate() {
            let plane = planes.get(index).copied().unwrap_or(EMPTY);
            let needed = (rows - 1) * plane.stride + row_len;
            if plane.stride < row_len || plane.data.len() < needed {
                return Err(PictureError::PlaneTooShort {
                    format,
                    plane: index,
                    needed,
                    len: plane.data.len(),
                    stride: plane.stride,
                });
            }
            out[index] = plane;
        }
        Ok(Self {
            width,
            height,
            format,
            planes: out,
        })
    }

    /// A tightly packed picture in one buffer (planes back to back, strides equal to the width).
    pub fn packed(
        format: PixelFormat,
        width: u32,
        height: u32,
        data: &'a [u8],
    ) -> Result<Self, PictureError> {
        let (w, h) = (width as usize, height as usize);
        let needed = format.frame_len(w, h);
        if width == 0 || height == 0 || !width.is_multiple_of(2) || !height.is_multiple_of(2) {
            return Err(PictureError::InvalidSize { width, height });
        }
        if data.len() < needed {
            return Err(PictureError::PlaneTooShort {
                format,
                plane: 0,
                needed,
                len: data.len(),
                stride: w,
            });
        }
        let planes = match format {
            PixelFormat::I420 => {
                let (y, uv) = data.split_at(w * h);
                let (u, v) = uv.split_at(w * h / 4);
                [
                    Plane { data: y, stride: w },
                    Plane {
                        data: u,
                        stride: w / 2,
                    },
                    Plane {
                        data: v,
                        stride: w / 2,
                    },
                ]
            }
            PixelFormat::Nv12 => {
                let (y, uv) = data.split_at(w * h);
                [
                    Plane { data: y, stride: w },
                    Plane {
                        data: uv,
                        stride: w,
                    },
                    EMPTY,
                ]
            }
            PixelFormat::Yuyv => [
                Plane {
                    data,
                    stride: w * 2,
                },
                EMPTY,
                EMPTY,
            ],
        };
        Self::new(format, width, height, &planes)
    }

    /// Width in pixels.
    #[must_use]
    pub const fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    #[must_use]
    pub const fn height(&self) -> u32 {
        self.height
    }

    /// Pixel layout.
    #[must_use]
    pub const fn format(&self) -> PixelFormat {
        self.format
    }

    /// The planes in use ([`PixelFormat::plane_count`] of them).
    #[must_use]
    pub fn planes(&self) -> &[Plane<'a>] {
        &self.planes[..self.format.plane_count()]
    }

    /// Writes this picture as tightly packed I420 into `out` (`frame_len(I420)` bytes),
    /// converting from NV12 or YUYV (4:2:2 chroma is averaged over row pairs). Allocation-free.
    ///
    /// # Panics
    ///
    /// If `out` is not exactly the I420 frame length of this picture's size.
    pub fn write_i420(&self, out: &mut [u8]) {
        let (w, h) = (self.width as usize, self.height as usize);
        assert_eq!(
            out.len(),
            PixelFormat::I420.frame_len(w, h),
            "I420 buffer size"
        );
        let (cw, ch) = (w / 2, h / 2);
        let (y_out, uv_out) = out.split_at_mut(w * h);
        let (u_out, v_out) = uv_out.split_at_mut(cw * ch);
        let p = &self.planes;
        match self.format {
            PixelFormat::I420 => {
                copy_plane(p[0], w, h, y_out);
                copy_plane(p[1], cw, ch, u_out);
                copy_plane(p[2], cw, ch, v_out);
            }
            PixelFormat::Nv12 => {
                copy_plane(p[0], w, h, y_out);
                for row in 0..ch {
                    let src = &p[1].data[row * p[1].stride..][..w];
                    let (u_row, v_row) =
                        (&mut u_out[row * cw..][..cw], &mut v_out[row * cw..][..cw]);
                    for ((pair, u), v) in src.chunks_exact(2).zip(u_row).zip(v_row) {
                        *u = pair[0];
                        *v = pair[1];
                    }
                }
            }
            PixelFormat::Yuyv => {
                let stride = p[0].stride;
                for row in 0..h {
                    let src = &p[0].data[row * stride..][..w * 2];
                    for (y, pair) in y_out[row * w..][..w].iter_mut().zip(src.chunks_exact(2)) {
                        *y = pair[0];
                    }
                }
                for row in 0..ch {
                    let top = &p[0].data[2 * row * stride..][..w * 2];
                    let bottom = &p[0].data[(2 * row + 1) * stride..][..w * 2];
                    for (col, (t, b)) in top.chunks_exact(4).zip(bottom.chunks_exact(4)).enumerate()
                    {
                        u_out[row * cw + col] = avg(t[1], b[1]);
                        v_out[row * cw + col] = avg(t[3], b[3]);
                    }
                }
            }
        }
    }
}

fn avg(a: u8, b: u8) -> u8 {
    (u16::from(a) + u16::from(b)).div_ceil(2) as u8
}

fn copy_plane(plane: Plane<'_>, row_len: usize, rows: usize, out: &mut [u8]) {
    if plane.stride == row_len {
        out.copy_from_slice(&plane.data[..row_len * rows]);
        return;
    }
    for (row, dst) in out.chunks_exact_mut(row_len).enumerate().take(rows) {
        dst.copy_from_slice(&plane.data[row * plane.stride..][..row_len]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nv12_and_yuyv_convert_to_the_same_i420() {
        let (w, h) = (4usize, 2usize);
        // Y = 10..18, U = 100/101, V = 200/201.
        let y: Vec<u8> = (10..18).collect();
        let mut nv12 = y.clone();
        nv12.extend_from_slice(&[100, 200, 101, 201]);
        let mut yuyv = Vec::new();
        for row in 0..h {
            for pair in 0..w / 2 {
                let y0 = y[row * w + pair * 2];
                let y1 = y[row * w + pair * 2 + 1];
                yuyv.extend_from_slice(&[y0, 100 + pair as u8, y1, 200 + pair as u8]);
            }
        }
        let expected: Vec<u8> = y.iter().copied().chain([100, 101, 200, 201]).collect();
        for (format, data) in [(PixelFormat::Nv12, &nv12), (PixelFormat::Yuyv, &yuyv)] {
            let picture = Picture::packed(format, 4, 2, data).unwrap();
            let mut out = vec![0; 12];
            picture.write_i420(&mut out);
            assert_eq!(out, expected, "{format}");
        }
    }

    #[test]
    fn strided_planes_are_checked_and_copied_row_by_row() {
        // 4x2 I420 luma with stride 6 (two bytes of padding per row).
        let y = [1, 2, 3, 4, 0, 0, 5, 6, 7, 8];
        let u = [9, 10];
        let v = [11, 12];
        let planes = [
            Plane {
                data: &y,
                stride: 6,
            },
            Plane {
                data: &u,
                stride: 2,
            },
            Plane {
                data: &v,
                stride: 2,
            },
        ];
        let picture = Picture::new(PixelFormat::I420, 4, 2, &planes).unwrap();
        let mut out = vec![0; 12];
        picture.write_i420(&mut out);
        assert_eq!(out, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        let short = [
            Plane {
                data: &y[..9],
                stride: 6,
            },
            planes[1],
            planes[2],
        ];
        assert!(matches!(
            Picture::new(PixelFormat::I420, 4, 2, &short),
            Err(PictureError::PlaneTooShort {
                plane: 0,
                needed: 10,
                ..
            })
        ));
        assert!(Picture::packed(PixelFormat::Nv12, 3, 2, &[0; 12]).is_err());
    }
}
