//! Worker configuration: a TOML file, overridden by command-line flags (or their environment
//! variables), over built-in defaults.
//!
//! Precedence, highest first: a flag (`--max-batch 8`), its environment variable
//! (`FLOWCLOUD_MAX_BATCH=8`), the `--config` file, the default. Every value is validated after
//! merging; errors name the offending field as it is spelt in the file (`batching.max_batch`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::decode::DecoderBackend;
use crate::eval::command::EvalArgs;
use crate::ingest::identity::AnonymousSenders;
use crate::stages::KernelBackend;
use serde::{Deserialize, Serialize};

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid TOML, has an unknown key, or a value of the wrong type.
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// The file (`<string>` when parsed from a string).
        path: PathBuf,
        /// The parse error, with the key and position.
        #[source]
        source: toml::de::Error,
    },
    /// A value is out of range or inconsistent with another.
    #[error("invalid config value {field}: {reason}")]
    Invalid {
        /// The field, as spelt in the file: `section.key`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The effective configuration could not be written as TOML (a path that is not UTF-8).
    #[error("cannot write config as TOML: {0}")]
    Serialize(#[from] toml::ser::Error),
}

/// The whole worker configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// Listening addresses.
    pub listen: ListenConfig,
    /// Per-connection and global limits.
    pub limits: LimitsConfig,
    /// The segmentation model.
    pub model: ModelConfig,
    /// Dynamic batching across streams.
    pub batching: BatchingConfig,
    /// What goes back to the camera.
    pub results: ResultsConfig,
    /// Optional storage of results on disk.
    pub storage: StorageConfig,
    /// Key-frame requests.
    pub keyframes: KeyframesConfig,
    /// Which H.264 decoder backend decodes the streams.
    pub decode: DecodeConfig,
    /// Where preprocessing and post-processing run.
    pub kernels: KernelsConfig,
    /// Logging.
    pub log: LogConfig,
    /// Senders that do not open with the SR + SDES CNAME handshake.
    pub senders: SendersConfig,
    /// Cameras the worker connects to (`[[sources]]`), in addition to those that connect.
    pub sources: Vec<SourceConfig>,
}

/// `[senders]`: which senders may stream without introducing themselves first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SendersConfig {
    /// Which connecting peers may send RTP before (or without) an RTCP SR + SDES CNAME, as a
    /// standard GStreamer pipeline (`rtph264pay ! rtpstreampay ! tcpclientsink`) does: "allow",
    /// "loopback" or "deny". Their streams are named `anon-<address>-<ssrc>` until a CNAME
    /// arrives. Default "allow" (no sender is authenticated yet: a CNAME proves no more).
    pub anonymous: AnonymousSenders,
    /// Send results, receiver reports and keyframe requests back to anonymous senders too.
    /// A standard GStreamer sender never reads them, and when it closes a socket that holds
    /// unread data its kernel resets the connection, discarding what it had not yet sent (the
    /// stream's last packets): false keeps such senders' streams whole to the end. Default true.
    pub reply_to_anonymous: bool,
}

impl Default for SendersConfig {
    fn default() -> Self {
        Self {
            anonymous: AnonymousSenders::default(),
            reply_to_anonymous: true,
        }
    }
}

/// `[[sources]]`: a camera that serves its stream (RFC 4571 RTP over TCP, e.g. GStreamer's
/// `tcpserversink`); the worker connects to it and reconnects when the connection ends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// The stream's name (its storage folder and metrics label).
    pub name: String,
    /// `host:port` to connect to; resolved at every attempt.
    pub connect: String,
    /// Ms to wait before reconnecting, doubled after each failed attempt. Default 500.
    #[serde(default = "SourceConfig::default_reconnect_ms")]
    pub reconnect_ms: u64,
    /// Longest wait between attempts, ms. Default 30000.
    #[serde(default = "SourceConfig::default_max_reconnect_ms")]
    pub max_reconnect_ms: u64,
    /// Longest wait for one connection attempt, ms. Default 5000.
    #[serde(default = "SourceConfig::default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
}

impl SourceConfig {
    const fn default_reconnect_ms() -> u64 {
        500
    }

    const fn default_max_reconnect_ms() -> u64 {
        30_000
    }

    const fn default_connect_timeout_ms() -> u64 {
        5000
    }

    /// A source with the default timings.
    #[must_use]
    pub fn new(name: &str, connect: &str) -> Self {
        Self {
            name: name.to_owned(),
            connect: connect.to_owned(),
            reconnect_ms: Self::default_reconnect_ms(),
            max_reconnect_ms: Self::default_max_reconnect_ms(),
            connect_timeout_ms: Self::default_connect_timeout_ms(),
        }
    }
}

/// `--source NAME=HOST:PORT`.
fn parse_source_flag(text: &str) -> Result<SourceConfig, String> {
    let (name, connect) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected NAME=HOST:PORT"))?;
    Ok(SourceConfig::new(name, connect))
}

/// `[listen]`: where the worker listens.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenConfig {
    /// RTP/RTCP over TCP (RFC 4571 framing) from cameras. Default `0.0.0.0:5004`.
    pub media: SocketAddr,
    /// HTTP: `/livez`, `/readyz`, `/metrics`. Default `0.0.0.0:8080`.
    pub http: SocketAddr,
}

impl Default for ListenConfig {
    fn default() -> Self {
        Self {
            media: SocketAddr::from(([0, 0, 0, 0], 5004)),
            http: SocketAddr::from(([0, 0, 0, 0], 8080)),
        }
    }
}

/// `[limits]`: per-connection and global limits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Most camera connections at once; more are accepted and closed at once. Default 64.
    pub max_connections: usize,
    /// Milliseconds a new connection has to send its RTCP SR + SDES CNAME. Default 5000.
    pub handshake_timeout_ms: u64,
    /// Milliseconds without any data after which a connection is closed. Default 10000.
    pub idle_timeout_ms: u64,
    /// Largest H.264 access unit (bytes) reassembled; a larger one is dropped. Default 8 MiB.
    pub max_access_unit_bytes: usize,
    /// Widest picture decoded, in pixels; a stream announcing more is refused. Default 4096.
    pub max_width: u32,
    /// Tallest picture decoded, in pixels; a stream announcing more is refused. Default 4096.
    pub max_height: u32,
    /// Access units buffered per stream ahead of the decoder before new ones are dropped.
    /// Default 8.
    pub decode_queue: usize,
    /// Bytes of access units buffered per stream ahead of the decoder (the connection's byte
    /// budget) before new ones are dropped. Default 32 MiB.
    pub decode_queue_bytes: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_connections: 64,
            handshake_timeout_ms: 5000,
            idle_timeout_ms: 10_000,
            max_access_unit_bytes: 8 * 1024 * 1024,
            max_width: 4096,
            max_height: 4096,
            decode_queue: 8,
            decode_queue_bytes: 32 * 1024 * 1024,
        }
    }
}

