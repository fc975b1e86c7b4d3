//! What is specific to NVIDIA Jetson: finding the hardware H.264 encoder, the NVIDIA controls
//! that matter for latency, and the fall back to openh264 on modules without an encoder.
//!
//! - **Where the encoder is.** JetPack 5 (L4T r35) exposes NVENC's V4L2 interface as
//!   `/dev/nvhost-msenc`, JetPack 6 (L4T r36) as `/dev/v4l2-nvenc`. The L4T release comes from
//!   `/etc/nv_tegra_release` ("`# R36 (release), REVISION: 4.0, …`"), the module from the device
//!   tree (`/proc/device-tree/model`, `…/compatible`).
//! - **No encoder.** The Orin Nano has no NVENC: [`discover`] says so, and [`open_encoder`]
//!   falls back to openh264 with a log line that says why.
//! - **Controls.** [`JetsonTuning::controls`] lists NVIDIA's encoder controls (from the L4T
//!   Multimedia API's `v4l2_nv_extensions.h`) as [`NamedControl`]s: looked up by name in the
//!   driver's own list, by the header's id failing that, and skipped with a warning when
//!   absent.
//! - **Input.** The encoder takes NV12 with one buffer per plane (`NV12M`), asked for first.
//!
//! Everything that reads the system goes through [`SystemView`], so discovery is tested against
//! fake JetPack 5, JetPack 6 and Orin Nano layouts. None of this has run on a physical Jetson:
//! the control walk and named controls are tested against the kernel's `vicodec` driver in a
//! qemu guest (`just v4l2-vm`), where the NVIDIA controls are absent and reported as such.
//!
//! - **Access.** JetPack 5's `/dev/nvhost-msenc` answers only through NVIDIA's libv4l2 plugin
//!   (`v4l2_open`/`v4l2_ioctl`/`v4l2_mmap`), so [`discover`] marks it
//!   [`AccessKind::Libv4l2`] and [`open_encoder`] opens it through `libv4l2.so.0`, loaded at run
//!   time; where that library does not load, it falls back to openh264 and says so. JetPack 6's
//!   `/dev/v4l2-nvenc` gets raw ioctls. The libv4l2 path is tested with Debian's libv4l2 in front
//!   of `vicodec` in the qemu guest, not against NVIDIA's plugin.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::v4l2_m2m::{ControlValue, M2mOptions, NamedControl, V4l2M2mEncoder};
use super::{EncodeError, EncoderSettings, VideoEncoder};
use crate::picture::PixelFormat;
use crate::v4l2::{Access, AccessKind, FourCc, Libv4l2, Libv4l2Error};

/// The encoder node on JetPack 5 (L4T r35).
pub const JETPACK5_ENCODER: &str = "/dev/nvhost-msenc";
/// The encoder node on JetPack 6 (L4T r36).
pub const JETPACK6_ENCODER: &str = "/dev/v4l2-nvenc";
/// Where L4T writes its release.
pub const L4T_RELEASE_FILE: &str = "/etc/nv_tegra_release";
/// The board name in the device tree.
pub const MODEL_FILE: &str = "/proc/device-tree/model";
/// The device tree's compatible strings (NUL-separated).
pub const COMPATIBLE_FILE: &str = "/proc/device-tree/compatible";

/// `V4L2_CID_MPEG_BASE`, where `v4l2_nv_extensions.h` numbers NVIDIA's controls from.
const NV_BASE: u32 = 0x0099_0900;

/// The file system and device nodes discovery looks at; [`RealSystem`] is the machine's.
pub trait SystemView {
    /// Whether `path` exists.
    fn exists(&self, path: &Path) -> bool;
    /// The contents of a small text file, `None` if it cannot be read.
    fn read(&self, path: &Path) -> Option<String>;
    /// `libv4l2.so.0`, for nodes reached through it.
    fn libv4l2(&self) -> Result<Arc<Libv4l2>, Libv4l2Error> {
        Libv4l2::load().map(Arc::new)
    }
}

/// This machine.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealSystem;

