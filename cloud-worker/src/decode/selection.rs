//! Which decoder each stream gets: the backend is chosen once at start, from what the
//! configuration asks for and what the capability probe found, and openh264 is the fallback
//! wherever NVDEC cannot serve (no driver, no NVDEC, a decoder that cannot be created for a new
//! stream, or one that keeps failing mid-stream).

use std::sync::Arc;

use clap::ValueEnum;
use cudarc::driver::CudaContext;
use flowcloud_cuda::Capabilities;
use serde::{Deserialize, Serialize};
use tracing::warn;

use super::nvdec::{NvdecDecoder, NvdecLibrary};
use super::{
    DecodeError, DecodeOutcome, Decoder, DecoderConfig, OpenH264Decoder, split_access_units,
};
use crate::frame::{DeviceFramePool, I420Frame, Picture};
use crate::metrics::{DecoderKind, FallbackReason, Metrics};

/// Backend failures in a row after which a stream leaves NVDEC for openh264. Input our own
/// checks reject (`Corrupt`, `Unsupported`, `TooLarge`) never counts, and one failure should
/// not cost a stream the GPU; NVDEC's parser may report a damaged stream as a failed call, so
/// a stream sending garbage can end up on the CPU, where it is still decoded correctly.
pub const NVDEC_FAILURES_BEFORE_FALLBACK: u32 = 3;

/// The streams NVDEC must decode exactly as openh264 does before the worker uses it, 11 kB:
/// x264 High profile (CABAC, 8×8 transform) and openh264 Constrained Baseline, both 322×242
/// (an odd chroma size and a crop), three pictures each. H.264 decoding is exact by
/// specification, so any difference is a broken driver or a bug of ours.
const SELF_CHECK_STREAMS: [(&str, &[u8]); 2] = [
    (
        "x264-high-322x242.h264",
        include_bytes!("../../../edge-sdk/core/testdata/x264-high-322x242.h264"),
    ),
    (
        "openh264-322x242.h264",
        include_bytes!("../../../edge-sdk/core/testdata/openh264-322x242.h264"),
    ),
];

/// `[decode] backend`: the H.264 decoder backend asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DecoderBackend {
    /// NVDEC when the probe at start finds it usable on the configured GPU, else openh264.
    #[default]
    Auto,
    /// openh264 on the CPU, without trying the GPU.
    Openh264,
    /// NVDEC; the worker is not ready when it cannot be used.
    Nvdec,
}

impl DecoderBackend {
    /// The name as written in the config file and on the command line.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Openh264 => "openh264",
            Self::Nvdec => "nvdec",
        }
    }
}

/// `decode.backend = "nvdec"` on a machine where NVDEC cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("decode.backend is \"nvdec\", but NVDEC cannot be used on GPU {gpu}: {reason}")]
pub struct NvdecRequired {
    /// The configured GPU.
    pub gpu: usize,
    /// Why not.
    pub reason: String,
}

#[derive(Clone)]
enum Chosen {
    OpenH264,
    Nvdec {
        library: Arc<NvdecLibrary>,
        gpu: usize,
    },
}

/// The decoder backend chosen at start; makes one decoder per stream ([`Self::make`]).
#[derive(Clone)]
pub struct DecoderSelection {
    chosen: Chosen,
    config: DecoderConfig,
    /// Why NVDEC is not used, when it was considered and is not.
    nvdec_unavailable: Option<String>,
    metrics: Option<Arc<Metrics>>,
    /// Where NVDEC decoders hand their pictures on in CUDA memory: the kernels' context.
    device_output: Option<Arc<CudaContext>>,
}

/// Free CUDA picture buffers a stream keeps for reuse (more are allocated while the pipeline's
/// queues hold more pictures, and freed when they come back).
const DEVICE_BUFFERS_KEPT: usize = 4;