impl LimitsConfig {
    /// [`Self::handshake_timeout_ms`] as a duration.
    #[must_use]
    pub const fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.handshake_timeout_ms)
    }

    /// [`Self::idle_timeout_ms`] as a duration.
    #[must_use]
    pub const fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }
}

/// `[model]`: the segmentation model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// The `.onnx` file; its manifest `<stem>.toml` sits next to it. Default `model.onnx`.
    pub path: PathBuf,
    /// Inference threads; 0 = all cores. Default 0.
    pub threads: usize,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("model.onnx"),
            threads: 0,
        }
    }
}

impl ModelConfig {
    /// The model's manifest: [`Self::path`] with the extension `.toml`.
    #[must_use]
    pub fn manifest_path(&self) -> PathBuf {
        self.path.with_extension("toml")
    }
}

/// `[batching]`: dynamic batching across streams.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchingConfig {
    /// Most frames in one inference batch. Default 4.
    pub max_batch: usize,
    /// Longest wait (ms), after the first frame of a batch is ready, for the batch to fill;
    /// 0 = never wait. Default 5.
    pub max_wait_ms: u64,
    /// Decoded frames kept per stream awaiting inference; beyond it the oldest is dropped.
    /// Default 2.
    pub queue_per_stream: usize,
}

impl Default for BatchingConfig {
    fn default() -> Self {
        Self {
            max_batch: 4,
            max_wait_ms: 5,
            queue_per_stream: 2,
        }
    }
}

impl BatchingConfig {
    /// [`Self::max_wait_ms`] as a duration.
    #[must_use]
    pub const fn max_wait(&self) -> Duration {
        Duration::from_millis(self.max_wait_ms)
    }
}

/// `[results]`: what goes back to the camera.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResultsConfig {
    /// Width of the downscaled class map in each result; its height follows the frame's
    /// aspect ratio; 0 = no class map (stage times and class histogram only). At most
    /// `limits.max_width`. Default 64.
    pub class_map_width: u16,
}

impl Default for ResultsConfig {
    fn default() -> Self {
        Self {
            class_map_width: 64,
        }
    }
}

/// How class maps are stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
pub enum ClassMapFormat {
    /// Not stored.
    #[serde(rename = "off")]
    #[value(name = "off")]
    Off,
    /// Cityscapes label ids (0–33), `*_labelIds.png`, the format Cityscapes evaluation reads.
    #[default]
    #[serde(rename = "labelIds")]
    #[value(name = "labelIds")]
    LabelIds,
    /// Cityscapes train ids (0–18, 255 = ignore), `*_trainIds.png`.
    #[serde(rename = "trainIds")]
    #[value(name = "trainIds")]
    TrainIds,
}

/// `[storage]`: optional storage of results as PNG files, one folder per stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Root folder; absent = storage off. Default absent.
    pub dir: Option<PathBuf>,
    /// Class map format: "off", "labelIds" or "trainIds". Default "labelIds".
    pub class_maps: ClassMapFormat,
    /// Also store colour overlays (palette blended over the frame). Default false.
    pub overlays: bool,
    /// Opacity of the palette in overlays, 0 (frame only) to 1 (palette only). Default 0.5.
    pub overlay_alpha: f32,
    /// Most frames kept per stream (a frame's class map and overlay count as one); the
    /// oldest are deleted first. Default 1000.
    pub max_files_per_stream: usize,
    /// Also log every segmented frame's SHA-256 (of its decoded I420 planes, packed) to
    /// `frames.tsv` in the stream's folder, to check decoding against another decoder. At most
    /// `max_files_per_stream` lines are kept (the file before is `frames.tsv.1`). Default false.
    pub frame_hashes: bool,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            dir: None,
            class_maps: ClassMapFormat::default(),
            overlays: false,
            overlay_alpha: 0.5,
            max_files_per_stream: 1000,
            frame_hashes: false,
        }
    }
}

impl StorageConfig {
    /// Whether anything is stored: a folder is set and class maps, overlays or frame hashes
    /// are on.
    #[must_use]
    pub fn enabled(&self) -> bool {
        self.dir.is_some()
            && (self.class_maps != ClassMapFormat::Off || self.overlays || self.frame_hashes)
    }
}

/// `[keyframes]`: key-frame (IDR) requests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeyframesConfig {
    /// Least time (ms) between two RTCP PLIs to one camera while its decoder waits for a key
    /// frame. Default 500.
    pub pli_interval_ms: u64,
}

impl Default for KeyframesConfig {
    fn default() -> Self {
        Self {
            pli_interval_ms: 500,
        }
    }
}

impl KeyframesConfig {
    /// [`Self::pli_interval_ms`] as a duration.
    #[must_use]
    pub const fn pli_interval(&self) -> Duration {
        Duration::from_millis(self.pli_interval_ms)
    }
}

/// `[decode]`: which H.264 decoder backend decodes the streams.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecodeConfig {
    /// "auto" (NVDEC where this machine can run it, else openh264), "openh264" or "nvdec"
    /// (NVDEC or not ready). Default "auto".
    pub backend: DecoderBackend,
    /// The GPU NVDEC decodes on and the CUDA kernels run on (CUDA device ordinal). Default 0.
    pub gpu: usize,
}

/// `[kernels]`: where preprocessing and post-processing run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KernelsConfig {
    /// "auto" (FlowCloud's CUDA kernels on `decode.gpu` where they can run, else the CPU),
    /// "cpu" or "cuda" (the kernels or not ready). Default "auto".
    pub backend: KernelBackend,
}

/// Log line format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`: logging.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// "text" or "json". Default "text".
    pub format: LogFormat,
    /// A tracing `EnvFilter` directive, e.g. "info" or "info,flowcloud_worker=debug".
    /// Default "info".
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            filter: "info".to_owned(),
        }
    }
}

