//! A CUDA context on one GPU with the kernels' modules, and a typed launch wrapper per kernel.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaStream, CudaView, CudaViewMut, LaunchConfig,
    PushKernelArg,
};
use cudarc::nvrtc::Ptx;

use crate::capability::{MIN_COMPUTE_CAPABILITY, driver_error, init_driver};
use crate::error::{CudaError, LaunchError, ShapeError};
use crate::kernels::{KernelSource, entry};
use crate::nvrtc::Nvrtc;
use crate::prebuilt;
use crate::shape::{
    LogitShape, MAX_SIDE, Nv12Layout, PALETTE_BYTES, PreprocessParams, check_alpha, check_fused,
    exact_len,
};

/// Threads per block along x and y: 16 × 16 = 256 threads, one per output pixel (or 2×2 block).
const BLOCK: u32 = 16;

/// Where a [`GpuContext`] takes the kernels' PTX from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PtxSource {
    /// nvcc's from the build where it covers the GPU ([`prebuilt::for_gpu`]), NVRTC's
    /// otherwise, and NVRTC's too when the driver rejects the prebuilt PTX (a driver older
    /// than that nvcc). NVRTC need not be installed where the prebuilt PTX covers the GPU.
    #[default]
    Auto,
    /// Only nvcc's from the build.
    Prebuilt,
    /// Only NVRTC's, compiled for the GPU's own architecture.
    Nvrtc,
}

/// A CUDA context on one GPU and the kernels' modules (loaded on first use, then kept).
#[derive(Debug)]
pub struct GpuContext {
    ctx: Arc<CudaContext>,
    nvrtc: Option<Nvrtc>,
    ptx: PtxSource,
    compute_capability: (i32, i32),
    arch: String,
    functions: Mutex<HashMap<&'static str, CudaFunction>>,
}

impl GpuContext {
    /// Opens GPU `ordinal` with [`PtxSource::Auto`].
    ///
    /// # Errors
    ///
    /// As [`GpuContext::with_ptx`].
    pub fn new(ordinal: usize) -> Result<Self, CudaError> {
        Self::with_ptx(ordinal, PtxSource::Auto)
    }

    /// Opens GPU `ordinal`: the driver must load and see that GPU with compute capability
    /// [`MIN_COMPUTE_CAPABILITY`] or newer; NVRTC must load ([`Nvrtc::load`]) unless `ptx`
    /// lets prebuilt PTX serve every kernel on it.
    ///
    /// # Errors
    ///
    /// [`CudaError::DriverNotFound`] on a machine without the NVIDIA driver,
    /// [`CudaError::Driver`] / [`CudaError::NoDevice`] without a usable GPU,
    /// [`CudaError::ComputeCapability`] for a GPU that is too old,
    /// [`CudaError::NoPrebuiltPtx`] for [`PtxSource::Prebuilt`] without PTX for it, and
    /// NVRTC's errors.
    pub fn with_ptx(ordinal: usize, ptx: PtxSource) -> Result<Self, CudaError> {
        init_driver()?;
        let count = CudaContext::device_count().map_err(driver_error("cuDeviceGetCount"))?;
        let count = usize::try_from(count).unwrap_or_default();
        if ordinal >= count {
            return Err(CudaError::NoDevice { ordinal, count });
        }
        let ctx = CudaContext::new(ordinal).map_err(driver_error("cuDevicePrimaryCtxRetain"))?;
        let found = ctx
            .compute_capability()
            .map_err(driver_error("cuDeviceGetAttribute"))?;
        if found < MIN_COMPUTE_CAPABILITY {
            return Err(CudaError::ComputeCapability {
                ordinal,
                name: ctx.name().unwrap_or_default(),
                found,
                needed: MIN_COMPUTE_CAPABILITY,
            });
        }
        let covered = prebuilt::covers(found);
        let nvrtc = match ptx {
            PtxSource::Prebuilt if !covered => {
                return Err(CudaError::NoPrebuiltPtx {
                    found,
                    built: prebuilt::architectures(),
                });
            }
            PtxSource::Prebuilt => None,
            // Kept when it loads, for a driver that rejects the prebuilt PTX.
            PtxSource::Auto if covered => Nvrtc::load().ok(),
            PtxSource::Auto | PtxSource::Nvrtc => Some(Nvrtc::load()?),
        };
        Ok(Self {
            ctx,
            nvrtc,
            ptx,
            compute_capability: found,
            // PTX for the GPU's virtual architecture; the driver compiles it for the GPU.
            arch: format!("compute_{}{}", found.0, found.1),
            functions: Mutex::default(),
        })
    }