impl std::fmt::Debug for DecoderSelection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecoderSelection")
            .field("backend", &self.backend())
            .field("config", &self.config)
            .field("nvdec_unavailable", &self.nvdec_unavailable)
            .finish_non_exhaustive()
    }
}

impl DecoderSelection {
    /// Chooses the backend for `asked`: openh264 as asked; for `auto` and `nvdec`, NVDEC when
    /// `capabilities` say GPU `gpu` has it, its libraries load, and a decoder can be created
    /// there (created and dropped again, so a driver that cannot serve is found now, not at
    /// the first camera).
    ///
    /// # Errors
    ///
    /// [`NvdecRequired`] when `asked` is `nvdec` and any of that fails; `auto` falls back to
    /// openh264 instead and says why ([`Self::nvdec_unavailable`]).
    pub fn choose(
        asked: DecoderBackend,
        gpu: usize,
        config: DecoderConfig,
        capabilities: &Capabilities,
    ) -> Result<Self, NvdecRequired> {
        let openh264 = |why: Option<String>| Self {
            chosen: Chosen::OpenH264,
            config,
            nvdec_unavailable: why,
            metrics: None,
            device_output: None,
        };
        if asked == DecoderBackend::Openh264 {
            return Ok(openh264(None));
        }
        match nvdec_on(gpu, config, capabilities) {
            Ok(library) => Ok(Self {
                chosen: Chosen::Nvdec { library, gpu },
                config,
                nvdec_unavailable: None,
                metrics: None,
                device_output: None,
            }),
            Err(reason) if asked == DecoderBackend::Auto => Ok(openh264(Some(reason))),
            Err(reason) => Err(NvdecRequired { gpu, reason }),
        }
    }

    /// Counts every decoder made and every fallback into `metrics`.
    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// NVDEC decoders made from now on hand their pictures on in CUDA memory, in buffers on
    /// `context` (the CUDA kernels' context, the GPU's primary one), instead of copying them to
    /// the host. openh264 decoders are unaffected.
    #[must_use]
    pub fn with_device_output(mut self, context: &Arc<CudaContext>) -> Self {
        self.device_output = Some(Arc::clone(context));
        self
    }

    /// The backend new streams get: `"nvdec"` or `"openh264"`.
    #[must_use]
    pub const fn backend(&self) -> &'static str {
        match self.chosen {
            Chosen::OpenH264 => super::openh264::BACKEND,
            Chosen::Nvdec { .. } => super::nvdec::BACKEND,
        }
    }

    /// Why NVDEC is not used, when `auto` considered it and fell back to openh264.
    #[must_use]
    pub fn nvdec_unavailable(&self) -> Option<&str> {
        self.nvdec_unavailable.as_deref()
    }

    /// A decoder for a new stream. On NVDEC, one that moves to openh264 after
    /// [`NVDEC_FAILURES_BEFORE_FALLBACK`] backend failures in a row; when no NVDEC decoder
    /// can be created (the GPU's decoder sessions or memory exhausted), openh264 at once.
    /// Either way is logged and counted; other streams keep their decoders.
    #[must_use]
    pub fn make(&self) -> Box<dyn Decoder> {
        match &self.chosen {
            Chosen::OpenH264 => self.openh264(),
            Chosen::Nvdec { library, gpu } => match NvdecDecoder::new(library, *gpu, self.config) {
                Ok(decoder) => {
                    let decoder = self.with_pool(decoder);
                    self.count(DecoderKind::Nvdec);
                    let selection = self.clone();
                    Box::new(WithFallback::new(decoder, move || {
                        selection.fallback(FallbackReason::DecodeFailures);
                        selection.openh264()
                    }))
                }
                Err(e) => {
                    warn!(gpu, error = %e, "no NVDEC decoder for a new stream: it decodes on the CPU (openh264)");
                    self.fallback(FallbackReason::Create);
                    self.openh264()
                }
            },
        }
    }

    /// Gives `decoder` a picture buffer pool on its own stream when device output is on; a
    /// stream that cannot be created leaves the decoder copying to the host.
    fn with_pool(&self, decoder: NvdecDecoder) -> NvdecDecoder {
        let Some(context) = &self.device_output else {
            return decoder;
        };
        match context.new_stream() {
            Ok(stream) => {
                decoder.with_device_output(DeviceFramePool::new(stream, DEVICE_BUFFERS_KEPT))
            }
            Err(e) => {
                warn!(error = %e, "no CUDA stream for a new stream's pictures: they are copied to the host");
                decoder
            }
        }
    }

    fn openh264(&self) -> Box<dyn Decoder> {
        self.count(DecoderKind::Openh264);
        Box::new(OpenH264Decoder::new(self.config))
    }

    fn count(&self, kind: DecoderKind) {
        if let Some(metrics) = &self.metrics {
            metrics.decoder_created(kind);
        }
    }

    fn fallback(&self, reason: FallbackReason) {
        if let Some(metrics) = &self.metrics {
            metrics.decoder_fallback(reason);
        }
    }
}