/// Largest picture dimension accepted in `limits.max_width` / `limits.max_height`.
const MAX_DIMENSION: u32 = 16_384;
/// Largest `decode.gpu`: more GPUs than one host holds is a typo.
const MAX_GPU_ORDINAL: usize = 255;
/// Largest `batching.max_batch`.
const MAX_BATCH: usize = 1024;
/// Largest timeout or interval, one day in milliseconds: a guard against unit mistakes.
const MAX_MS: u64 = 86_400_000;

fn invalid(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        reason: reason.into(),
    }
}

fn non_zero_ms(field: &'static str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(invalid(field, "must be at least 1 ms"));
    }
    max_ms(field, value)
}

fn max_ms(field: &'static str, value: u64) -> Result<(), ConfigError> {
    if value > MAX_MS {
        return Err(invalid(field, format!("{value} ms is more than a day")));
    }
    Ok(())
}

fn at_least_one<T: PartialOrd + From<u8>>(
    field: &'static str,
    value: T,
) -> Result<(), ConfigError> {
    if value < T::from(1) {
        return Err(invalid(field, "must be at least 1"));
    }
    Ok(())
}

impl WorkerConfig {
    /// Reads, parses and validates the file at `path`; `None` gives the (validated) defaults.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Read`], [`ConfigError::Parse`] (including unknown keys), or
    /// [`ConfigError::Invalid`].
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let config = Self::read_unvalidated(path)?;
        config.validate()?;
        Ok(config)
    }

    /// Parses and validates TOML text.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Parse`] (path `<string>`) or [`ConfigError::Invalid`].
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let config = Self::parse(text, Path::new("<string>"))?;
        config.validate()?;
        Ok(config)
    }

    fn read_unvalidated(path: Option<&Path>) -> Result<Self, ConfigError> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    /// The configuration as TOML, in the file's layout (for `--print-config`). Parsing the
    /// output gives back the same configuration.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Serialize`] if a path is not valid UTF-8.
    pub fn to_toml_string(&self) -> Result<String, ConfigError> {
        Ok(toml::to_string_pretty(self)?)
    }

    /// Checks ranges and consistency.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming the first offending field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let Self {
            listen,
            limits,
            model,
            batching,
            results,
            storage,
            keyframes,
            decode,
            // Every value of its one field is valid.
            kernels: _,
            log,
            senders: _,
            sources,
        } = self;

        if listen.media == listen.http && listen.media.port() != 0 {
            return Err(invalid(
                "listen.http",
                format!("{} is also listen.media", listen.http),
            ));
        }

        at_least_one("limits.max_connections", limits.max_connections)?;
        non_zero_ms("limits.handshake_timeout_ms", limits.handshake_timeout_ms)?;
        non_zero_ms("limits.idle_timeout_ms", limits.idle_timeout_ms)?;
        at_least_one("limits.max_access_unit_bytes", limits.max_access_unit_bytes)?;
        for (field, value) in [
            ("limits.max_width", limits.max_width),
            ("limits.max_height", limits.max_height),
        ] {
            if !(16..=MAX_DIMENSION).contains(&value) {
                return Err(invalid(
                    field,
                    format!("{value} is not in 16..={MAX_DIMENSION}"),
                ));
            }
        }
        at_least_one("limits.decode_queue", limits.decode_queue)?;
        if limits.decode_queue_bytes < limits.max_access_unit_bytes {
            return Err(invalid(
                "limits.decode_queue_bytes",
                "must hold at least one access unit (limits.max_access_unit_bytes)",
            ));
        }

        if model.path.as_os_str().is_empty() {
            return Err(invalid("model.path", "must not be empty"));
        }

        if !(1..=MAX_BATCH).contains(&batching.max_batch) {
            return Err(invalid(
                "batching.max_batch",
                format!("{} is not in 1..={MAX_BATCH}", batching.max_batch),
            ));
        }
        max_ms("batching.max_wait_ms", batching.max_wait_ms)?;
        at_least_one("batching.queue_per_stream", batching.queue_per_stream)?;

        if u32::from(results.class_map_width) > limits.max_width {
            return Err(invalid(
                "results.class_map_width",
                format!(
                    "{} is wider than limits.max_width ({})",
                    results.class_map_width, limits.max_width
                ),
            ));
        }

        if storage
            .dir
            .as_ref()
            .is_some_and(|dir| dir.as_os_str().is_empty())
        {
            return Err(invalid(
                "storage.dir",
                "must not be empty (leave it out for no storage)",
            ));
        }
        if !(0.0..=1.0).contains(&storage.overlay_alpha) {
            return Err(invalid(
                "storage.overlay_alpha",
                format!("{} is not in 0..=1", storage.overlay_alpha),
            ));
        }
        at_least_one("storage.max_files_per_stream", storage.max_files_per_stream)?;

        non_zero_ms("keyframes.pli_interval_ms", keyframes.pli_interval_ms)?;
        if decode.gpu > MAX_GPU_ORDINAL {
            return Err(invalid(
                "decode.gpu",
                format!("{} is not in 0..={MAX_GPU_ORDINAL}", decode.gpu),
            ));
        }

        for (i, source) in sources.iter().enumerate() {
            if source.name.is_empty() {
                return Err(invalid("sources.name", format!("source {i} has no name")));
            }
            if sources[..i].iter().any(|other| other.name == source.name) {
                return Err(invalid(
                    "sources.name",
                    format!("{:?} names two sources", source.name),
                ));
            }
            match source.connect.rsplit_once(':') {
                Some((host, port))
                    if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {}
                _ => {
                    return Err(invalid(
                        "sources.connect",
                        format!(
                            "{:?} (source {:?}) is not HOST:PORT",
                            source.connect, source.name
                        ),
                    ));
                }
            }
            non_zero_ms("sources.reconnect_ms", source.reconnect_ms)?;
            non_zero_ms("sources.max_reconnect_ms", source.max_reconnect_ms)?;
            non_zero_ms("sources.connect_timeout_ms", source.connect_timeout_ms)?;
            if source.max_reconnect_ms < source.reconnect_ms {
                return Err(invalid(
                    "sources.max_reconnect_ms",
                    format!("less than reconnect_ms (source {:?})", source.name),
                ));
            }
        }

        if let Err(error) = tracing_subscriber::EnvFilter::builder().parse(&log.filter) {
            return Err(invalid("log.filter", format!("{:?}: {error}", log.filter)));
        }
        Ok(())
    }
}