    /// The cudarc context, for allocating buffers and creating streams.
    #[must_use]
    pub const fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    /// The NVRTC kernels without prebuilt PTX are compiled with; `None` when prebuilt PTX
    /// serves them all and no NVRTC is installed (or [`PtxSource::Prebuilt`]).
    #[must_use]
    pub const fn nvrtc(&self) -> Option<&Nvrtc> {
        self.nvrtc.as_ref()
    }

    /// Where `kernel`'s PTX comes from on this GPU: `"nvcc compute_90 (…release…)"` or
    /// `"NVRTC 13.0 compute_90"` (before a load has fallen back, see [`PtxSource::Auto`]).
    #[must_use]
    pub fn ptx_origin(&self, kernel: KernelSource) -> String {
        match (self.ptx, prebuilt::for_gpu(kernel, self.compute_capability)) {
            (PtxSource::Auto | PtxSource::Prebuilt, Some(built)) => {
                let (major, minor) = built.compute_capability;
                format!(
                    "nvcc compute_{major}{minor} ({})",
                    prebuilt::NVCC_VERSION.unwrap_or("?")
                )
            }
            _ => match &self.nvrtc {
                Some(nvrtc) => format!("NVRTC {} {}", nvrtc.version(), self.arch),
                None => "none".to_owned(),
            },
        }
    }

    /// Compiles (or takes from the cache) and loads every kernel now, so that the first frame
    /// does not pay for it.
    ///
    /// # Errors
    ///
    /// As [`GpuContext::new`]'s NVRTC errors, or the driver's when loading a module.
    pub fn warm_up(&self) -> Result<(), CudaError> {
        for source in KernelSource::ALL {
            self.load(source)?;
        }
        Ok(())
    }

    /// Compiles (or takes from the cache) and loads `source`'s module now, so that a stage
    /// using only its kernels finds a missing NVRTC or PTX when it starts, not at its first
    /// frame.
    ///
    /// # Errors
    ///
    /// As [`GpuContext::warm_up`].
    pub fn load(&self, source: KernelSource) -> Result<(), CudaError> {
        for name in source.entry_points() {
            self.function(source, name)?;
        }
        Ok(())
    }

    fn function(
        &self,
        source: KernelSource,
        name: &'static str,
    ) -> Result<CudaFunction, CudaError> {
        if let Some(f) = self
            .functions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
        {
            return Ok(f.clone());
        }
        let built = match self.ptx {
            PtxSource::Nvrtc => None,
            PtxSource::Auto | PtxSource::Prebuilt => {
                prebuilt::for_gpu(source, self.compute_capability)
            }
        };
        let module: Arc<CudaModule> = match built {
            Some(built) => match self.ctx.load_module(Ptx::from_src(built.ptx)) {
                Ok(module) => module,
                // A driver older than the nvcc rejects its PTX's ISA; NVRTC compiles for it.
                Err(_) if self.ptx == PtxSource::Auto && self.nvrtc.is_some() => {
                    self.load_from_nvrtc(source)?
                }
                Err(e) => return Err(driver_error("cuModuleLoadData")(e)),
            },
            None => self.load_from_nvrtc(source)?,
        };
        let mut functions = self
            .functions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for &entry_point in source.entry_points() {
            let f = module
                .load_function(entry_point)
                .map_err(driver_error("cuModuleGetFunction"))?;
            functions.insert(entry_point, f);
        }
        functions.get(name).cloned().ok_or(CudaError::Nvrtc {
            kernel: source.file_name().to_owned(),
            reason: format!("{name} is not in the module"),
        })
    }