/// NVDEC's library on GPU `gpu`, checked by decoding [`SELF_CHECK_STREAMS`] there bit for bit
/// as openh264 does, or why not.
fn nvdec_on(
    gpu: usize,
    config: DecoderConfig,
    capabilities: &Capabilities,
) -> Result<Arc<NvdecLibrary>, String> {
    if let Some(why) = capabilities.nvdec_unavailable(gpu) {
        return Err(why);
    }
    let library = NvdecLibrary::load().map_err(|e| e.to_string())?;
    let mut nvdec = NvdecDecoder::new(&library, gpu, config).map_err(|e| e.to_string())?;
    let mut openh264 = OpenH264Decoder::new(config);
    for (name, stream) in SELF_CHECK_STREAMS {
        nvdec.reset();
        openh264.reset();
        same_pictures(&mut nvdec, &mut openh264, stream).map_err(|why| {
            format!(
                "NVDEC does not decode the built-in check stream {name} as openh264 does: {why}"
            )
        })?;
    }
    Ok(library)
}

/// Decodes `stream` with both decoders and compares every picture, byte for byte; the number
/// of pictures, or the first difference.
fn same_pictures(
    candidate: &mut dyn Decoder,
    oracle: &mut dyn Decoder,
    stream: &[u8],
) -> Result<usize, String> {
    let units = split_access_units(stream).map_err(|e| e.to_string())?;
    let (mut got, mut want) = (
        I420Frame::filled(2, 2, (0, 0, 0)),
        I420Frame::filled(2, 2, (0, 0, 0)),
    );
    let mut pictures = 0;
    for (index, unit) in units.iter().enumerate() {
        let expected = oracle
            .decode(unit, &mut want)
            .map_err(|e| format!("access unit {index}: {} failed: {e}", oracle.backend()))?;
        let outcome = candidate
            .decode(unit, &mut got)
            .map_err(|e| format!("access unit {index}: {e}"))?;
        if outcome != expected {
            return Err(format!(
                "access unit {index}: {outcome:?}, where {} gave {expected:?}",
                oracle.backend()
            ));
        }
        if outcome == DecodeOutcome::NoPicture {
            continue;
        }
        if (got.width, got.height) != (want.width, want.height) {
            return Err(format!(
                "picture {pictures}: {}x{}, where {} gave {}x{}",
                got.width,
                got.height,
                oracle.backend(),
                want.width,
                want.height
            ));
        }
        for (plane, a, b) in [
            ("Y", &got.y, &want.y),
            ("U", &got.u, &want.u),
            ("V", &got.v, &want.v),
        ] {
            if let Some(at) = a.iter().zip(b.iter()).position(|(x, y)| x != y) {
                return Err(format!(
                    "picture {pictures}: {plane} plane differs from byte {at} on ({} against {})",
                    a[at], b[at]
                ));
            }
        }
        pictures += 1;
    }
    if pictures == 0 {
        return Err(format!("{} decoded no picture", oracle.backend()));
    }
    Ok(pictures)
}