impl SystemView for RealSystem {
    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn read(&self, path: &Path) -> Option<String> {
        let bytes = std::fs::read(path).ok()?;
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// The JetPack generation, from the L4T major release.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JetPack {
    /// JetPack 5.x: L4T r35, Ubuntu 20.04.
    V5,
    /// JetPack 6.x: L4T r36, Ubuntu 22.04.
    V6,
}

/// An L4T release as `/etc/nv_tegra_release` states it ("R36", "REVISION: 4.0").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct L4tRelease {
    /// 35, 36, …
    pub major: u32,
    /// The revision's first number.
    pub minor: u32,
    /// The revision's second number.
    pub patch: u32,
}

impl L4tRelease {
    /// Reads the first line of `/etc/nv_tegra_release`: `# R35 (release), REVISION: 4.1, …`.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        let line = text.lines().next()?;
        let rest = line.trim_start_matches('#').trim_start();
        let major = rest.strip_prefix('R')?;
        let digits = major
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(major.len());
        let major = major[..digits].parse().ok()?;
        let revision = line.split("REVISION:").nth(1)?.trim_start();
        let revision = revision.split([',', ' ']).next()?;
        let mut numbers = revision.split('.').map(str::parse::<u32>);
        let minor = numbers.next()?.ok()?;
        let patch = numbers.next().and_then(Result::ok).unwrap_or(0);
        Some(Self {
            major,
            minor,
            patch,
        })
    }

    /// The JetPack generation of this release, if it is one the SDK knows.
    #[must_use]
    pub const fn jetpack(self) -> Option<JetPack> {
        match self.major {
            35 => Some(JetPack::V5),
            36 => Some(JetPack::V6),
            _ => None,
        }
    }
}

impl core::fmt::Display for L4tRelease {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "L4T r{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// What [`discover`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Discovery {
    /// A hardware encoder node.
    Encoder {
        /// The node to open.
        path: PathBuf,
        /// How to open it: libv4l2 for JetPack 5's node, raw ioctls for JetPack 6's.
        access: AccessKind,
        /// The L4T release, when `/etc/nv_tegra_release` was readable.
        release: Option<L4tRelease>,
        /// The board, from the device tree.
        model: Option<String>,
    },
    /// A Jetson module without a hardware encoder (Orin Nano).
    NoHardwareEncoder {
        /// The board.
        model: String,
    },
    /// A Jetson (L4T release or Tegra device tree) on which neither node exists.
    EncoderNodeMissing {
        /// The L4T release, if known.
        release: Option<L4tRelease>,
        /// The board, if known.
        model: Option<String>,
    },
    /// Not a Jetson.
    NotJetson,
}

impl Discovery {
    /// One line for a log: what was found and what will be used.
    #[must_use]
    pub fn describe(&self) -> String {
        let on = |model: &Option<String>, release: &Option<L4tRelease>| {
            let model = model.as_deref().unwrap_or("unknown Jetson");
            match release {
                Some(release) => format!("{model}, {release}"),
                None => model.to_owned(),
            }
        };
        match self {
            Self::Encoder {
                path,
                access,
                release,
                model,
            } => format!(
                "Jetson hardware encoder {}{} ({})",
                path.display(),
                match access {
                    AccessKind::Kernel => "",
                    AccessKind::Libv4l2 => " through libv4l2",
                },
                on(model, release)
            ),
            Self::NoHardwareEncoder { model } => {
                format!("{model} has no hardware video encoder (NVENC)")
            }
            Self::EncoderNodeMissing { release, model } => format!(
                "no Jetson encoder node ({JETPACK5_ENCODER} or {JETPACK6_ENCODER}) on {}",
                on(model, release)
            ),
            Self::NotJetson => "not a Jetson (no L4T release, no Tegra device tree)".into(),
        }
    }
}

/// The device tree model without its trailing NUL.
fn model(system: &dyn SystemView) -> Option<String> {
    let text = system.read(Path::new(MODEL_FILE))?;
    let model = text.trim_end_matches('\0').trim();
    (!model.is_empty()).then(|| model.to_owned())
}