    fn load_from_nvrtc(&self, source: KernelSource) -> Result<Arc<CudaModule>, CudaError> {
        let nvrtc = self
            .nvrtc
            .as_ref()
            .ok_or_else(|| CudaError::NoPrebuiltPtx {
                found: self.compute_capability,
                built: prebuilt::architectures(),
            })?;
        let ptx = nvrtc.ptx(source, &self.arch)?;
        self.ctx
            .load_module(Ptx::from_src(ptx.as_ref()))
            .map_err(driver_error("cuModuleLoadData"))
    }

    /// NV12 frame → the model's planar `f32` input (`fc_nv12_to_planar_f32`), on `stream`;
    /// [`crate::reference::preprocess_nv12`] is its definition.
    ///
    /// # Errors
    ///
    /// [`LaunchError::Shape`] for sizes that do not fit the buffers (nothing is launched then),
    /// [`LaunchError::Load`] or [`LaunchError::Driver`].
    pub fn nv12_to_planar_f32(
        &self,
        stream: &CudaStream,
        frame: &CudaView<'_, u8>,
        layout: Nv12Layout,
        params: &PreprocessParams,
        out: &mut CudaViewMut<'_, f32>,
    ) -> Result<(), LaunchError> {
        self.preprocess(
            entry::NV12_TO_PLANAR_F32,
            stream,
            frame,
            layout,
            params,
            out,
        )
    }

    /// As [`GpuContext::nv12_to_planar_f32`] with binary16 output (`fc_nv12_to_planar_f16`;
    /// `out` holds the bit patterns); [`crate::reference::preprocess_nv12_f16`] is its
    /// definition.
    ///
    /// # Errors
    ///
    /// As [`GpuContext::nv12_to_planar_f32`].
    pub fn nv12_to_planar_f16(
        &self,
        stream: &CudaStream,
        frame: &CudaView<'_, u8>,
        layout: Nv12Layout,
        params: &PreprocessParams,
        out: &mut CudaViewMut<'_, u16>,
    ) -> Result<(), LaunchError> {
        self.preprocess(
            entry::NV12_TO_PLANAR_F16,
            stream,
            frame,
            layout,
            params,
            out,
        )
    }

    fn preprocess<T>(
        &self,
        name: &'static str,
        stream: &CudaStream,
        frame: &CudaView<'_, u8>,
        layout: Nv12Layout,
        params: &PreprocessParams,
        out: &mut CudaViewMut<'_, T>,
    ) -> Result<(), LaunchError> {
        layout.check("NV12 frame", frame.len())?;
        params.check(out.len())?;
        let f = self.function(KernelSource::Preprocess, name)?;
        let chroma_offset = layout.chroma_offset as u64;
        let [scale_r, scale_g, scale_b] = params.scale();
        let [bias_r, bias_g, bias_b] = params.bias();
        let bgr = u32::from(params.plane_of(0) == 2);
        let cfg = grid(params.out_width, params.out_height);
        let mut launch = stream.launch_builder(&f);
        launch
            .arg(frame)
            .arg(&chroma_offset)
            .arg(&layout.pitch)
            .arg(&layout.width)
            .arg(&layout.height)
            .arg(&params.out_width)
            .arg(&params.out_height)
            .arg(&scale_r)
            .arg(&scale_g)
            .arg(&scale_b)
            .arg(&bias_r)
            .arg(&bias_g)
            .arg(&bias_b)
            .arg(&bgr)
            .arg(out);
        // SAFETY: the arguments match the kernel's parameter list in order and type, and the
        // checks above keep every access inside `frame` and `out`.
        unsafe { launch.launch(cfg) }.map_err(launch_error(name))?;
        Ok(())
    }

    /// Logits (`f32`, `classes × in_h × in_w`) → class map (`fc_upsample_argmax_f32`);
    /// [`crate::reference::upsample_argmax`] is its definition.
    ///
    /// # Errors
    ///
    /// As [`GpuContext::nv12_to_planar_f32`].
    pub fn upsample_argmax_f32(
        &self,
        stream: &CudaStream,
        logits: &CudaView<'_, f32>,
        shape: &LogitShape,
        class_map: &mut CudaViewMut<'_, u8>,
    ) -> Result<(), LaunchError> {
        self.upsample_argmax(entry::UPSAMPLE_ARGMAX_F32, stream, logits, shape, class_map)
    }