/// A decoder that hands its stream to a fallback decoder after
/// [`NVDEC_FAILURES_BEFORE_FALLBACK`] [`DecodeError::Backend`] errors in a row.
///
/// The switch happens on the failing call, which still returns its error: the caller resets
/// the decoder and waits for the next IDR, which the fallback then decodes from scratch.
pub struct WithFallback<P> {
    current: Current<P>,
    make_fallback: Option<Box<dyn FnOnce() -> Box<dyn Decoder> + Send>>,
    failures: u32,
}

enum Current<P> {
    Primary(P),
    Fallback(Box<dyn Decoder>),
}

impl<P: Decoder> WithFallback<P> {
    /// `primary` until it fails; then what `fallback` makes.
    pub fn new(primary: P, fallback: impl FnOnce() -> Box<dyn Decoder> + Send + 'static) -> Self {
        Self {
            current: Current::Primary(primary),
            make_fallback: Some(Box::new(fallback)),
            failures: 0,
        }
    }

    fn decoder(&mut self) -> &mut dyn Decoder {
        match &mut self.current {
            Current::Primary(primary) => primary,
            Current::Fallback(fallback) => fallback.as_mut(),
        }
    }

    fn switch(&mut self, error: &DecodeError) {
        let Some(make) = self.make_fallback.take() else {
            return;
        };
        let from = self.backend();
        let fallback = make();
        warn!(
            from,
            to = fallback.backend(),
            failures = self.failures,
            error = %error,
            "the stream's decoder keeps failing: it moves to another backend from the next key frame"
        );
        // The primary's resources (an NVDEC session, GPU memory) go now, not with the stream.
        self.current = Current::Fallback(fallback);
    }
}

impl<P: Decoder> WithFallback<P> {
    /// Counts the primary's backend failures in a row and switches after too many.
    fn account(&mut self, result: Result<bool, &DecodeError>) {
        if !matches!(self.current, Current::Primary(_)) {
            return;
        }
        match result {
            Err(error @ DecodeError::Backend { .. }) => {
                self.failures += 1;
                if self.failures >= NVDEC_FAILURES_BEFORE_FALLBACK {
                    let error = error.clone();
                    self.switch(&error);
                }
            }
            Ok(true) => self.failures = 0,
            _ => {}
        }
    }
}

impl<P: Decoder> Decoder for WithFallback<P> {
    fn decode(
        &mut self,
        access_unit: &[u8],
        out: &mut I420Frame,
    ) -> Result<DecodeOutcome, DecodeError> {
        let result = self.decoder().decode(access_unit, out);
        self.account(
            result
                .as_ref()
                .map(|outcome| *outcome == DecodeOutcome::Frame),
        );
        result
    }

    fn decode_picture(
        &mut self,
        access_unit: &[u8],
        scratch: &mut I420Frame,
    ) -> Result<Option<Picture>, DecodeError> {
        let result = self.decoder().decode_picture(access_unit, scratch);
        self.account(result.as_ref().map(Option::is_some));
        result
    }

    fn reset(&mut self) {
        self.decoder().reset();
    }