/// Whether the board is an Orin Nano, which has no NVENC: by its model name, or by its module
/// in the compatible list (P3767 SKUs 0003, 0004 and 0005 are the Orin Nano modules; 0000 and
/// 0001 are Orin NX, which has the encoder).
fn is_orin_nano(model: Option<&str>, compatible: &str) -> bool {
    let named = model.is_some_and(|m| m.to_ascii_lowercase().contains("orin nano"));
    let module = compatible.split('\0').any(|c| {
        matches!(
            c,
            "nvidia,p3767-0003" | "nvidia,p3767-0004" | "nvidia,p3767-0005"
        )
    });
    named || module
}

/// Finds the Jetson hardware encoder as `system` shows it.
pub fn discover(system: &dyn SystemView) -> Discovery {
    let release = system
        .read(Path::new(L4T_RELEASE_FILE))
        .and_then(|text| L4tRelease::parse(&text));
    let model = model(system);
    let compatible = system.read(Path::new(COMPATIBLE_FILE)).unwrap_or_default();
    let tegra = compatible
        .split('\0')
        .any(|c| c.starts_with("nvidia,tegra"));
    if release.is_none() && !tegra {
        return Discovery::NotJetson;
    }
    if is_orin_nano(model.as_deref(), &compatible) {
        return Discovery::NoHardwareEncoder {
            model: model.unwrap_or_else(|| "Jetson Orin Nano".into()),
        };
    }
    // The release's own node first; the other one too, for a mixed or unknown install.
    let order = match release.and_then(L4tRelease::jetpack) {
        Some(JetPack::V5) => [JETPACK5_ENCODER, JETPACK6_ENCODER],
        _ => [JETPACK6_ENCODER, JETPACK5_ENCODER],
    };
    match order.iter().map(Path::new).find(|p| system.exists(p)) {
        Some(path) => Discovery::Encoder {
            path: path.to_owned(),
            access: access_for(path),
            release,
            model,
        },
        None => Discovery::EncoderNodeMissing { release, model },
    }
}

/// How an encoder node is opened: JetPack 5's `/dev/nvhost-msenc` only answers through NVIDIA's
/// libv4l2 plugin; JetPack 6's `/dev/v4l2-nvenc` is an ordinary V4L2 node.
fn access_for(path: &Path) -> AccessKind {
    if path == Path::new(JETPACK5_ENCODER) {
        AccessKind::Libv4l2
    } else {
        AccessKind::Kernel
    }
}

/// NVIDIA's low-latency encoder settings, beyond the standard controls the M2M encoder sets
/// anyway (constrained baseline, no B-frames, one reference, GOP and IDR period, CBR).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JetsonTuning {
    /// Run the encoder at its highest clock (`V4L2_CID_MPEG_VIDEO_MAX_PERFORMANCE`): lower and
    /// steadier encode time for more power.
    pub max_performance: bool,
    /// Slices of this many macroblock rows (`V4L2_CID_MPEG_VIDEOENC_SLICE_LENGTH_PARAM`, in
    /// macroblocks), so the packetizer can send the first slice before the frame is done; 0
    /// leaves one slice per frame.
    pub slice_mb_rows: u32,
    /// Refresh the picture with intra-coded slices over this many frames
    /// (`V4L2_CID_MPEG_VIDEOENC_SLICE_INTRAREFRESH_PARAM`) instead of large periodic IDRs; 0
    /// leaves it off.
    pub intra_refresh_frames: u32,
}

impl Default for JetsonTuning {
    /// Max performance on, one slice per frame, no intra refresh.
    fn default() -> Self {
        Self {
            max_performance: true,
            slice_mb_rows: 0,
            intra_refresh_frames: 0,
        }
    }
}