    /// As [`GpuContext::upsample_argmax_f32`] for binary16 logits (bit patterns;
    /// `fc_upsample_argmax_f16`); [`crate::reference::upsample_argmax_f16`] is its definition.
    ///
    /// # Errors
    ///
    /// As [`GpuContext::nv12_to_planar_f32`].
    pub fn upsample_argmax_f16(
        &self,
        stream: &CudaStream,
        logits: &CudaView<'_, u16>,
        shape: &LogitShape,
        class_map: &mut CudaViewMut<'_, u8>,
    ) -> Result<(), LaunchError> {
        self.upsample_argmax(entry::UPSAMPLE_ARGMAX_F16, stream, logits, shape, class_map)
    }

    fn upsample_argmax<T>(
        &self,
        name: &'static str,
        stream: &CudaStream,
        logits: &CudaView<'_, T>,
        shape: &LogitShape,
        class_map: &mut CudaViewMut<'_, u8>,
    ) -> Result<(), LaunchError> {
        shape.check(logits.len(), class_map.len())?;
        let f = self.function(KernelSource::UpsampleArgmax, name)?;
        let cfg = grid(shape.out_width, shape.out_height);
        let mut launch = stream.launch_builder(&f);
        launch
            .arg(logits)
            .arg(&shape.classes)
            .arg(&shape.in_height)
            .arg(&shape.in_width)
            .arg(&shape.out_height)
            .arg(&shape.out_width)
            .arg(class_map);
        // SAFETY: the arguments match the kernel's parameter list in order and type, and
        // `shape.check` keeps every access inside `logits` and `class_map`.
        unsafe { launch.launch(cfg) }.map_err(launch_error(name))?;
        Ok(())
    }

    /// Class map (`width × height`) → RGBA palette colours (`fc_colorize_rgba`); `palette`
    /// is the 768 bytes of [`crate::shape::palette_bytes`];
    /// [`crate::reference::colorize_rgba`] is its definition.
    ///
    /// # Errors
    ///
    /// As [`GpuContext::nv12_to_planar_f32`].
    pub fn colorize_rgba(
        &self,
        stream: &CudaStream,
        class_map: &CudaView<'_, u8>,
        (width, height): (u32, u32),
        palette: &CudaView<'_, u8>,
        rgba: &mut CudaViewMut<'_, u8>,
    ) -> Result<(), LaunchError> {
        for (what, side) in [("class map width", width), ("class map height", height)] {
            if side == 0 || side > MAX_SIDE {
                return Err(ShapeError::Dimension {
                    what,
                    value: side as usize,
                    max: MAX_SIDE as usize,
                }
                .into());
            }
        }
        let pixels = width as usize * height as usize;
        exact_len("class map", pixels, class_map.len())?;
        exact_len("palette", PALETTE_BYTES, palette.len())?;
        exact_len("rgba", 4 * pixels, rgba.len())?;
        let name = entry::COLORIZE_RGBA;
        let f = self.function(KernelSource::Overlay, name)?;
        let mut launch = stream.launch_builder(&f);
        launch
            .arg(class_map)
            .arg(&width)
            .arg(&height)
            .arg(palette)
            .arg(rgba);
        // SAFETY: the arguments match the kernel's parameter list in order and type, and the
        // length checks above keep every access inside the buffers.
        unsafe { launch.launch(grid(width, height)) }.map_err(launch_error(name))?;
        Ok(())
    }