// Every config field has a flag; flags override the `--config` file, which overrides the
// defaults. The doc comment below is the `--help` text.
/// FlowCloud cloud worker: receives H.264 from cameras over RTP/TCP, segments every frame and
/// returns the results. Every setting of the config file has a flag (and an environment
/// variable); flags override the file, which overrides the defaults.
///
/// `flowcloud-worker eval …` evaluates a segmentation model or its predictions on
/// Cityscapes-format data instead (`flowcloud-worker eval --help`).
#[derive(Debug, Default, Parser)]
#[command(
    name = "flowcloud-worker",
    version,
    about,
    long_about = None,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// A tool to run instead of the worker; none: serve.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// TOML config file; flags override its values. Without it, the defaults apply.
    #[arg(long, value_name = "FILE", env = "FLOWCLOUD_CONFIG")]
    pub config: Option<PathBuf>,

    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    pub print_config: bool,

    /// Address for RTP/RTCP over TCP (RFC 4571) from cameras [listen.media; default 0.0.0.0:5004].
    #[arg(long, value_name = "ADDR", env = "FLOWCLOUD_LISTEN_MEDIA")]
    pub listen_media: Option<SocketAddr>,

    /// Address for HTTP /livez, /readyz, /metrics [listen.http; default 0.0.0.0:8080].
    #[arg(long, value_name = "ADDR", env = "FLOWCLOUD_LISTEN_HTTP")]
    pub listen_http: Option<SocketAddr>,

    /// Most camera connections at once [limits.max_connections; default 64].
    #[arg(long, value_name = "N", env = "FLOWCLOUD_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// Milliseconds for a new connection to send RTCP SR + SDES CNAME
    /// [limits.handshake_timeout_ms; default 5000].
    #[arg(long, value_name = "MS", env = "FLOWCLOUD_HANDSHAKE_TIMEOUT_MS")]
    pub handshake_timeout_ms: Option<u64>,

    /// Milliseconds without data before a connection is closed
    /// [limits.idle_timeout_ms; default 10000].
    #[arg(long, value_name = "MS", env = "FLOWCLOUD_IDLE_TIMEOUT_MS")]
    pub idle_timeout_ms: Option<u64>,

    /// Largest H.264 access unit in bytes [limits.max_access_unit_bytes; default 8388608].
    #[arg(long, value_name = "BYTES", env = "FLOWCLOUD_MAX_ACCESS_UNIT_BYTES")]
    pub max_access_unit_bytes: Option<usize>,

    /// Widest picture decoded, in pixels [limits.max_width; default 4096].
    #[arg(long, value_name = "PX", env = "FLOWCLOUD_MAX_WIDTH")]
    pub max_width: Option<u32>,

    /// Tallest picture decoded, in pixels [limits.max_height; default 4096].
    #[arg(long, value_name = "PX", env = "FLOWCLOUD_MAX_HEIGHT")]
    pub max_height: Option<u32>,

    /// Access units buffered per stream before the decoder; more are dropped
    /// [limits.decode_queue; default 8].
    #[arg(long, value_name = "N", env = "FLOWCLOUD_DECODE_QUEUE")]
    pub decode_queue: Option<usize>,

    /// Bytes buffered per stream before the decoder, the connection's byte budget; more are
    /// dropped [limits.decode_queue_bytes; default 32 MiB].
    #[arg(long, value_name = "BYTES", env = "FLOWCLOUD_DECODE_QUEUE_BYTES")]
    pub decode_queue_bytes: Option<usize>,

    /// The .onnx model; its manifest (same name, .toml) sits next to it
    /// [model.path; default model.onnx].
    #[arg(long, value_name = "FILE", env = "FLOWCLOUD_MODEL")]
    pub model: Option<PathBuf>,

    /// Inference threads, 0 = all cores [model.threads; default 0].
    #[arg(long, value_name = "N", env = "FLOWCLOUD_MODEL_THREADS")]
    pub model_threads: Option<usize>,

    /// Most frames in one inference batch [batching.max_batch; default 4].
    #[arg(long, value_name = "N", env = "FLOWCLOUD_MAX_BATCH")]
    pub max_batch: Option<usize>,

    /// Longest wait in ms for a batch to fill, 0 = never wait [batching.max_wait_ms; default 5].
    #[arg(long, value_name = "MS", env = "FLOWCLOUD_MAX_WAIT_MS")]
    pub max_wait_ms: Option<u64>,

    /// Decoded frames kept per stream awaiting inference; the oldest is dropped beyond it
    /// [batching.queue_per_stream; default 2].
    #[arg(long, value_name = "N", env = "FLOWCLOUD_QUEUE_PER_STREAM")]
    pub queue_per_stream: Option<usize>,

    /// Width of the class map in results, 0 = none; height follows the aspect ratio
    /// [results.class_map_width; default 64].
    #[arg(long, value_name = "PX", env = "FLOWCLOUD_CLASS_MAP_WIDTH")]
    pub class_map_width: Option<u16>,

    /// Store results under this folder, one subfolder per stream [storage.dir; default: off].
    #[arg(
        long,
        value_name = "DIR",
        env = "FLOWCLOUD_STORAGE_DIR",
        conflicts_with = "no_storage"
    )]
    pub storage_dir: Option<PathBuf>,

    /// Turn storage off, whatever the config file says [storage.dir].
    #[arg(long)]
    pub no_storage: bool,

    /// Stored class map format [storage.class_maps; default labelIds].
    #[arg(long, value_name = "FORMAT", env = "FLOWCLOUD_STORAGE_CLASS_MAPS")]
    pub storage_class_maps: Option<ClassMapFormat>,

    /// Also store colour overlays; `--storage-overlays=false` turns them off
    /// [storage.overlays; default false].
    #[arg(
        long,
        value_name = "BOOL",
        env = "FLOWCLOUD_STORAGE_OVERLAYS",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub storage_overlays: Option<bool>,

    /// Palette opacity in overlays, 0 to 1 [storage.overlay_alpha; default 0.5].
    #[arg(long, value_name = "ALPHA", env = "FLOWCLOUD_OVERLAY_ALPHA")]
    pub overlay_alpha: Option<f32>,

    /// Most frames kept per stream, the oldest deleted first
    /// [storage.max_files_per_stream; default 1000].
    #[arg(long, value_name = "N", env = "FLOWCLOUD_MAX_FILES_PER_STREAM")]
    pub max_files_per_stream: Option<usize>,

    /// Also log each segmented frame's SHA-256 to frames.tsv in its stream's folder;
    /// `--storage-frame-hashes=false` turns it off [storage.frame_hashes; default false].
    #[arg(
        long,
        value_name = "BOOL",
        env = "FLOWCLOUD_STORAGE_FRAME_HASHES",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub storage_frame_hashes: Option<bool>,

    /// Which peers may send RTP before an RTCP SR + SDES CNAME (standard GStreamer senders):
    /// allow, loopback or deny [senders.anonymous; default allow].
    #[arg(long, value_name = "POLICY", env = "FLOWCLOUD_ANONYMOUS_SENDERS")]
    pub anonymous_senders: Option<AnonymousSenders>,

    /// Reply (results, reports, keyframe requests) to anonymous senders too;
    /// `--reply-to-anonymous=false` sends them nothing [senders.reply_to_anonymous; default
    /// true].
    #[arg(
        long,
        value_name = "BOOL",
        env = "FLOWCLOUD_REPLY_TO_ANONYMOUS",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub reply_to_anonymous: Option<bool>,

    /// Connect to a camera serving its stream (e.g. GStreamer's tcpserversink), as
    /// NAME=HOST:PORT; repeat for more. Added to the config file's [[sources]] with their
    /// default timings [sources].
    #[arg(long = "source", value_name = "NAME=HOST:PORT", value_parser = parse_source_flag)]
    pub sources: Vec<SourceConfig>,

    /// Least ms between two key-frame requests (RTCP PLI) to one camera
    /// [keyframes.pli_interval_ms; default 500].
    #[arg(long, value_name = "MS", env = "FLOWCLOUD_PLI_INTERVAL_MS")]
    pub pli_interval_ms: Option<u64>,

    /// H.264 decoder: auto (NVDEC where usable, else openh264), openh264 or nvdec
    /// [decode.backend; default auto].
    #[arg(long, value_name = "BACKEND", env = "FLOWCLOUD_DECODER")]
    pub decoder: Option<DecoderBackend>,

    /// GPU (CUDA device ordinal) NVDEC decodes on and the CUDA kernels run on
    /// [decode.gpu; default 0].
    #[arg(long, value_name = "N", env = "FLOWCLOUD_GPU")]
    pub gpu: Option<usize>,

    /// Preprocessing and post-processing: auto (the CUDA kernels where usable, else the CPU),
    /// cpu or cuda [kernels.backend; default auto].
    #[arg(long, value_name = "BACKEND", env = "FLOWCLOUD_KERNELS")]
    pub kernels: Option<KernelBackend>,

    /// Log format [log.format; default text].
    #[arg(long, value_name = "FORMAT", env = "FLOWCLOUD_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,

    /// Log filter, e.g. "info" or "info,flowcloud_worker=debug" [log.filter; default info].
    #[arg(long, value_name = "FILTER", env = "FLOWCLOUD_LOG_FILTER")]
    pub log_filter: Option<String>,
}