    fn backend(&self) -> &'static str {
        match &self.current {
            Current::Primary(primary) => primary.backend(),
            Current::Fallback(fallback) => fallback.backend(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use flowcloud_cuda::{GpuDevice, Probe};

    use super::*;

    /// Whether this machine can run NVDEC (then the "falls back" tests check the other way).
    fn nvdec_here() -> bool {
        Capabilities::probe().nvdec_unavailable(0).is_none()
    }

    /// Capabilities as a machine with one Hopper GPU and NVDEC would report them.
    fn gpu_machine() -> Capabilities {
        Capabilities {
            driver: Probe::Available("1 GPU(s)".into()),
            devices: vec![GpuDevice {
                ordinal: 0,
                name: "NVIDIA H100 80GB HBM3".into(),
                compute_capability: (9, 0),
            }],
            nvrtc: Probe::Available("NVRTC 13.0".into()),
            nvdec: Probe::Available("libnvcuvid.so.1".into()),
        }
    }

    #[test]
    fn openh264_is_chosen_as_asked_without_trying_the_gpu() {
        // Even capabilities claiming NVDEC do not matter.
        let selection = DecoderSelection::choose(
            DecoderBackend::Openh264,
            0,
            DecoderConfig::default(),
            &gpu_machine(),
        )
        .unwrap();
        assert_eq!(selection.backend(), "openh264");
        assert_eq!(selection.nvdec_unavailable(), None);
        let metrics = Arc::new(Metrics::new());
        let selection = selection.with_metrics(Arc::clone(&metrics));
        assert_eq!(selection.make().backend(), "openh264");
        assert_eq!(selection.make().backend(), "openh264");
        let text = metrics.encode();
        assert!(
            text.contains("flowcloud_decoders_total{backend=\"openh264\"} 2"),
            "{text}"
        );
    }

    #[test]
    fn auto_falls_back_to_openh264_and_says_why() {
        let capabilities = Capabilities::probe();
        let selection = DecoderSelection::choose(
            DecoderBackend::Auto,
            0,
            DecoderConfig::default(),
            &capabilities,
        )
        .unwrap();
        if nvdec_here() {
            assert_eq!(selection.backend(), "nvdec");
            assert_eq!(selection.make().backend(), "nvdec");
            return;
        }
        assert_eq!(selection.backend(), "openh264");
        let why = selection.nvdec_unavailable().expect("a reason");
        // The probe's own words: on a machine without the driver, the driver library.
        assert_eq!(Some(why.to_owned()), capabilities.nvdec_unavailable(0));
        if !capabilities.driver.is_available() {
            assert!(why.contains("libcuda.so.1"), "{why}");
        }
        assert_eq!(selection.make().backend(), "openh264");
    }

    #[test]
    fn a_probe_that_claims_nvdec_is_checked_by_loading_it() {
        if nvdec_here() {
            return;
        }
        // The probe says yes; loading the libraries says no, and that is the reason given.
        let selection = DecoderSelection::choose(
            DecoderBackend::Auto,
            0,
            DecoderConfig::default(),
            &gpu_machine(),
        )
        .unwrap();
        assert_eq!(selection.backend(), "openh264");
        let why = selection.nvdec_unavailable().unwrap();
        assert!(why.starts_with("NVDEC is not available: "), "{why}");
        assert!(
            why.contains("libcuda.so.1") || why.contains("libnvcuvid.so.1"),
            "{why}"
        );
    }

    #[test]
    fn nvdec_when_required_is_an_error_naming_the_gpu_and_the_reason() {
        let mut no_driver = gpu_machine();
        no_driver.driver = Probe::Unavailable("CUDA is not available: no libcuda.so.1".into());
        no_driver.devices.clear();
        let err = DecoderSelection::choose(
            DecoderBackend::Nvdec,
            0,
            DecoderConfig::default(),
            &no_driver,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "decode.backend is \"nvdec\", but NVDEC cannot be used on GPU 0: \
             CUDA is not available: no libcuda.so.1"
        );

        // A GPU the machine does not have.
        let err = DecoderSelection::choose(
            DecoderBackend::Nvdec,
            3,
            DecoderConfig::default(),
            &gpu_machine(),
        )
        .unwrap_err();
        assert_eq!(err.gpu, 3);
        assert!(err.reason.contains("GPU 3"), "{err}");
        assert!(err.reason.contains("1 GPU"), "{err}");

        // A driver without NVDEC.
        let mut no_nvdec = gpu_machine();
        no_nvdec.nvdec = Probe::Unavailable("libnvcuvid.so.1 cannot be loaded".into());
        let err = DecoderSelection::choose(
            DecoderBackend::Nvdec,
            0,
            DecoderConfig::default(),
            &no_nvdec,
        )
        .unwrap_err();
        assert!(err.reason.contains("libnvcuvid.so.1"), "{err}");
        // The same machine under auto decodes on the CPU.
        let selection =
            DecoderSelection::choose(DecoderBackend::Auto, 0, DecoderConfig::default(), &no_nvdec)
                .unwrap();
        assert_eq!(selection.backend(), "openh264");
    }

    /// A decoder that plays back scripted results and records the calls it got.
    struct Scripted {
        name: &'static str,
        results: VecDeque<Result<DecodeOutcome, DecodeError>>,
        calls: Arc<Mutex<Vec<String>>>,
    }

    impl Scripted {
        fn new(
            name: &'static str,
            results: Vec<Result<DecodeOutcome, DecodeError>>,
            calls: &Arc<Mutex<Vec<String>>>,
        ) -> Self {
            Self {
                name,
                results: results.into(),
                calls: Arc::clone(calls),
            }
        }
    }

    impl Decoder for Scripted {
        fn decode(
            &mut self,
            _access_unit: &[u8],
            _out: &mut I420Frame,
        ) -> Result<DecodeOutcome, DecodeError> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("{} decode", self.name));
            self.results.pop_front().unwrap_or(Ok(DecodeOutcome::Frame))
        }

        fn reset(&mut self) {
            self.calls
                .lock()
                .unwrap()
                .push(format!("{} reset", self.name));
        }

        fn backend(&self) -> &'static str {
            self.name
        }
    }

    fn backend_error() -> Result<DecodeOutcome, DecodeError> {
        Err(DecodeError::Backend {
            backend: "gpu",
            reason: "CUDA_ERROR_LAUNCH_FAILED".into(),
        })
    }

    fn corrupt() -> Result<DecodeOutcome, DecodeError> {
        Err(DecodeError::Corrupt {
            reason: "bad slice".into(),
        })
    }

    #[test]
    fn repeated_backend_failures_move_the_stream_to_the_fallback_once() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let made = Arc::new(Mutex::new(0));
        // Two failures, a good frame (the count starts again), then three in a row.
        let primary = Scripted::new(
            "gpu",
            vec![
                backend_error(),
                backend_error(),
                Ok(DecodeOutcome::Frame),
                backend_error(),
                backend_error(),
                backend_error(),
            ],
            &calls,
        );
        let fallback_calls = Arc::clone(&calls);
        let fallback_made = Arc::clone(&made);
        let mut decoder = WithFallback::new(primary, move || {
            *fallback_made.lock().unwrap() += 1;
            // The fallback fails too: a backend error there does not switch again.
            Box::new(Scripted::new("cpu", vec![backend_error()], &fallback_calls))
                as Box<dyn Decoder>
        });
        let mut frame = I420Frame::filled(2, 2, (0, 0, 0));
        let mut outcomes = Vec::new();
        for _ in 0..9 {
            outcomes.push(decoder.decode(b"au", &mut frame).map_err(|_| ()));
            if decoder.backend() == "gpu" {
                assert_eq!(*made.lock().unwrap(), 0);
            }
        }
        decoder.reset();
        assert_eq!(decoder.backend(), "cpu");
        assert_eq!(*made.lock().unwrap(), 1);
        let frame_ok = Ok(DecodeOutcome::Frame);
        assert_eq!(
            outcomes,
            vec![
                Err(()),
                Err(()),
                frame_ok,
                Err(()),
                Err(()),
                Err(()), // the third in a row: the switch happens here
                Err(()), // the fallback's own failure
                frame_ok,
                frame_ok,
            ]
        );
        let calls = calls.lock().unwrap();
        assert_eq!(calls.iter().filter(|c| *c == "gpu decode").count(), 6);
        assert_eq!(calls.iter().filter(|c| *c == "cpu decode").count(), 3);
        assert_eq!(calls.last().map(String::as_str), Some("cpu reset"));
    }

    /// openh264 with one byte of one picture changed, or failing at one access unit.
    struct Flawed {
        inner: OpenH264Decoder,
        pictures: usize,
        flip_picture: Option<usize>,
        fail_unit: Option<usize>,
        units: usize,
    }

    impl Flawed {
        fn new() -> Self {
            Self {
                inner: OpenH264Decoder::new(DecoderConfig::default()),
                pictures: 0,
                flip_picture: None,
                fail_unit: None,
                units: 0,
            }
        }
    }

    impl Decoder for Flawed {
        fn decode(
            &mut self,
            access_unit: &[u8],
            out: &mut I420Frame,
        ) -> Result<DecodeOutcome, DecodeError> {
            self.units += 1;
            if self.fail_unit == Some(self.units - 1) {
                return backend_error();
            }
            let outcome = self.inner.decode(access_unit, out)?;
            if outcome == DecodeOutcome::Frame {
                if self.flip_picture == Some(self.pictures) {
                    out.v[7] ^= 1;
                }
                self.pictures += 1;
            }
            Ok(outcome)
        }

        fn reset(&mut self) {
            self.inner.reset();
        }

        fn backend(&self) -> &'static str {
            "flawed"
        }
    }

    #[test]
    fn the_self_check_compares_every_picture_exactly() {
        let oracle = || OpenH264Decoder::new(DecoderConfig::default());
        for (name, stream) in SELF_CHECK_STREAMS {
            let pictures = same_pictures(&mut oracle(), &mut oracle(), stream).unwrap();
            assert_eq!(pictures, 3, "{name}");
        }
        let (_, stream) = SELF_CHECK_STREAMS[0];
        let pictures = 3;

        // One bit of one chroma sample in one picture.
        let mut flawed = Flawed::new();
        flawed.flip_picture = Some(pictures - 1);
        let why = same_pictures(&mut flawed, &mut oracle(), stream).unwrap_err();
        assert_eq!(
            why.split(" differs").next(),
            Some(format!("picture {}: V plane", pictures - 1).as_str()),
            "{why}"
        );
        assert!(why.contains("from byte 7 on"), "{why}");

        // A decoder that fails says where.
        let mut flawed = Flawed::new();
        flawed.fail_unit = Some(2);
        let why = same_pictures(&mut flawed, &mut oracle(), stream).unwrap_err();
        assert!(why.starts_with("access unit 2: "), "{why}");
        assert!(why.contains("CUDA_ERROR_LAUNCH_FAILED"), "{why}");

        // A stream that is not H.264 is no pass.
        assert!(same_pictures(&mut oracle(), &mut oracle(), b"not h264").is_err());
    }

    #[test]
    fn bad_input_never_moves_a_stream_off_the_gpu() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let unsupported = Err(DecodeError::Unsupported {
            reason: "4:4:4".into(),
        });
        let too_large = Err(DecodeError::TooLarge {
            width: 8192,
            height: 8192,
        });
        let primary = Scripted::new(
            "gpu",
            vec![
                corrupt(),
                corrupt(),
                corrupt(),
                unsupported,
                too_large,
                Ok(DecodeOutcome::NoPicture),
            ],
            &calls,
        );
        let mut decoder = WithFallback::new(primary, || -> Box<dyn Decoder> {
            panic!("no fallback for bad input")
        });
        let mut frame = I420Frame::filled(2, 2, (0, 0, 0));
        for _ in 0..10 {
            let _ = decoder.decode(b"au", &mut frame);
        }
        assert_eq!(decoder.backend(), "gpu");
    }
}