    /// Class map colours alpha-blended over an NV12 frame of the same size → RGBA
    /// (`fc_blend_nv12_rgba`); [`crate::reference::blend_nv12_rgba`] is its definition.
    ///
    /// # Errors
    ///
    /// As [`GpuContext::nv12_to_planar_f32`], and [`ShapeError::Alpha`].
    #[allow(clippy::too_many_arguments, reason = "one argument per kernel buffer")]
    pub fn blend_nv12_rgba(
        &self,
        stream: &CudaStream,
        frame: &CudaView<'_, u8>,
        layout: Nv12Layout,
        class_map: &CudaView<'_, u8>,
        palette: &CudaView<'_, u8>,
        alpha: f32,
        rgba: &mut CudaViewMut<'_, u8>,
    ) -> Result<(), LaunchError> {
        check_blend(frame, layout, class_map, palette, alpha)?;
        exact_len("rgba", 4 * layout.pixels(), rgba.len())?;
        let name = entry::BLEND_NV12_RGBA;
        let f = self.function(KernelSource::Overlay, name)?;
        let chroma_offset = layout.chroma_offset as u64;
        let keep = 1.0 - alpha;
        let mut launch = stream.launch_builder(&f);
        launch
            .arg(frame)
            .arg(&chroma_offset)
            .arg(&layout.pitch)
            .arg(&layout.width)
            .arg(&layout.height)
            .arg(class_map)
            .arg(palette)
            .arg(&keep)
            .arg(&alpha)
            .arg(rgba);
        // SAFETY: the arguments match the kernel's parameter list in order and type, and the
        // checks above keep every access inside the buffers.
        unsafe { launch.launch(grid(layout.width, layout.height)) }.map_err(launch_error(name))?;
        Ok(())
    }

    /// Class map colours alpha-blended over an NV12 frame and written as NV12 into `out`
    /// (laid out as `out_layout`, same size; `fc_blend_nv12_nv12`);
    /// [`crate::reference::blend_nv12_to_nv12`] is its definition.
    ///
    /// # Errors
    ///
    /// As [`GpuContext::blend_nv12_rgba`], and [`ShapeError::Layout`] for an output of another
    /// size.
    #[allow(clippy::too_many_arguments, reason = "one argument per kernel buffer")]
    pub fn blend_nv12_nv12(
        &self,
        stream: &CudaStream,
        frame: &CudaView<'_, u8>,
        layout: Nv12Layout,
        class_map: &CudaView<'_, u8>,
        palette: &CudaView<'_, u8>,
        alpha: f32,
        out: &mut CudaViewMut<'_, u8>,
        out_layout: Nv12Layout,
    ) -> Result<(), LaunchError> {
        check_blend(frame, layout, class_map, palette, alpha)?;
        out_layout.check("NV12 output", out.len())?;
        if (out_layout.width, out_layout.height) != (layout.width, layout.height) {
            return Err(ShapeError::Layout("output size differs from the frame's").into());
        }
        let name = entry::BLEND_NV12_NV12;
        let f = self.function(KernelSource::Overlay, name)?;
        let chroma_offset = layout.chroma_offset as u64;
        let out_chroma_offset = out_layout.chroma_offset as u64;
        let keep = 1.0 - alpha;
        let (cw, ch) = layout.chroma_size();
        let mut launch = stream.launch_builder(&f);
        launch
            .arg(frame)
            .arg(&chroma_offset)
            .arg(&layout.pitch)
            .arg(&layout.width)
            .arg(&layout.height)
            .arg(class_map)
            .arg(palette)
            .arg(&keep)
            .arg(&alpha)
            .arg(out)
            .arg(&out_chroma_offset)
            .arg(&out_layout.pitch);
        // SAFETY: the arguments match the kernel's parameter list in order and type, and the
        // checks above keep every access inside the buffers.
        unsafe { launch.launch(grid(cw, ch)) }.map_err(launch_error(name))?;
        Ok(())
    }
}

impl GpuContext {
    /// `f32` logits → class map and RGBA overlay in one pass (`fc_argmax_blend_rgba_f32`): the
    /// logits upsampled to the frame's size (`shape.out_*` = `layout`'s size), their argmax
    /// written to `class_map` and its colours blended over `frame` into `rgba`, as
    /// [`GpuContext::upsample_argmax_f32`] followed by [`GpuContext::blend_nv12_rgba`];
    /// [`crate::reference::argmax_blend_rgba`] is its definition.
    ///
    /// # Errors
    ///
    /// As [`GpuContext::upsample_argmax_f32`] and [`GpuContext::blend_nv12_rgba`], and
    /// [`ShapeError::Layout`] for a class map of another size than the frame.
    #[allow(clippy::too_many_arguments, reason = "one argument per kernel buffer")]
    pub fn argmax_blend_rgba_f32(
        &self,
        stream: &CudaStream,
        logits: &CudaView<'_, f32>,
        shape: &LogitShape,
        frame: &CudaView<'_, u8>,
        layout: Nv12Layout,
        palette: &CudaView<'_, u8>,
        alpha: f32,
        class_map: &mut CudaViewMut<'_, u8>,
        rgba: &mut CudaViewMut<'_, u8>,
    ) -> Result<(), LaunchError> {
        let fused = Fused {
            logits,
            shape,
            frame,
            layout,
            palette,
            alpha,
        };
        self.argmax_blend(
            entry::ARGMAX_BLEND_RGBA_F32,
            stream,
            &fused,
            class_map,
            rgba,
            None,
        )
    }

