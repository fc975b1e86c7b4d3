//! The `.cu` sources, embedded, and the entry points each defines.

/// One `.cu` file of `cuda/kernels/`: compiled as one NVRTC program, loaded as one module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KernelSource {
    /// `preprocess.cu`: NV12 → bilinear resize → normalize → planar RGB/BGR.
    Preprocess,
    /// `upsample_argmax.cu`: fused logit upsample + argmax → u8 class map.
    UpsampleArgmax,
    /// `overlay.cu`: colorize with a palette, alpha blend over the frame.
    Overlay,
}

impl KernelSource {
    /// Every source file.
    pub const ALL: [Self; 3] = [Self::Preprocess, Self::UpsampleArgmax, Self::Overlay];

    /// The file name under `cuda/kernels/`.
    #[must_use]
    pub const fn file_name(self) -> &'static str {
        match self {
            Self::Preprocess => "preprocess.cu",
            Self::UpsampleArgmax => "upsample_argmax.cu",
            Self::Overlay => "overlay.cu",
        }
    }

    /// The CUDA C source.
    #[must_use]
    pub const fn source(self) -> &'static str {
        match self {
            Self::Preprocess => include_str!("../kernels/preprocess.cu"),
            Self::UpsampleArgmax => include_str!("../kernels/upsample_argmax.cu"),
            Self::Overlay => include_str!("../kernels/overlay.cu"),
        }
    }

    /// The `extern "C" __global__` functions it defines.
    #[must_use]
    pub const fn entry_points(self) -> &'static [&'static str] {
        match self {
            Self::Preprocess => &[entry::NV12_TO_PLANAR_F32, entry::NV12_TO_PLANAR_F16],
            Self::UpsampleArgmax => &[entry::UPSAMPLE_ARGMAX_F32, entry::UPSAMPLE_ARGMAX_F16],
            Self::Overlay => &[
                entry::COLORIZE_RGBA,
                entry::BLEND_NV12_RGBA,
                entry::BLEND_NV12_NV12,
            ],
        }
    }
}

/// Kernel entry point names.
pub mod entry {
    /// NV12 → planar f32.
    pub const NV12_TO_PLANAR_F32: &str = "fc_nv12_to_planar_f32";
    /// NV12 → planar f16.
    pub const NV12_TO_PLANAR_F16: &str = "fc_nv12_to_planar_f16";
    /// f32 logits → class map.
    pub const UPSAMPLE_ARGMAX_F32: &str = "fc_upsample_argmax_f32";
    /// f16 logits → class map.
    pub const UPSAMPLE_ARGMAX_F16: &str = "fc_upsample_argmax_f16";
    /// Class map → RGBA palette colours.
    pub const COLORIZE_RGBA: &str = "fc_colorize_rgba";
    /// Class map blended over an NV12 frame → RGBA.
    pub const BLEND_NV12_RGBA: &str = "fc_blend_nv12_rgba";
    /// Class map blended over an NV12 frame → NV12.
    pub const BLEND_NV12_NV12: &str = "fc_blend_nv12_nv12";
}
