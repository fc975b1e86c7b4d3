//! Which GPU backends this machine can use, and why not: probed once at start, reported as
//! data so the worker can print it and fall back to the CPU path.

use std::fmt;

use crate::error::CudaError;
use crate::nvrtc::Nvrtc;

/// The oldest compute capability the kernels' PTX can target: CUDA 13 compiles for Turing
/// (7.5) and newer only.
pub const MIN_COMPUTE_CAPABILITY: (i32, i32) = (7, 5);

/// The NVDEC library the Video Codec SDK's decoder needs, installed with the driver.
pub const NVDEC_LIBRARY: &str = "libnvcuvid.so.1";

/// One probe's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// Usable; what was found (a version, a library name).
    Available(String),
    /// Not usable; why.
    Unavailable(String),
}

impl Probe {
    /// Whether it is usable.
    #[must_use]
    pub const fn is_available(&self) -> bool {
        matches!(self, Self::Available(_))
    }
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Available(what) => write!(f, "yes ({what})"),
            Self::Unavailable(why) => write!(f, "no: {why}"),
        }
    }
}

/// A GPU the driver sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuDevice {
    /// Its index.
    pub ordinal: usize,
    /// Its name.
    pub name: String,
    /// Its compute capability (major, minor).
    pub compute_capability: (i32, i32),
}

impl GpuDevice {
    /// Whether the kernels can run on it.
    #[must_use]
    pub fn supported(&self) -> bool {
        self.compute_capability >= MIN_COMPUTE_CAPABILITY
    }
}

/// What the GPU path needs, probed: the driver and its GPUs, NVRTC (for the kernels), NVDEC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// The CUDA driver (`libcuda.so.1`) and `cuInit`.
    pub driver: Probe,
    /// The GPUs the driver sees (empty without a driver).
    pub devices: Vec<GpuDevice>,
    /// NVRTC, which compiles the kernels.
    pub nvrtc: Probe,
    /// The NVDEC library.
    pub nvdec: Probe,
}

impl Capabilities {
    /// Probes everything; never fails (each failure is a [`Probe::Unavailable`]).
    #[must_use]
    pub fn probe() -> Self {
        let (driver, devices) = match probe_devices() {
            Ok(devices) => (
                Probe::Available(format!("{} GPU(s)", devices.len())),
                devices,
            ),
            Err(e) => (Probe::Unavailable(e.to_string()), Vec::new()),
        };
        let nvrtc = match Nvrtc::load() {
            Ok(nvrtc) => Probe::Available(format!("NVRTC {}", nvrtc.version())),
            Err(e) => Probe::Unavailable(e.to_string()),
        };
        // SAFETY: loading the NVDEC library runs its initializers, which have no
        // preconditions; it is unloaded again at once.
        let nvdec = match unsafe { libloading::Library::new(NVDEC_LIBRARY) } {
            Ok(_) => Probe::Available(NVDEC_LIBRARY.to_owned()),
            Err(e) => Probe::Unavailable(format!(
                "{NVDEC_LIBRARY} cannot be loaded ({e}); it comes with the NVIDIA driver"
            )),
        };
        Self {
            driver,
            devices,
            nvrtc,
            nvdec,
        }
    }

    /// Why the CUDA kernels cannot run on GPU `ordinal`, or `None` when they can.
    #[must_use]
    pub fn kernels_unavailable(&self, ordinal: usize) -> Option<String> {
        if let Probe::Unavailable(why) = &self.driver {
            return Some(why.clone());
        }
        let Some(device) = self.devices.get(ordinal) else {
            return Some(
                CudaError::NoDevice {
                    ordinal,
                    count: self.devices.len(),
                }
                .to_string(),
            );
        };
        if !device.supported() {
            return Some(
                CudaError::ComputeCapability {
                    ordinal,
                    name: device.name.clone(),
                    found: device.compute_capability,
                    needed: MIN_COMPUTE_CAPABILITY,
                }
                .to_string(),
            );
        }
        match &self.nvrtc {
            // nvcc's PTX from the build serves where it covers the GPU.
            Probe::Unavailable(_) if crate::prebuilt::covers(device.compute_capability) => None,
            Probe::Unavailable(why) => Some(why.clone()),
            Probe::Available(_) => None,
        }
    }

    /// Why NVDEC decoding cannot run on GPU `ordinal`, or `None` when it can.
    #[must_use]
    pub fn nvdec_unavailable(&self, ordinal: usize) -> Option<String> {
        if let Probe::Unavailable(why) = &self.driver {
            return Some(why.clone());
        }
        if ordinal >= self.devices.len() {
            return Some(
                CudaError::NoDevice {
                    ordinal,
                    count: self.devices.len(),
                }
                .to_string(),
            );
        }
        match &self.nvdec {
            Probe::Unavailable(why) => Some(why.clone()),
            Probe::Available(_) => None,
        }
    }
}