    /// As [`GpuContext::argmax_blend_rgba_f32`] for binary16 logits (bit patterns;
    /// `fc_argmax_blend_rgba_f16`); [`crate::reference::argmax_blend_rgba_f16`] is its
    /// definition.
    ///
    /// # Errors
    ///
    /// As [`GpuContext::argmax_blend_rgba_f32`].
    #[allow(clippy::too_many_arguments, reason = "one argument per kernel buffer")]
    pub fn argmax_blend_rgba_f16(
        &self,
        stream: &CudaStream,
        logits: &CudaView<'_, u16>,
        shape: &LogitShape,
        frame: &CudaView<'_, u8>,
        layout: Nv12Layout,
        palette: &CudaView<'_, u8>,
        alpha: f32,
        class_map: &mut CudaViewMut<'_, u8>,
        rgba: &mut CudaViewMut<'_, u8>,
    ) -> Result<(), LaunchError> {
        let fused = Fused {
            logits,
            shape,
            frame,
            layout,
            palette,
            alpha,
        };
        self.argmax_blend(
            entry::ARGMAX_BLEND_RGBA_F16,
            stream,
            &fused,
            class_map,
            rgba,
            None,
        )
    }

    /// `f32` logits → class map and NV12 overlay in one pass (`fc_argmax_blend_nv12_f32`), as
    /// [`GpuContext::upsample_argmax_f32`] followed by [`GpuContext::blend_nv12_nv12`] (`out`
    /// laid out as `out_layout`, the frame's size); [`crate::reference::argmax_blend_nv12`] is
    /// its definition.
    ///
    /// # Errors
    ///
    /// As [`GpuContext::argmax_blend_rgba_f32`], and [`ShapeError::Layout`] for an output of
    /// another size.
    #[allow(clippy::too_many_arguments, reason = "one argument per kernel buffer")]
    pub fn argmax_blend_nv12_f32(
        &self,
        stream: &CudaStream,
        logits: &CudaView<'_, f32>,
        shape: &LogitShape,
        frame: &CudaView<'_, u8>,
        layout: Nv12Layout,
        palette: &CudaView<'_, u8>,
        alpha: f32,
        class_map: &mut CudaViewMut<'_, u8>,
        out: &mut CudaViewMut<'_, u8>,
        out_layout: Nv12Layout,
    ) -> Result<(), LaunchError> {
        let fused = Fused {
            logits,
            shape,
            frame,
            layout,
            palette,
            alpha,
        };
        let name = entry::ARGMAX_BLEND_NV12_F32;
        self.argmax_blend(name, stream, &fused, class_map, out, Some(out_layout))
    }

    /// As [`GpuContext::argmax_blend_nv12_f32`] for binary16 logits (bit patterns;
    /// `fc_argmax_blend_nv12_f16`); [`crate::reference::argmax_blend_nv12_f16`] is its
    /// definition.
    ///
    /// # Errors
    ///
    /// As [`GpuContext::argmax_blend_nv12_f32`].
    #[allow(clippy::too_many_arguments, reason = "one argument per kernel buffer")]
    pub fn argmax_blend_nv12_f16(
        &self,
        stream: &CudaStream,
        logits: &CudaView<'_, u16>,
        shape: &LogitShape,
        frame: &CudaView<'_, u8>,
        layout: Nv12Layout,
        palette: &CudaView<'_, u8>,
        alpha: f32,
        class_map: &mut CudaViewMut<'_, u8>,
        out: &mut CudaViewMut<'_, u8>,
        out_layout: Nv12Layout,
    ) -> Result<(), LaunchError> {
        let fused = Fused {
            logits,
            shape,
            frame,
            layout,
            palette,
            alpha,
        };
        let name = entry::ARGMAX_BLEND_NV12_F16;
        self.argmax_blend(name, stream, &fused, class_map, out, Some(out_layout))
    }