impl JetsonTuning {
    /// The NVIDIA controls for `settings`, each with the names a driver may report and the id
    /// from `v4l2_nv_extensions.h`. The names are NVIDIA's control names as we expect the
    /// driver to report them; they have not been read from a physical Jetson, which is why the
    /// header's id is the second key.
    #[must_use]
    pub fn controls(&self, settings: &EncoderSettings) -> Vec<NamedControl> {
        let mut controls = vec![
            NamedControl {
                label: "NVIDIA insert SPS/PPS at IDR",
                names: &["Insert SPS PPS at IDR", "Insert SPS PPS At IDR"],
                id: Some(NV_BASE + 535),
                value: ControlValue::Int(1),
            },
            NamedControl {
                label: "NVIDIA B-frames",
                names: &["Num B Frames", "Number of B Frames"],
                id: Some(NV_BASE + 534),
                value: ControlValue::Int(0),
            },
            NamedControl {
                label: "NVIDIA reference frames",
                names: &["Num Reference Frames", "Number of Reference Frames"],
                id: Some(NV_BASE + 532),
                value: ControlValue::Int(1),
            },
        ];
        if settings.keyframe_interval > 0 {
            controls.push(NamedControl {
                label: "NVIDIA IDR interval",
                names: &["IDR Interval", "H264 IDR Interval", "Video IDR Interval"],
                id: Some(NV_BASE + 514),
                value: ControlValue::Int(
                    i32::try_from(settings.keyframe_interval).unwrap_or(i32::MAX),
                ),
            });
        }
        if self.max_performance {
            controls.push(NamedControl {
                label: "NVIDIA max performance",
                names: &["Enable Max Performance", "Max Performance"],
                id: Some(NV_BASE + 554),
                value: ControlValue::Int(1),
            });
        }
        if self.slice_mb_rows > 0 {
            let mbs = settings.width.div_ceil(16) * self.slice_mb_rows;
            controls.push(NamedControl {
                label: "NVIDIA slice length",
                names: &["Slice Length Param", "Slice Length"],
                id: Some(NV_BASE + 529),
                // struct v4l2_enc_slice_length_param { enum type (1 = macroblocks); __u32 length; }
                value: ControlValue::Words(vec![1, mbs]),
            });
        }
        if self.intra_refresh_frames > 0 {
            controls.push(NamedControl {
                label: "NVIDIA slice intra refresh",
                names: &["Slice Intrarefresh Param", "Slice Intra Refresh Interval"],
                id: Some(NV_BASE + 533),
                // struct v4l2_enc_slice_intrarefresh_param { __u32 interval; }
                value: ControlValue::Words(vec![self.intra_refresh_frames]),
            });
        }
        controls
    }

    /// The options to open Jetson's encoder with: these controls, `NV12M` input first, and a
    /// camera frame's one DMABUF (an NvBufSurface) passed in both planes, as NVIDIA's encoder
    /// reads it.
    #[must_use]
    pub fn options(&self, settings: &EncoderSettings) -> M2mOptions {
        M2mOptions {
            controls: self.controls(settings),
            prefer_multi_buffer_input: true,
            access: Access::Kernel,
            planes_from_one_dmabuf: true,
        }
    }
}

/// The encoder [`open_encoder`] chose and why.
pub struct Selected {
    /// The encoder.
    pub encoder: Box<dyn VideoEncoder>,
    /// True for the hardware encoder, false for the openh264 fall back.
    pub hardware: bool,
    /// A line for the log: which encoder, and for a fall back why, with any NVIDIA control the
    /// driver did not take.
    pub log_line: String,
}

impl core::fmt::Debug for Selected {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Selected")
            .field("hardware", &self.hardware)
            .field("log_line", &self.log_line)
            .finish_non_exhaustive()
    }
}

/// Opens the Jetson hardware encoder for `raw` pictures (H.264 out, [`JetsonTuning`]
/// applied; through libv4l2 on JetPack 5), or, when there is none (Orin Nano, not a Jetson, the
/// node missing or failing to open, libv4l2 missing on JetPack 5) or the pictures are not NV12,
/// openh264 with a log line that says why. Without the `openh264` feature the fall back is an
/// error.
pub fn open_encoder(
    system: &dyn SystemView,
    settings: EncoderSettings,
    raw: PixelFormat,
    tuning: &JetsonTuning,
) -> Result<Selected, EncodeError> {
    let discovery = discover(system);
    let why = match &discovery {
        Discovery::Encoder { .. } if raw != PixelFormat::Nv12 => format!(
            "{} takes NV12 pictures, this source gives {raw}",
            discovery.describe()
        ),
        Discovery::Encoder { path, access, .. } => {
            let mut options = tuning.options(&settings);
            options.access = match access {
                AccessKind::Kernel => Access::Kernel,
                AccessKind::Libv4l2 => match system.libv4l2() {
                    Ok(lib) => Access::Libv4l2(lib),
                    Err(e) => {
                        let why = format!("{} is not usable: {e}", discovery.describe());
                        return fall_back(settings, why);
                    }
                },
            };
            match V4l2M2mEncoder::with_options(path, settings, raw, FourCc::H264, &options) {
                Ok(encoder) => {
                    let mut log_line = format!("encoder: {}", discovery.describe());
                    for skipped in encoder.skipped_controls() {
                        log_line.push_str(&format!(
                            "; warning: {} not set: {}",
                            skipped.name, skipped.reason
                        ));
                    }
                    return Ok(Selected {
                        encoder: Box::new(encoder),
                        hardware: true,
                        log_line,
                    });
                }
                Err(e) => format!("{} failed to open: {e}", discovery.describe()),
            }
        }
        other => other.describe(),
    };
    fall_back(settings, why)
}