impl fmt::Display for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "CUDA driver: {}", self.driver)?;
        for d in &self.devices {
            let (major, minor) = d.compute_capability;
            let note = if d.supported() {
                ""
            } else {
                " (too old for the kernels)"
            };
            writeln!(
                f,
                "  GPU {}: {} (compute {major}.{minor}){note}",
                d.ordinal, d.name
            )?;
        }
        writeln!(f, "NVRTC (CUDA kernels): {}", self.nvrtc)?;
        writeln!(f, "prebuilt PTX (CUDA kernels): {}", prebuilt_summary())?;
        write!(f, "NVDEC: {}", self.nvdec)
    }
}

/// "compute_75, compute_90 (nvcc …)" or "none (no nvcc at build time)".
fn prebuilt_summary() -> String {
    let archs = crate::prebuilt::architectures();
    match crate::prebuilt::NVCC_VERSION {
        Some(nvcc) if !archs.is_empty() => format!("{} ({nvcc})", archs.join(", ")),
        _ => "none (no nvcc at build time)".to_owned(),
    }
}

/// The driver's GPUs, or why there are none.
pub(crate) fn probe_devices() -> Result<Vec<GpuDevice>, CudaError> {
    use cudarc::driver::{result, sys::CUdevice_attribute};

    init_driver()?;
    let count = result::device::get_count().map_err(driver_error("cuDeviceGetCount"))?;
    let mut devices = Vec::new();
    for index in 0..count {
        let dev = result::device::get(index).map_err(driver_error("cuDeviceGet"))?;
        let name = result::device::get_name(dev).map_err(driver_error("cuDeviceGetName"))?;
        let attribute = |attr| {
            // SAFETY: `dev` is a device handle the driver just returned.
            unsafe { result::device::get_attribute(dev, attr) }
                .map_err(driver_error("cuDeviceGetAttribute"))
        };
        let major = attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?;
        let minor = attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?;
        devices.push(GpuDevice {
            ordinal: usize::try_from(index).unwrap_or_default(),
            name,
            compute_capability: (major, minor),
        });
    }
    Ok(devices)
}

/// Checks that the driver library is there (cudarc's loader panics when it is not), then
/// `cuInit`.
pub(crate) fn init_driver() -> Result<(), CudaError> {
    // SAFETY: probing loads candidate libraries by name and unloads them; no other effect.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(CudaError::DriverNotFound {
            tried: cudarc::get_lib_name_candidates("cuda"),
        });
    }
    cudarc::driver::result::init().map_err(driver_error("cuInit"))
}

/// Maps a driver error to [`CudaError::Driver`] for `call`.
pub(crate) fn driver_error(
    call: &'static str,
) -> impl Fn(cudarc::driver::DriverError) -> CudaError {
    move |e| CudaError::Driver {
        call,
        status: format!("{:?}", e.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hopper_without_nvrtc() -> Capabilities {
        Capabilities {
            driver: Probe::Available("1 GPU(s)".into()),
            devices: vec![GpuDevice {
                ordinal: 0,
                name: "NVIDIA H100 80GB HBM3".into(),
                compute_capability: (9, 0),
            }],
            nvrtc: Probe::Unavailable("NVRTC is not available: libnvrtc.so.13".into()),
            nvdec: Probe::Available(NVDEC_LIBRARY.into()),
        }
    }

    #[test]
    fn without_nvrtc_the_kernels_need_prebuilt_ptx_for_the_gpu() {
        let mut caps = hopper_without_nvrtc();
        let why = caps.kernels_unavailable(0);
        if crate::prebuilt::covers((9, 0)) {
            assert_eq!(why, None, "{caps}");
        } else {
            assert_eq!(
                why.as_deref(),
                Some("NVRTC is not available: libnvrtc.so.13")
            );
        }
        // A GPU older than every prebuilt architecture needs NVRTC.
        caps.devices[0].compute_capability = (7, 5);
        let oldest = crate::prebuilt::PREBUILT
            .iter()
            .map(|p| p.compute_capability)
            .min();
        if oldest.is_none_or(|oldest| oldest > (7, 5)) {
            assert!(caps.kernels_unavailable(0).is_some(), "{caps}");
        }
        // Too old for the kernels at all, whatever is built.
        caps.devices[0].compute_capability = (6, 1);
        let why = caps.kernels_unavailable(0).unwrap();
        assert!(why.contains("compute capability"), "{why}");
        assert!(caps.to_string().contains("prebuilt PTX (CUDA kernels): "));
    }
}