/// The tools `flowcloud-worker` runs instead of serving.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Evaluate semantic segmentation on Cityscapes-format data (pixel accuracy, mean accuracy,
    /// per-class IoU, mIoU).
    ///
    /// The predictions are label images on disk (--predictions) or come from running a model
    /// over the images (--model); the ground truth is gtFine/SPLIT/CITY/*_gtFine_labelIds.png.
    /// Prints per-class IoU and accuracy, pixel accuracy, mean accuracy, and mIoU three ways:
    /// as cityscapesScripts computes it (classes with no ground truth and no prediction left
    /// out), with void as one more background class, and over the classes present in the
    /// ground truth. --json writes every number and the confusion matrix. Exit status 0, or 1
    /// with the file at fault named on standard error.
    Eval(Box<EvalArgs>),
}

impl Cli {
    /// The effective configuration: defaults, then the `--config` file, then the flags,
    /// validated once all are merged.
    ///
    /// # Errors
    ///
    /// As [`WorkerConfig::load`].
    pub fn into_config(self) -> Result<WorkerConfig, ConfigError> {
        let mut config = WorkerConfig::read_unvalidated(self.config.as_deref())?;
        self.apply(&mut config);
        config.validate()?;
        Ok(config)
    }

    /// Writes every flag that was given over `config`.
    fn apply(self, config: &mut WorkerConfig) {
        fn set<T>(field: &mut T, value: Option<T>) {
            if let Some(value) = value {
                *field = value;
            }
        }
        let WorkerConfig {
            listen,
            limits,
            model,
            batching,
            results,
            storage,
            keyframes,
            decode,
            kernels,
            log,
            senders,
            sources,
        } = config;
        set(&mut listen.media, self.listen_media);
        set(&mut listen.http, self.listen_http);
        set(&mut limits.max_connections, self.max_connections);
        set(&mut limits.handshake_timeout_ms, self.handshake_timeout_ms);
        set(&mut limits.idle_timeout_ms, self.idle_timeout_ms);
        set(
            &mut limits.max_access_unit_bytes,
            self.max_access_unit_bytes,
        );
        set(&mut limits.max_width, self.max_width);
        set(&mut limits.max_height, self.max_height);
        set(&mut limits.decode_queue, self.decode_queue);
        set(&mut limits.decode_queue_bytes, self.decode_queue_bytes);
        set(&mut model.path, self.model);
        set(&mut model.threads, self.model_threads);
        set(&mut batching.max_batch, self.max_batch);
        set(&mut batching.max_wait_ms, self.max_wait_ms);
        set(&mut batching.queue_per_stream, self.queue_per_stream);
        set(&mut results.class_map_width, self.class_map_width);
        if self.no_storage {
            storage.dir = None;
        }
        set(&mut storage.dir, self.storage_dir.map(Some));
        set(&mut storage.class_maps, self.storage_class_maps);
        set(&mut storage.overlays, self.storage_overlays);
        set(&mut storage.overlay_alpha, self.overlay_alpha);
        set(&mut storage.max_files_per_stream, self.max_files_per_stream);
        set(&mut storage.frame_hashes, self.storage_frame_hashes);
        set(&mut senders.anonymous, self.anonymous_senders);
        set(&mut senders.reply_to_anonymous, self.reply_to_anonymous);
        sources.extend(self.sources);
        set(&mut keyframes.pli_interval_ms, self.pli_interval_ms);
        set(&mut decode.backend, self.decoder);
        set(&mut decode.gpu, self.gpu);
        set(&mut kernels.backend, self.kernels);
        set(&mut log.format, self.log_format);
        set(&mut log.filter, self.log_filter);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn invalid_field(text: &str) -> &'static str {
        match WorkerConfig::from_toml_str(text) {
            Err(ConfigError::Invalid { field, .. }) => field,
            other => panic!("expected Invalid for {text:?}, got {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let config = WorkerConfig::load(None).unwrap();
        assert_eq!(config, WorkerConfig::default());
        assert_eq!(config.listen.media, "0.0.0.0:5004".parse().unwrap());
        assert_eq!(config.listen.http, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(config.limits.max_connections, 64);
        assert_eq!(config.limits.handshake_timeout(), Duration::from_secs(5));
        assert_eq!(config.limits.idle_timeout(), Duration::from_secs(10));
        assert_eq!(config.limits.max_access_unit_bytes, 8 << 20);
        assert_eq!(
            (config.limits.max_width, config.limits.max_height),
            (4096, 4096)
        );
        assert_eq!(config.limits.decode_queue, 8);
        assert_eq!(config.model.path, PathBuf::from("model.onnx"));
        assert_eq!(config.model.manifest_path(), PathBuf::from("model.toml"));
        assert_eq!(config.model.threads, 0);
        assert_eq!(config.batching.max_batch, 4);
        assert_eq!(config.batching.max_wait(), Duration::from_millis(5));
        assert_eq!(config.batching.queue_per_stream, 2);
        assert_eq!(config.results.class_map_width, 64);
        assert_eq!(config.storage.dir, None);
        assert!(!config.storage.enabled());
        assert_eq!(config.storage.class_maps, ClassMapFormat::LabelIds);
        assert!(!config.storage.overlays);
        assert_eq!(config.storage.overlay_alpha, 0.5);
        assert_eq!(config.storage.max_files_per_stream, 1000);
        assert_eq!(config.keyframes.pli_interval(), Duration::from_millis(500));
        assert_eq!(config.decode.backend, DecoderBackend::Auto);
        assert_eq!(config.decode.gpu, 0);
        assert_eq!(config.log.format, LogFormat::Text);
        assert_eq!(config.log.filter, "info");
        // An empty file and empty sections are the defaults too.
        assert_eq!(WorkerConfig::from_toml_str("").unwrap(), config);
        assert_eq!(
            WorkerConfig::from_toml_str("[limits]\n[storage]\n").unwrap(),
            config
        );
    }

    const FULL: &str = r#"
[listen]
media = "127.0.0.1:6000"
http = "[::1]:9090"

[limits]
max_connections = 8
handshake_timeout_ms = 2000
idle_timeout_ms = 3000
max_access_unit_bytes = 1048576
max_width = 1920
max_height = 1080
decode_queue = 3
decode_queue_bytes = 4194304

[model]
path = "/models/deeplab.onnx"
threads = 2

[batching]
max_batch = 8
max_wait_ms = 0
queue_per_stream = 1

[results]
class_map_width = 0

[storage]
dir = "/data/results"
class_maps = "trainIds"
overlays = true
overlay_alpha = 0.25
max_files_per_stream = 10
frame_hashes = true

[keyframes]
pli_interval_ms = 250

[decode]
backend = "openh264"
gpu = 1

[kernels]
backend = "cpu"

[log]
format = "json"
filter = "warn,flowcloud_worker=debug"

[senders]
anonymous = "loopback"
reply_to_anonymous = false

[[sources]]
name = "gate"
connect = "gate.local:5000"

[[sources]]
name = "dock"
connect = "[fd00::7]:5000"
reconnect_ms = 100
max_reconnect_ms = 100
connect_timeout_ms = 1000
"#;

    fn full() -> WorkerConfig {
        WorkerConfig {
            listen: ListenConfig {
                media: "127.0.0.1:6000".parse().unwrap(),
                http: "[::1]:9090".parse().unwrap(),
            },
            limits: LimitsConfig {
                max_connections: 8,
                handshake_timeout_ms: 2000,
                idle_timeout_ms: 3000,
                max_access_unit_bytes: 1 << 20,
                max_width: 1920,
                max_height: 1080,
                decode_queue: 3,
                decode_queue_bytes: 4 << 20,
            },
            model: ModelConfig {
                path: "/models/deeplab.onnx".into(),
                threads: 2,
            },
            batching: BatchingConfig {
                max_batch: 8,
                max_wait_ms: 0,
                queue_per_stream: 1,
            },
            results: ResultsConfig { class_map_width: 0 },
            storage: StorageConfig {
                dir: Some("/data/results".into()),
                class_maps: ClassMapFormat::TrainIds,
                overlays: true,
                overlay_alpha: 0.25,
                max_files_per_stream: 10,
                frame_hashes: true,
            },
            keyframes: KeyframesConfig {
                pli_interval_ms: 250,
            },
            decode: DecodeConfig {
                backend: DecoderBackend::Openh264,
                gpu: 1,
            },
            kernels: KernelsConfig {
                backend: KernelBackend::Cpu,
            },
            log: LogConfig {
                format: LogFormat::Json,
                filter: "warn,flowcloud_worker=debug".into(),
            },
            senders: SendersConfig {
                anonymous: AnonymousSenders::Loopback,
                reply_to_anonymous: false,
            },
            sources: vec![
                SourceConfig::new("gate", "gate.local:5000"),
                SourceConfig {
                    reconnect_ms: 100,
                    max_reconnect_ms: 100,
                    connect_timeout_ms: 1000,
                    ..SourceConfig::new("dock", "[fd00::7]:5000")
                },
            ],
        }
    }

    #[test]
    fn full_file() {
        let dir = std::env::temp_dir().join(format!("flowcloud-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("worker.toml");
        std::fs::write(&path, FULL).unwrap();
        let config = WorkerConfig::load(Some(&path)).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(config, full());
        assert_eq!(
            config.model.manifest_path(),
            PathBuf::from("/models/deeplab.toml")
        );
        assert!(config.storage.enabled());
    }

    #[test]
    fn toml_round_trip() {
        for config in [WorkerConfig::default(), full()] {
            let text = config.to_toml_string().unwrap();
            assert!(text.contains("[limits]"), "{text}");
            assert_eq!(
                WorkerConfig::from_toml_str(&text).unwrap(),
                config,
                "{text}"
            );
        }
        assert!(
            full()
                .to_toml_string()
                .unwrap()
                .contains("class_maps = \"trainIds\"")
        );
    }

    #[test]
    fn senders_and_sources_from_the_file_and_flags() {
        let text = "[senders]\nanonymous = \"deny\"\n\n[[sources]]\nname = \"gate\"\n\
                    connect = \"10.0.0.5:5000\"\nreconnect_ms = 200\n";
        let config = WorkerConfig::from_toml_str(text).unwrap();
        assert_eq!(config.senders.anonymous, AnonymousSenders::Deny);
        assert_eq!(
            config.sources,
            [SourceConfig {
                reconnect_ms: 200,
                ..SourceConfig::new("gate", "10.0.0.5:5000")
            }]
        );
        let cli = Cli::try_parse_from([
            "w",
            "--anonymous-senders",
            "loopback",
            "--source",
            "a=127.0.0.1:5000",
            "--source",
            "b=cam.local:6000",
        ])
        .unwrap();
        let config = cli.into_config().unwrap();
        assert_eq!(config.senders.anonymous, AnonymousSenders::Loopback);
        let names: Vec<_> = config.sources.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert!(Cli::try_parse_from(["w", "--source", "no-equals-sign"]).is_err());
        assert!(Cli::try_parse_from(["w", "--anonymous-senders", "sometimes"]).is_err());
        for (text, field) in [
            (
                "[[sources]]\nname = \"\"\nconnect = \"h:1\"\n",
                "sources.name",
            ),
            (
                "[[sources]]\nname = \"a\"\nconnect = \"h\"\n",
                "sources.connect",
            ),
            (
                "[[sources]]\nname = \"a\"\nconnect = \"h:0\"\n",
                "sources.connect",
            ),
            (
                "[[sources]]\nname = \"a\"\nconnect = \"h:1\"\n[[sources]]\nname = \"a\"\nconnect = \"h:2\"\n",
                "sources.name",
            ),
            (
                "[[sources]]\nname = \"a\"\nconnect = \"h:1\"\nreconnect_ms = 900\nmax_reconnect_ms = 800\n",
                "sources.max_reconnect_ms",
            ),
        ] {
            assert_eq!(invalid_field(text), field, "{text}");
        }
        assert!(matches!(
            WorkerConfig::from_toml_str("[senders]\nanonymous = \"maybe\"\n"),
            Err(ConfigError::Parse { .. })
        ));
    }

    #[test]
    fn unknown_keys_and_bad_types_rejected() {
        for text in [
            "[limits]\nmax_conections = 3\n",
            "[nope]\n",
            "top = 1\n",
            "[storage]\nclass_maps = \"labelids\"\n",
            "[log]\nformat = \"xml\"\n",
            "[listen]\nmedia = \"not an address\"\n",
            "[limits]\nmax_connections = -1\n",
        ] {
            let err = WorkerConfig::from_toml_str(text).unwrap_err();
            assert!(
                matches!(err, ConfigError::Parse { .. }),
                "{text:?}: {err:?}"
            );
        }
        let err = WorkerConfig::from_toml_str("[limits]\nmax_conections = 3\n").unwrap_err();
        assert!(err.to_string().contains("max_conections"), "{err}");
    }

    #[test]
    fn missing_file() {
        let err = WorkerConfig::load(Some(Path::new("/nonexistent/worker.toml"))).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
        assert!(
            err.to_string().contains("/nonexistent/worker.toml"),
            "{err}"
        );
    }

    #[test]
    fn validation_errors_name_the_field() {
        let cases = [
            (
                "[listen]\nmedia = \"0.0.0.0:7000\"\nhttp = \"0.0.0.0:7000\"\n",
                "listen.http",
            ),
            ("[limits]\nmax_connections = 0\n", "limits.max_connections"),
            (
                "[limits]\nhandshake_timeout_ms = 0\n",
                "limits.handshake_timeout_ms",
            ),
            ("[limits]\nidle_timeout_ms = 0\n", "limits.idle_timeout_ms"),
            (
                "[limits]\nidle_timeout_ms = 100000000\n",
                "limits.idle_timeout_ms",
            ),
            (
                "[limits]\nmax_access_unit_bytes = 0\n",
                "limits.max_access_unit_bytes",
            ),
            ("[limits]\nmax_width = 0\n", "limits.max_width"),
            ("[limits]\nmax_height = 100000\n", "limits.max_height"),
            ("[limits]\ndecode_queue = 0\n", "limits.decode_queue"),
            ("[model]\npath = \"\"\n", "model.path"),
            ("[batching]\nmax_batch = 0\n", "batching.max_batch"),
            ("[batching]\nmax_batch = 5000\n", "batching.max_batch"),
            (
                "[batching]\nmax_wait_ms = 100000000\n",
                "batching.max_wait_ms",
            ),
            (
                "[batching]\nqueue_per_stream = 0\n",
                "batching.queue_per_stream",
            ),
            (
                "[results]\nclass_map_width = 5000\n",
                "results.class_map_width",
            ),
            (
                "[limits]\nmax_width = 1000\n[results]\nclass_map_width = 1001\n",
                "results.class_map_width",
            ),
            ("[storage]\ndir = \"\"\n", "storage.dir"),
            ("[storage]\noverlay_alpha = 1.5\n", "storage.overlay_alpha"),
            ("[storage]\noverlay_alpha = -0.1\n", "storage.overlay_alpha"),
            ("[storage]\noverlay_alpha = nan\n", "storage.overlay_alpha"),
            (
                "[storage]\nmax_files_per_stream = 0\n",
                "storage.max_files_per_stream",
            ),
            (
                "[keyframes]\npli_interval_ms = 0\n",
                "keyframes.pli_interval_ms",
            ),
            ("[decode]\ngpu = 256\n", "decode.gpu"),
            ("[log]\nfilter = \"info,[[[\"\n", "log.filter"),
        ];
        for (text, field) in cases {
            assert_eq!(invalid_field(text), field, "{text:?}");
        }
        let err = WorkerConfig::from_toml_str("[storage]\noverlay_alpha = 1.5\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid config value storage.overlay_alpha: 1.5 is not in 0..=1"
        );
        // Edges that are fine.
        for text in [
            "[listen]\nmedia = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"\n",
            "[batching]\nmax_wait_ms = 0\n",
            "[results]\nclass_map_width = 0\n",
            "[storage]\noverlay_alpha = 0.0\n",
            "[storage]\noverlay_alpha = 1.0\n",
            "[model]\nthreads = 0\n",
            "[decode]\nbackend = \"nvdec\"\ngpu = 255\n",
        ] {
            WorkerConfig::from_toml_str(text).unwrap();
        }
    }

    #[test]
    fn flags_override_file_override_defaults() {
        let dir = std::env::temp_dir().join(format!("flowcloud-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("worker.toml");
        std::fs::write(
            &path,
            "[limits]\nmax_connections = 10\nidle_timeout_ms = 2000\n\
             [storage]\ndir = \"/data\"\noverlays = true\n[log]\nformat = \"json\"\n",
        )
        .unwrap();
        let path_str = path.to_str().unwrap();

        // File only.
        let config = Cli::try_parse_from(["w", "--config", path_str])
            .unwrap()
            .into_config()
            .unwrap();
        assert_eq!(config.limits.max_connections, 10);
        assert_eq!(config.limits.idle_timeout_ms, 2000);
        assert_eq!(config.limits.handshake_timeout_ms, 5000); // default
        assert!(config.storage.overlays);
        assert_eq!(config.log.format, LogFormat::Json);

        // Flags over the file.
        let config = Cli::try_parse_from([
            "w",
            "--config",
            path_str,
            "--max-connections",
            "20",
            "--storage-overlays=false",
            "--log-format",
            "text",
            "--model",
            "/m/x.onnx",
            "--storage-class-maps",
            "trainIds",
        ])
        .unwrap()
        .into_config()
        .unwrap();
        assert_eq!(config.limits.max_connections, 20);
        assert_eq!(config.limits.idle_timeout_ms, 2000); // file
        assert_eq!(config.limits.decode_queue, 8); // default
        assert!(!config.storage.overlays);
        assert_eq!(config.storage.dir, Some(PathBuf::from("/data")));
        assert_eq!(config.storage.class_maps, ClassMapFormat::TrainIds);
        assert_eq!(config.log.format, LogFormat::Text);
        assert_eq!(config.model.path, PathBuf::from("/m/x.onnx"));

        // --no-storage clears the file's folder; a bare --storage-overlays means true.
        let config = Cli::try_parse_from(["w", "--config", path_str, "--no-storage"])
            .unwrap()
            .into_config()
            .unwrap();
        assert_eq!(config.storage.dir, None);
        let config = Cli::try_parse_from(["w", "--storage-overlays", "--storage-dir", "/s"])
            .unwrap()
            .into_config()
            .unwrap();
        assert!(config.storage.overlays);
        assert_eq!(config.storage.dir, Some(PathBuf::from("/s")));
        std::fs::remove_dir_all(&dir).unwrap();

        // Every flag, no file.
        let cli = Cli::try_parse_from([
            "w",
            "--listen-media=127.0.0.1:6000",
            "--listen-http=[::1]:9090",
            "--max-connections=8",
            "--handshake-timeout-ms=2000",
            "--idle-timeout-ms=3000",
            "--max-access-unit-bytes=1048576",
            "--max-width=1920",
            "--max-height=1080",
            "--decode-queue=3",
            "--decode-queue-bytes=4194304",
            "--model=/models/deeplab.onnx",
            "--model-threads=2",
            "--max-batch=8",
            "--max-wait-ms=0",
            "--queue-per-stream=1",
            "--class-map-width=0",
            "--storage-dir=/data/results",
            "--storage-class-maps=trainIds",
            "--storage-overlays",
            "--overlay-alpha=0.25",
            "--max-files-per-stream=10",
            "--storage-frame-hashes",
            "--anonymous-senders=loopback",
            "--reply-to-anonymous=false",
            "--source=gate=gate.local:5000",
            "--source=dock=[fd00::7]:5000",
            "--pli-interval-ms=250",
            "--decoder=openh264",
            "--gpu=1",
            "--kernels=cpu",
            "--log-format=json",
            "--log-filter=warn,flowcloud_worker=debug",
            "--print-config",
        ])
        .unwrap();
        assert!(cli.print_config);
        // A --source has the default timings (the file can set them).
        let mut expected = full();
        expected.sources[1] = SourceConfig::new("dock", "[fd00::7]:5000");
        assert_eq!(cli.into_config().unwrap(), expected);

        // Flags are validated after merging.
        let err = Cli::try_parse_from(["w", "--max-batch", "0"])
            .unwrap()
            .into_config()
            .unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Invalid {
                    field: "batching.max_batch",
                    ..
                }
            ),
            "{err}"
        );
        // Conflicting and malformed flags are clap errors.
        assert!(Cli::try_parse_from(["w", "--no-storage", "--storage-dir", "/x"]).is_err());
        assert!(Cli::try_parse_from(["w", "--max-batch", "many"]).is_err());
        assert!(Cli::try_parse_from(["w", "--storage-class-maps", "labelids"]).is_err());
    }

    #[test]
    fn help_documents_every_flag() {
        Cli::command().debug_assert();
        let help = Cli::command().render_long_help().to_string();
        let flags = Cli::command()
            .get_arguments()
            .filter_map(|arg| arg.get_long().map(str::to_owned))
            .collect::<Vec<_>>();
        // One flag per config field (30, and --source for [[sources]]), plus --config,
        // --print-config, --no-storage.
        assert_eq!(flags.len(), 34, "{flags:?}");
        for flag in [
            "config",
            "print-config",
            "listen-media",
            "listen-http",
            "max-connections",
            "handshake-timeout-ms",
            "idle-timeout-ms",
            "max-access-unit-bytes",
            "max-width",
            "max-height",
            "decode-queue",
            "decode-queue-bytes",
            "model",
            "model-threads",
            "max-batch",
            "max-wait-ms",
            "queue-per-stream",
            "class-map-width",
            "storage-dir",
            "no-storage",
            "storage-class-maps",
            "storage-overlays",
            "overlay-alpha",
            "decoder",
            "gpu",
            "kernels",
            "max-files-per-stream",
            "storage-frame-hashes",
            "anonymous-senders",
            "reply-to-anonymous",
            "source",
            "pli-interval-ms",
            "log-format",
            "log-filter",
        ] {
            assert!(flags.iter().any(|f| f == flag), "--{flag} is not a flag");
            assert!(
                help.contains(&format!("--{flag}")),
                "--{flag} missing from help:\n{help}"
            );
        }
        for arg in Cli::command().get_arguments() {
            assert!(
                arg.get_help().is_some(),
                "--{:?} has no doc comment",
                arg.get_long()
            );
        }
        // Each config field's flag names the field in its help.
        for field in [
            "listen.media",
            "limits.max_access_unit_bytes",
            "model.path",
            "batching.queue_per_stream",
            "results.class_map_width",
            "storage.overlay_alpha",
            "keyframes.pli_interval_ms",
            "log.filter",
            "storage.frame_hashes",
            "senders.anonymous",
            "[sources]",
        ] {
            assert!(help.contains(field), "{field} missing from help");
        }
    }
}