#[cfg(feature = "openh264")]
fn fall_back(settings: EncoderSettings, why: String) -> Result<Selected, EncodeError> {
    let encoder = super::openh264::OpenH264Encoder::new(settings)?;
    Ok(Selected {
        encoder: Box::new(encoder),
        hardware: false,
        log_line: format!("encoder: {why}; falling back to openh264 (software, on the CPU)"),
    })
}

#[cfg(not(feature = "openh264"))]
fn fall_back(_settings: EncoderSettings, why: String) -> Result<Selected, EncodeError> {
    Err(EncodeError::NotAvailable {
        encoder: "Jetson encoder",
        reason: format!("{why}; and openh264 is not built in (the `openh264` feature is off)"),
    })
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::collections::HashMap;

    use super::*;

    /// A device table: files with contents, nodes that exist, and which libv4l2 to load (by
    /// default one that does not exist), counting the loads.
    struct FakeSystem {
        files: HashMap<PathBuf, String>,
        libv4l2: &'static str,
        libv4l2_loads: Cell<u32>,
    }

    impl Default for FakeSystem {
        fn default() -> Self {
            Self {
                files: HashMap::new(),
                libv4l2: "libflowcloud-no-such-libv4l2.so.0",
                libv4l2_loads: Cell::new(0),
            }
        }
    }

    impl FakeSystem {
        fn with(mut self, path: &str, contents: &str) -> Self {
            self.files.insert(PathBuf::from(path), contents.into());
            self
        }

        #[cfg(feature = "openh264")]
        fn with_libv4l2(mut self, name: &'static str) -> Self {
            self.libv4l2 = name;
            self
        }
    }

    impl SystemView for FakeSystem {
        fn exists(&self, path: &Path) -> bool {
            self.files.contains_key(path)
        }

        fn read(&self, path: &Path) -> Option<String> {
            self.files.get(path).cloned()
        }

        fn libv4l2(&self) -> Result<Arc<Libv4l2>, Libv4l2Error> {
            self.libv4l2_loads.set(self.libv4l2_loads.get() + 1);
            Libv4l2::load_from(self.libv4l2).map(Arc::new)
        }
    }

    const R35: &str = "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64, DATE: Tue Aug  1 19:57:35 UTC 2023\n";
    const R36: &str = "# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64, DATE: Fri Sep 13 04:36:44 UTC 2024\n";

    fn jetpack5_agx_orin() -> FakeSystem {
        FakeSystem::default()
            .with(L4T_RELEASE_FILE, R35)
            .with(MODEL_FILE, "Jetson AGX Orin Developer Kit\0")
            .with(
                COMPATIBLE_FILE,
                "nvidia,p3737-0000+p3701-0000\0nvidia,p3701-0000\0nvidia,tegra234\0",
            )
            .with(JETPACK5_ENCODER, "")
    }

    fn jetpack6_orin_nx() -> FakeSystem {
        FakeSystem::default()
            .with(L4T_RELEASE_FILE, R36)
            .with(
                MODEL_FILE,
                "NVIDIA Jetson Orin NX Engineering Reference Developer Kit\0",
            )
            .with(
                COMPATIBLE_FILE,
                "nvidia,p3768-0000+p3767-0000\0nvidia,p3767-0000\0nvidia,tegra234\0",
            )
            .with(JETPACK6_ENCODER, "")
    }

    /// [`open_encoder`] as every test here calls it: 320x240 at 30 fps, default tuning.
    fn open_320x240(system: &dyn SystemView, raw: PixelFormat) -> Result<Selected, EncodeError> {
        let settings = EncoderSettings::new(320, 240, 30);
        open_encoder(system, settings, raw, &JetsonTuning::default())
    }

    #[test]
    fn l4t_releases_are_read_from_nv_tegra_release() {
        let r35 = L4tRelease::parse(R35).unwrap();
        assert_eq!((r35.major, r35.minor, r35.patch), (35, 4, 1));
        assert_eq!(r35.jetpack(), Some(JetPack::V5));
        assert_eq!(r35.to_string(), "L4T r35.4.1");
        assert_eq!(L4tRelease::parse(R36).unwrap().jetpack(), Some(JetPack::V6));
        let r32 = L4tRelease::parse("# R32 (release), REVISION: 7.4, GCID: 1\n").unwrap();
        assert_eq!(r32.jetpack(), None, "JetPack 4 is not supported");
        assert_eq!(L4tRelease::parse("garbage"), None);
        assert_eq!(L4tRelease::parse("# R36 (release)"), None, "no revision");
        assert_eq!(L4tRelease::parse(""), None);
    }

    #[test]
    fn jetpack5_uses_nvhost_msenc() {
        match discover(&jetpack5_agx_orin()) {
            Discovery::Encoder {
                path,
                access,
                release,
                model,
            } => {
                assert_eq!(path, Path::new(JETPACK5_ENCODER));
                assert_eq!(
                    access,
                    AccessKind::Libv4l2,
                    "JetPack 5's node needs libv4l2"
                );
                assert_eq!(release.and_then(L4tRelease::jetpack), Some(JetPack::V5));
                assert_eq!(model.as_deref(), Some("Jetson AGX Orin Developer Kit"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn jetpack6_uses_v4l2_nvenc_and_prefers_it_when_both_exist() {
        let system = jetpack6_orin_nx();
        let found = discover(&system);
        assert!(
            matches!(&found, Discovery::Encoder { path, access: AccessKind::Kernel, .. } if path == Path::new(JETPACK6_ENCODER)),
            "{found:?}"
        );
        assert!(
            found.describe().contains("/dev/v4l2-nvenc"),
            "{}",
            found.describe()
        );
        assert!(
            found.describe().contains("L4T r36.4.0"),
            "{}",
            found.describe()
        );
        // Both nodes present (say an upgraded install): the release decides.
        let both = jetpack6_orin_nx().with(JETPACK5_ENCODER, "");
        assert!(
            matches!(discover(&both), Discovery::Encoder { path, .. } if path == Path::new(JETPACK6_ENCODER))
        );
        let both = jetpack5_agx_orin().with(JETPACK6_ENCODER, "");
        assert!(
            matches!(discover(&both), Discovery::Encoder { path, access: AccessKind::Libv4l2, .. } if path == Path::new(JETPACK5_ENCODER))
        );
        // An unknown release with only JetPack 5's node: the node decides the access.
        let unknown = FakeSystem::default()
            .with(COMPATIBLE_FILE, "nvidia,tegra234\0")
            .with(JETPACK5_ENCODER, "");
        let found = discover(&unknown);
        assert!(
            matches!(
                &found,
                Discovery::Encoder {
                    access: AccessKind::Libv4l2,
                    ..
                }
            ),
            "{found:?}"
        );
        assert!(
            found
                .describe()
                .starts_with("Jetson hardware encoder /dev/nvhost-msenc through libv4l2 ("),
            "{}",
            found.describe()
        );
    }

    #[test]
    fn orin_nano_has_no_encoder_by_name_or_by_module() {
        let nano = FakeSystem::default()
            .with(L4T_RELEASE_FILE, R36)
            .with(MODEL_FILE, "NVIDIA Jetson Orin Nano Developer Kit\0")
            .with(
                COMPATIBLE_FILE,
                "nvidia,p3768-0000+p3767-0005\0nvidia,p3767-0005\0nvidia,tegra234\0",
            )
            // The node may well exist (the driver is the same); there is no engine behind it.
            .with(JETPACK6_ENCODER, "");
        let found = discover(&nano);
        assert_eq!(
            found,
            Discovery::NoHardwareEncoder {
                model: "NVIDIA Jetson Orin Nano Developer Kit".into()
            }
        );
        assert!(found.describe().contains("has no hardware video encoder"));
        // A custom carrier board with its own model name: the module in the compatible list.
        let custom = FakeSystem::default()
            .with(MODEL_FILE, "Acme Camera Board\0")
            .with(
                COMPATIBLE_FILE,
                "acme,cam\0nvidia,p3767-0004\0nvidia,tegra234\0",
            );
        assert!(matches!(
            discover(&custom),
            Discovery::NoHardwareEncoder { .. }
        ));
        // Orin NX (p3767-0000) is the same module family with the encoder.
        assert!(matches!(
            discover(&jetpack6_orin_nx()),
            Discovery::Encoder { .. }
        ));
    }

    #[test]
    fn other_machines_and_missing_nodes_are_told_apart() {
        assert_eq!(discover(&FakeSystem::default()), Discovery::NotJetson);
        let laptop =
            FakeSystem::default().with(COMPATIBLE_FILE, "raspberrypi,4-model-b\0brcm,bcm2711\0");
        assert_eq!(discover(&laptop), Discovery::NotJetson);
        let no_node = FakeSystem::default().with(L4T_RELEASE_FILE, R35);
        let found = discover(&no_node);
        assert!(matches!(
            found,
            Discovery::EncoderNodeMissing {
                release: Some(_),
                model: None
            }
        ));
        assert!(
            found.describe().contains("/dev/nvhost-msenc"),
            "{}",
            found.describe()
        );
    }

    #[test]
    fn tuning_lists_the_nvidia_controls_with_their_header_ids() {
        let mut settings = EncoderSettings::new(1280, 720, 30);
        settings.keyframe_interval = 60;
        let controls = JetsonTuning {
            max_performance: true,
            slice_mb_rows: 2,
            intra_refresh_frames: 30,
        }
        .controls(&settings);
        let by_label = |label: &str| controls.iter().find(|c| c.label == label).unwrap();
        assert_eq!(
            by_label("NVIDIA insert SPS/PPS at IDR").id,
            Some(0x0099_0b17)
        );
        assert_eq!(by_label("NVIDIA IDR interval").value, ControlValue::Int(60));
        assert_eq!(
            by_label("NVIDIA max performance").id,
            Some(0x0099_0900 + 554)
        );
        // 1280 / 16 = 80 macroblocks per row, 2 rows per slice.
        assert_eq!(
            by_label("NVIDIA slice length").value,
            ControlValue::Words(vec![1, 160])
        );
        assert_eq!(
            by_label("NVIDIA slice intra refresh").value,
            ControlValue::Words(vec![30])
        );
        // Defaults: no slices, no intra refresh; keyframe interval 0 means no IDR interval.
        settings.keyframe_interval = 0;
        let defaults = JetsonTuning::default().controls(&settings);
        let labels: Vec<_> = defaults.iter().map(|c| c.label).collect();
        assert_eq!(
            labels,
            [
                "NVIDIA insert SPS/PPS at IDR",
                "NVIDIA B-frames",
                "NVIDIA reference frames",
                "NVIDIA max performance"
            ]
        );
        let options = JetsonTuning::default().options(&settings);
        assert!(options.prefer_multi_buffer_input && options.planes_from_one_dmabuf);
    }

    #[cfg(feature = "openh264")]
    #[test]
    fn no_encoder_falls_back_to_openh264_and_says_why() {
        let nano = FakeSystem::default()
            .with(L4T_RELEASE_FILE, R36)
            .with(MODEL_FILE, "NVIDIA Jetson Orin Nano Developer Kit\0");
        let selected = open_320x240(&nano, PixelFormat::I420).unwrap();
        assert!(!selected.hardware);
        assert_eq!(
            selected.log_line,
            "encoder: NVIDIA Jetson Orin Nano Developer Kit has no hardware video encoder (NVENC); falling back to openh264 (software, on the CPU)"
        );
        assert_eq!(selected.encoder.settings().width, 320);
    }

    #[cfg(feature = "openh264")]
    #[test]
    fn jetpack5_without_libv4l2_falls_back_and_names_the_library() {
        let system = jetpack5_agx_orin();
        let selected = open_320x240(&system, PixelFormat::Nv12).unwrap();
        assert!(!selected.hardware);
        assert_eq!(system.libv4l2_loads.get(), 1);
        assert!(
            selected.log_line.starts_with(
                "encoder: Jetson hardware encoder /dev/nvhost-msenc through libv4l2 (Jetson AGX Orin Developer Kit, L4T r35.4.1) is not usable: libflowcloud-no-such-libv4l2.so.0 could not be loaded"
            ) && selected
                .log_line
                .ends_with("falling back to openh264 (software, on the CPU)"),
            "{}",
            selected.log_line
        );
    }

    #[cfg(feature = "openh264")]
    #[test]
    fn jetpack5_opens_its_node_through_libv4l2() {
        // The system's libv4l2 where installed (libv4l-0); the node itself is missing here, so
        // v4l2_open fails and the error is in the fall back line.
        if let Err(e) = Libv4l2::load() {
            let _ = std::io::Write::write_fmt(
                &mut std::io::stderr(),
                format_args!("SKIP jetpack5_opens_its_node_through_libv4l2: {e}\n"),
            );
            return;
        }
        let system = jetpack5_agx_orin().with_libv4l2(crate::v4l2::LIBV4L2);
        let selected = open_320x240(&system, PixelFormat::Nv12).unwrap();
        assert!(!selected.hardware);
        assert_eq!(system.libv4l2_loads.get(), 1);
        assert!(
            selected
                .log_line
                .contains("through libv4l2 (Jetson AGX Orin Developer Kit, L4T r35.4.1) failed to open: open on /dev/nvhost-msenc: ENOENT"),
            "{}",
            selected.log_line
        );
    }

    #[cfg(feature = "openh264")]
    #[test]
    fn jetpack6_opens_its_node_with_raw_ioctls() {
        let system = jetpack6_orin_nx();
        let selected = open_320x240(&system, PixelFormat::Nv12).unwrap();
        assert!(!selected.hardware);
        assert_eq!(
            system.libv4l2_loads.get(),
            0,
            "JetPack 6 never loads libv4l2"
        );
        assert!(
            selected.log_line.contains(
                "encoder: Jetson hardware encoder /dev/v4l2-nvenc (NVIDIA Jetson Orin NX Engineering Reference Developer Kit, L4T r36.4.0) failed to open: open on /dev/v4l2-nvenc: ENOENT"
            ),
            "{}",
            selected.log_line
        );
    }

    #[cfg(feature = "openh264")]
    #[test]
    fn pictures_other_than_nv12_go_to_openh264() {
        let selected = open_320x240(&jetpack6_orin_nx(), PixelFormat::I420).unwrap();
        assert!(!selected.hardware);
        assert!(
            selected
                .log_line
                .contains("takes NV12 pictures, this source gives I420"),
            "{}",
            selected.log_line
        );
    }

    #[cfg(not(feature = "openh264"))]
    #[test]
    fn without_openh264_jetpack5_without_libv4l2_is_an_error_naming_it() {
        match open_320x240(&jetpack5_agx_orin(), PixelFormat::Nv12) {
            Err(EncodeError::NotAvailable { reason, .. }) => {
                assert!(
                    reason.contains("/dev/nvhost-msenc through libv4l2")
                        && reason.contains("libflowcloud-no-such-libv4l2.so.0 could not be loaded"),
                    "{reason}"
                );
            }
            other => panic!("{:?}", other.map(|s| s.log_line)),
        }
    }

    #[cfg(not(feature = "openh264"))]
    #[test]
    fn without_openh264_no_encoder_is_an_error() {
        match open_320x240(&FakeSystem::default(), PixelFormat::Nv12) {
            Err(EncodeError::NotAvailable { reason, .. }) => {
                assert!(
                    reason.contains("not a Jetson") && reason.contains("openh264"),
                    "{reason}"
                );
            }
            other => panic!("{:?}", other.map(|s| s.log_line)),
        }
    }
}
