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
    /// `fused_overlay.cu`: logits → class map and the blended overlay in one pass; compiled
    /// together with `upsample_argmax.cu` and `overlay.cu`, whose per-pixel functions it calls.
    Fused,
}

impl KernelSource {
    /// Every source file.
    pub const ALL: [Self; 4] = [
        Self::Preprocess,
        Self::UpsampleArgmax,
        Self::Overlay,
        Self::Fused,
    ];

    /// The file name under `cuda/kernels/`.
    #[must_use]
    pub const fn file_name(self) -> &'static str {
        match self {
            Self::Preprocess => "preprocess.cu",
            Self::UpsampleArgmax => "upsample_argmax.cu",
            Self::Overlay => "overlay.cu",
            Self::Fused => "fused_overlay.cu",
        }
    }

    /// The CUDA C source (for [`KernelSource::Fused`], the three files it is built from, in
    /// order).
    #[must_use]
    pub const fn source(self) -> &'static str {
        match self {
            Self::Preprocess => include_str!("../kernels/preprocess.cu"),
            Self::UpsampleArgmax => include_str!("../kernels/upsample_argmax.cu"),
            Self::Overlay => include_str!("../kernels/overlay.cu"),
            // One program, so the fused kernels call the very functions of the two steps.
            Self::Fused => concat!(
                include_str!("../kernels/upsample_argmax.cu"),
                "\n",
                include_str!("../kernels/overlay.cu"),
                "\n",
                include_str!("../kernels/fused_overlay.cu"),
            ),
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
            Self::Fused => &[
                entry::ARGMAX_BLEND_RGBA_F32,
                entry::ARGMAX_BLEND_RGBA_F16,
                entry::ARGMAX_BLEND_NV12_F32,
                entry::ARGMAX_BLEND_NV12_F16,
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
    /// f32 logits → class map and RGBA overlay, fused.
    pub const ARGMAX_BLEND_RGBA_F32: &str = "fc_argmax_blend_rgba_f32";
    /// f16 logits → class map and RGBA overlay, fused.
    pub const ARGMAX_BLEND_RGBA_F16: &str = "fc_argmax_blend_rgba_f16";
    /// f32 logits → class map and NV12 overlay, fused.
    pub const ARGMAX_BLEND_NV12_F32: &str = "fc_argmax_blend_nv12_f32";
    /// f16 logits → class map and NV12 overlay, fused.
    pub const ARGMAX_BLEND_NV12_F16: &str = "fc_argmax_blend_nv12_f16";
}