    /// The fused kernels: RGBA output when `out_nv12` is `None`, else NV12 laid out so.
    fn argmax_blend<T>(
        &self,
        name: &'static str,
        stream: &CudaStream,
        fused: &Fused<'_, '_, T>,
        class_map: &mut CudaViewMut<'_, u8>,
        out: &mut CudaViewMut<'_, u8>,
        out_nv12: Option<Nv12Layout>,
    ) -> Result<(), LaunchError> {
        let Fused {
            logits,
            shape,
            frame,
            layout,
            palette,
            alpha,
        } = *fused;
        check_fused(shape, logits.len(), layout, class_map.len(), alpha)?;
        layout.check("NV12 frame", frame.len())?;
        exact_len("palette", PALETTE_BYTES, palette.len())?;
        match out_nv12 {
            None => exact_len("rgba", 4 * layout.pixels(), out.len())?,
            Some(out_layout) => {
                out_layout.check("NV12 output", out.len())?;
                if (out_layout.width, out_layout.height) != (layout.width, layout.height) {
                    return Err(ShapeError::Layout("output size differs from the frame's").into());
                }
            }
        }
        let f = self.function(KernelSource::Fused, name)?;
        let chroma_offset = layout.chroma_offset as u64;
        let keep = 1.0 - alpha;
        let mut launch = stream.launch_builder(&f);
        launch
            .arg(logits)
            .arg(&shape.classes)
            .arg(&shape.in_height)
            .arg(&shape.in_width)
            .arg(frame)
            .arg(&chroma_offset)
            .arg(&layout.pitch)
            .arg(&layout.width)
            .arg(&layout.height)
            .arg(palette)
            .arg(&keep)
            .arg(&alpha)
            .arg(class_map)
            .arg(out);
        let (out_chroma_offset, out_pitch);
        let cfg = if let Some(out_layout) = out_nv12 {
            out_chroma_offset = out_layout.chroma_offset as u64;
            out_pitch = out_layout.pitch;
            launch.arg(&out_chroma_offset).arg(&out_pitch);
            let (cw, ch) = layout.chroma_size();
            grid(cw, ch)
        } else {
            grid(layout.width, layout.height)
        };
        // SAFETY: the arguments match the kernel's parameter list in order and type (the NV12
        // kernels take the output's chroma offset and pitch last), and the checks above keep
        // every access inside the buffers.
        unsafe { launch.launch(cfg) }.map_err(launch_error(name))?;
        Ok(())
    }
}

/// The inputs every fused kernel takes.
struct Fused<'a, 'b, T> {
    logits: &'a CudaView<'b, T>,
    shape: &'a LogitShape,
    frame: &'a CudaView<'b, u8>,
    layout: Nv12Layout,
    palette: &'a CudaView<'b, u8>,
    alpha: f32,
}

fn check_blend(
    frame: &CudaView<'_, u8>,
    layout: Nv12Layout,
    class_map: &CudaView<'_, u8>,
    palette: &CudaView<'_, u8>,
    alpha: f32,
) -> Result<(), ShapeError> {
    check_alpha(alpha)?;
    layout.check("NV12 frame", frame.len())?;
    exact_len("class map", layout.pixels(), class_map.len())?;
    exact_len("palette", PALETTE_BYTES, palette.len())
}

/// One thread per element of a `width × height` grid, in 16 × 16 blocks.
const fn grid(width: u32, height: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (width.div_ceil(BLOCK), height.div_ceil(BLOCK), 1),
        block_dim: (BLOCK, BLOCK, 1),
        shared_mem_bytes: 0,
    }
}

fn launch_error(kernel: &'static str) -> impl Fn(cudarc::driver::DriverError) -> LaunchError {
    move |e| LaunchError::Driver {
        kernel,
        status: format!("{:?}", e.0),
    }
}
