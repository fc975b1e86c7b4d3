//! The manifest that travels with a model: a TOML file next to the `.onnx` (`model.onnx` +
//! `model.toml`) saying how to feed the model and how to read its output.
//!
//! ```toml
//! name = "deeplabv3-resnet50-cityscapes"
//! input_name = "input"
//! output_name = "logits"
//! input_width = 520
//! input_height = 520
//! channel_order = "rgb"              # or "bgr": the order of the input planes
//! mean = [0.485, 0.456, 0.406]        # per channel, in 0..1 pixel units, in RGB order
//! std = [0.229, 0.224, 0.225]         # per channel, in 0..1 pixel units, in RGB order
//! classes = "cityscapes-train"        # 19 train ids; "cityscapes-labels": the 34 label ids
//! output_stride = 8                   # logits at 1/8 of the input size; 1 = full resolution
//! precision = "fp32"
//! source = "deeplabv3_resnet50, weights: checkpoint best.pt (sha256 …)"  # optional
//! ```
//!
//! Every field but `source` is required and unknown fields are rejected (a misspelt field would otherwise be
//! silently ignored). [`ModelManifest::load`] checks each field and names the one that is wrong.

use std::{
    fmt,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::classes::ClassTable;

/// The largest input side a manifest may ask for, in pixels.
pub const MAX_INPUT_SIDE: u32 = 8192;

/// The output strides a manifest may state.
pub const OUTPUT_STRIDES: [u32; 6] = [1, 2, 4, 8, 16, 32];

/// Order of the three input planes the model expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelOrder {
    /// Planes red, green, blue (torchvision models).
    Rgb,
    /// Planes blue, green, red (Caffe/OpenCV-trained models).
    Bgr,
}

impl ChannelOrder {
    /// The manifest spelling.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Rgb => "rgb",
            Self::Bgr => "bgr",
        }
    }

    /// For each output plane `p`, the RGB channel (0 = R, 1 = G, 2 = B) that goes there.
    #[must_use]
    pub const fn plane_sources(self) -> [usize; 3] {
        match self {
            Self::Rgb => [0, 1, 2],
            Self::Bgr => [2, 1, 0],
        }
    }
}

/// The set of classes the model's logits stand for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ClassSet {
    /// The 19 Cityscapes train ids (`trainIds`), the usual training target.
    #[serde(rename = "cityscapes-train")]
    CityscapesTrain,
    /// The 34 Cityscapes label ids (`labelIds`, 0..=33), as the original system used.
    #[serde(rename = "cityscapes-labels")]
    CityscapesLabels,
}

impl ClassSet {
    /// The manifest spelling.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::CityscapesTrain => "cityscapes-train",
            Self::CityscapesLabels => "cityscapes-labels",
        }
    }

    /// How many logit channels the model outputs.
    #[must_use]
    pub const fn num_classes(self) -> usize {
        match self {
            Self::CityscapesTrain => 19,
            Self::CityscapesLabels => 34,
        }
    }

    /// The class table (names, ids, colours) of the logit channels.
    #[must_use]
    pub const fn table(self) -> ClassTable {
        match self {
            Self::CityscapesTrain => ClassTable::CityscapesTrain,
            Self::CityscapesLabels => ClassTable::CityscapesLabels,
        }
    }
}

/// The numeric type the model computes in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit float input, weights and logits (the ONNX Runtime backend needs this).
    Fp32,
    /// 16-bit float (TensorRT plans).
    Fp16,
    /// 8-bit integer with calibration (TensorRT plans).
    Int8,
}

impl Precision {
    /// The manifest spelling.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Fp32 => "fp32",
            Self::Fp16 => "fp16",
            Self::Int8 => "int8",
        }
    }
}

/// How to feed a model and read its output; see the [module documentation](self).
///
/// Build one with [`ModelManifest::load`] or [`ModelManifest::from_toml_str`], which check every
/// field; a value built by hand can be checked with [`ModelManifest::validate`]. Deserializing
/// one (from a worker config, say) runs the same checks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "toml::Table")]
pub struct ModelManifest {
    /// A name for logs and metrics.
    pub name: String,
    /// Name of the model's image input (`N×3×H×W` float).
    pub input_name: String,
    /// Name of the model's logits output (`N×classes×h×w` float).
    pub output_name: String,
    /// Input width `W` in pixels.
    pub input_width: u32,
    /// Input height `H` in pixels.
    pub input_height: u32,
    /// Order of the input planes.
    pub channel_order: ChannelOrder,
    /// Per-channel mean in 0..1 pixel units, R, G, B (whatever `channel_order` is).
    pub mean: [f32; 3],
    /// Per-channel standard deviation in 0..1 pixel units, R, G, B.
    pub std: [f32; 3],
    /// What the logit channels stand for.
    pub classes: ClassSet,
    /// Input size over logits size: 1 = full-resolution logits, 8 = logits at 1/8 (rounded up).
    pub output_stride: u32,
    /// Numeric type of the model.
    pub precision: Precision,
    /// Where the model and its weights came from (free text for logs; optional).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// A manifest that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// There is no manifest next to the model.
    #[error(
        "model manifest {} not found: every model needs a TOML manifest with the same name next to it \
         (see engines/tiny/tiny-seg.toml for an example)",
        path.display()
    )]
    Missing {
        /// Where the manifest was looked for.
        path: PathBuf,
    },
    /// The manifest exists but cannot be read.
    #[error("cannot read model manifest {}: {source}", path.display())]
    Read {
        /// The manifest.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The manifest is not valid TOML.
    #[error("model manifest {} is not valid TOML: {message}", path.display())]
    Syntax {
        /// The manifest.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A field is missing, of the wrong type, out of range, or unknown.
    #[error("model manifest {}: {error}", path.display())]
    Field {
        /// The manifest.
        path: PathBuf,
        /// Which field and why.
        error: FieldError,
    },
}

impl ManifestError {
    /// The field at fault, for a [`ManifestError::Field`].
    #[must_use]
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Field { error, .. } => Some(&error.field),
            _ => None,
        }
    }
}

/// One field of a manifest that is missing, of the wrong type, out of range, or unknown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The field's name.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl FieldError {
    fn new(field: &str, reason: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "field `{}`: {}", self.field, self.reason)
    }
}

impl std::error::Error for FieldError {}

/// The required fields.
const FIELDS: [&str; 11] = [
    "name",
    "input_name",
    "output_name",
    "input_width",
    "input_height",
    "channel_order",
    "mean",
    "std",
    "classes",
    "output_stride",
    "precision",
];
/// The optional fields.
const OPTIONAL_FIELDS: [&str; 1] = ["source"];

impl ModelManifest {
    /// The manifest path of a model: `<dir>/<stem>.toml` for `<dir>/<stem>.onnx`.
    #[must_use]
    pub fn path_for(model_path: &Path) -> PathBuf {
        model_path.with_extension("toml")
    }

    /// Reads and checks the manifest next to `model_path` (`model.onnx` → `model.toml`).
    ///
    /// # Errors
    ///
    /// [`ManifestError::Missing`] when there is no such file, [`ManifestError::Read`],
    /// [`ManifestError::Syntax`], or [`ManifestError::Field`] naming the first bad field.
    pub fn load(model_path: &Path) -> Result<Self, ManifestError> {
        let path = Self::path_for(model_path);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ManifestError::Missing { path });
            }
            Err(source) => return Err(ManifestError::Read { path, source }),
        };
        Self::from_toml_str(&text, &path)
    }

    /// Parses and checks a manifest; `path` is only used in error messages.
    ///
    /// # Errors
    ///
    /// [`ManifestError::Syntax`] or [`ManifestError::Field`].
    pub fn from_toml_str(text: &str, path: &Path) -> Result<Self, ManifestError> {
        let table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ManifestError::Syntax {
                    path: path.to_owned(),
                    message: e.to_string().trim_end().to_owned(),
                })?;
        Self::from_table(&table).map_err(|error| ManifestError::Field {
            path: path.to_owned(),
            error,
        })
    }

    fn from_table(table: &toml::Table) -> Result<Self, FieldError> {
        if let Some(unknown) = table
            .keys()
            .find(|k| !FIELDS.contains(&k.as_str()) && !OPTIONAL_FIELDS.contains(&k.as_str()))
        {
            return Err(FieldError::new(
                unknown,
                format!(
                    "unknown field (the fields are: {}, and optionally {})",
                    FIELDS.join(", "),
                    OPTIONAL_FIELDS.join(", ")
                ),
            ));
        }
        let manifest = Self {
            name: get_str(table, "name")?.to_owned(),
            input_name: get_str(table, "input_name")?.to_owned(),
            output_name: get_str(table, "output_name")?.to_owned(),
            input_width: get_u32(table, "input_width")?,
            input_height: get_u32(table, "input_height")?,
            channel_order: match get_str(table, "channel_order")? {
                "rgb" => ChannelOrder::Rgb,
                "bgr" => ChannelOrder::Bgr,
                other => {
                    return Err(FieldError::new(
                        "channel_order",
                        format!("`{other}` is not one of \"rgb\", \"bgr\""),
                    ));
                }
            },
            mean: get_f32x3(table, "mean")?,
            std: get_f32x3(table, "std")?,
            classes: match get_str(table, "classes")? {
                "cityscapes-train" => ClassSet::CityscapesTrain,
                "cityscapes-labels" => ClassSet::CityscapesLabels,
                other => {
                    return Err(FieldError::new(
                        "classes",
                        format!(
                            "`{other}` is not one of \"cityscapes-train\" (19 classes), \
                             \"cityscapes-labels\" (34 classes)"
                        ),
                    ));
                }
            },
            output_stride: get_u32(table, "output_stride")?,
            precision: match get_str(table, "precision")? {
                "fp32" => Precision::Fp32,
                "fp16" => Precision::Fp16,
                "int8" => Precision::Int8,
                other => {
                    return Err(FieldError::new(
                        "precision",
                        format!("`{other}` is not one of \"fp32\", \"fp16\", \"int8\""),
                    ));
                }
            },
            source: table
                .get("source")
                .map(|_| get_str(table, "source").map(str::to_owned))
                .transpose()?,
        };
        manifest.validate()?;
        Ok(manifest)
    }

    /// Checks the values of every field (ranges, non-empty names).
    ///
    /// # Errors
    ///
    /// A [`FieldError`] naming the first bad field.
    pub fn validate(&self) -> Result<(), FieldError> {
        for (field, value) in [
            ("name", &self.name),
            ("input_name", &self.input_name),
            ("output_name", &self.output_name),
        ] {
            if value.trim().is_empty() {
                return Err(FieldError::new(field, "must not be empty"));
            }
        }
        for (field, value) in [
            ("input_width", self.input_width),
            ("input_height", self.input_height),
        ] {
            if value == 0 || value > MAX_INPUT_SIDE {
                return Err(FieldError::new(
                    field,
                    format!("{value} is not in 1..={MAX_INPUT_SIDE}"),
                ));
            }
        }
        for (i, m) in self.mean.iter().enumerate() {
            if !m.is_finite() || !(0.0..=1.0).contains(m) {
                return Err(FieldError::new(
                    "mean",
                    format!(
                        "element {i} is {m}: the mean is in 0..1 pixel units \
                         (ImageNet: [0.485, 0.456, 0.406], not [123.675, 116.28, 103.53])"
                    ),
                ));
            }
        }
        for (i, s) in self.std.iter().enumerate() {
            if !s.is_finite() || *s <= 0.0 || *s > 1.0 {
                return Err(FieldError::new(
                    "std",
                    format!(
                        "element {i} is {s}: the standard deviation is in 0..1 pixel units and \
                         above 0 (ImageNet: [0.229, 0.224, 0.225], not [58.395, 57.12, 57.375])"
                    ),
                ));
            }
        }
        if !OUTPUT_STRIDES.contains(&self.output_stride) {
            return Err(FieldError::new(
                "output_stride",
                format!("{} is not one of {OUTPUT_STRIDES:?}", self.output_stride),
            ));
        }
        Ok(())
    }

    /// Number of logit channels.
    #[must_use]
    pub const fn num_classes(&self) -> usize {
        self.classes.num_classes()
    }

    /// Size of the logits, `(width, height)`: the input size over `output_stride`, rounded up
    /// (what a stack of stride-2 convolutions with "same" padding gives).
    #[must_use]
    pub const fn logits_size(&self) -> (u32, u32) {
        (
            self.input_width.div_ceil(self.output_stride),
            self.input_height.div_ceil(self.output_stride),
        )
    }

    /// Number of `f32` values of one preprocessed image: `3 × H × W`.
    #[must_use]
    pub const fn input_len(&self) -> usize {
        3 * self.input_width as usize * self.input_height as usize
    }

    /// Number of `f32` logits of one image: `classes × h × w`.
    #[must_use]
    pub const fn logits_len(&self) -> usize {
        let (w, h) = self.logits_size();
        self.num_classes() * w as usize * h as usize
    }
}

impl TryFrom<toml::Table> for ModelManifest {
    type Error = FieldError;

    fn try_from(table: toml::Table) -> Result<Self, FieldError> {
        Self::from_table(&table)
    }
}

fn get<'t>(table: &'t toml::Table, field: &str) -> Result<&'t toml::Value, FieldError> {
    table
        .get(field)
        .ok_or_else(|| FieldError::new(field, "missing"))
}

fn get_str<'t>(table: &'t toml::Table, field: &str) -> Result<&'t str, FieldError> {
    let value = get(table, field)?;
    value.as_str().ok_or_else(|| {
        FieldError::new(field, format!("must be a string, not {}", value.type_str()))
    })
}

fn get_u32(table: &toml::Table, field: &str) -> Result<u32, FieldError> {
    let value = get(table, field)?;
    let int = value.as_integer().ok_or_else(|| {
        FieldError::new(
            field,
            format!("must be an integer, not {}", value.type_str()),
        )
    })?;
    u32::try_from(int).map_err(|_| FieldError::new(field, format!("{int} is out of range")))
}

fn get_f32x3(table: &toml::Table, field: &str) -> Result<[f32; 3], FieldError> {
    let value = get(table, field)?;
    let array = value.as_array().ok_or_else(|| {
        FieldError::new(
            field,
            format!("must be an array of 3 numbers, not {}", value.type_str()),
        )
    })?;
    if array.len() != 3 {
        return Err(FieldError::new(
            field,
            format!(
                "must have 3 elements (one per channel), not {}",
                array.len()
            ),
        ));
    }
    let mut out = [0.0_f32; 3];
    for (i, (slot, v)) in out.iter_mut().zip(array).enumerate() {
        let x = match v {
            toml::Value::Float(f) => *f,
            // Integers are accepted too (`std = [1, 1, 1]`); they are small, so exact.
            #[allow(clippy::cast_precision_loss)]
            toml::Value::Integer(i) => *i as f64,
            other => {
                return Err(FieldError::new(
                    field,
                    format!("element {i} must be a number, not {}", other.type_str()),
                ));
            }
        };
        #[allow(clippy::cast_possible_truncation)]
        {
            *slot = x as f32;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testing::TempDir;

    const VALID: &str = r#"
name = "tiny-seg"
input_name = "input"
output_name = "logits"
input_width = 128
input_height = 96
channel_order = "rgb"
mean = [0.485, 0.456, 0.406]
std = [0.229, 0.224, 0.225]
classes = "cityscapes-train"
output_stride = 8
precision = "fp32"
"#;

    fn parse(text: &str) -> Result<ModelManifest, ManifestError> {
        ModelManifest::from_toml_str(text, Path::new("test.toml"))
    }

    /// `VALID` with the line of `field` replaced by `line` (or removed when `line` is empty).
    fn with_line(field: &str, line: &str) -> String {
        VALID
            .lines()
            .map(|l| {
                if l.starts_with(&format!("{field} =")) {
                    line
                } else {
                    l
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn valid_manifest_parses() {
        let m = parse(VALID).unwrap();
        assert_eq!(m.name, "tiny-seg");
        assert_eq!(m.input_name, "input");
        assert_eq!(m.output_name, "logits");
        assert_eq!((m.input_width, m.input_height), (128, 96));
        assert_eq!(m.channel_order, ChannelOrder::Rgb);
        assert_eq!(m.mean, [0.485, 0.456, 0.406]);
        assert_eq!(m.std, [0.229, 0.224, 0.225]);
        assert_eq!(m.classes, ClassSet::CityscapesTrain);
        assert_eq!(m.num_classes(), 19);
        assert_eq!(m.output_stride, 8);
        assert_eq!(m.precision, Precision::Fp32);
        assert_eq!(m.logits_size(), (16, 12));
        assert_eq!(m.input_len(), 3 * 128 * 96);
        assert_eq!(m.logits_len(), 19 * 16 * 12);
    }

    #[test]
    fn other_valid_values_parse() {
        let text = with_line("channel_order", r#"channel_order = "bgr""#);
        let text = text.replace(r#""cityscapes-train""#, r#""cityscapes-labels""#);
        let text = text.replace("std = [0.229, 0.224, 0.225]", "std = [1, 1, 1]");
        let text = text.replace("output_stride = 8", "output_stride = 1");
        let m = parse(&text).unwrap();
        assert_eq!(m.channel_order, ChannelOrder::Bgr);
        assert_eq!(m.classes, ClassSet::CityscapesLabels);
        assert_eq!(m.num_classes(), 34);
        assert_eq!(m.std, [1.0; 3]);
        assert_eq!(m.logits_size(), (128, 96));
    }

    #[test]
    fn logits_size_rounds_up() {
        let mut m = parse(VALID).unwrap();
        (m.input_width, m.input_height) = (520, 513);
        assert_eq!(m.logits_size(), (65, 65));
    }

    #[test]
    fn each_invalid_field_is_named() {
        let cases: &[(&str, &str)] = &[
            ("name", r#"name = """#),
            ("name", "name = 3"),
            ("input_name", r#"input_name = " ""#),
            ("output_name", "output_name = true"),
            ("input_width", "input_width = 0"),
            ("input_width", "input_width = -5"),
            ("input_width", "input_width = 100000"),
            ("input_width", r#"input_width = "128""#),
            ("input_height", "input_height = 12.5"),
            ("channel_order", r#"channel_order = "rgba""#),
            ("channel_order", r#"channel_order = "RGB""#),
            ("mean", "mean = [0.485, 0.456]"),
            ("mean", "mean = [123.675, 116.28, 103.53]"),
            ("mean", r#"mean = [0.5, "a", 0.5]"#),
            ("mean", "mean = 0.5"),
            ("mean", "mean = [nan, 0.5, 0.5]"),
            ("std", "std = [0.229, 0.0, 0.225]"),
            ("std", "std = [58.395, 57.12, 57.375]"),
            ("std", "std = [0.2, 0.2, 0.2, 0.2]"),
            ("classes", r#"classes = "coco""#),
            ("classes", "classes = 19"),
            ("output_stride", "output_stride = 3"),
            ("output_stride", "output_stride = 0"),
            ("precision", r#"precision = "fp64""#),
        ];
        for (field, line) in cases {
            let err = parse(&with_line(field, line)).unwrap_err();
            assert_eq!(err.field(), Some(*field), "{line}: {err}");
            let message = err.to_string();
            assert!(message.contains(&format!("`{field}`")), "{message}");
            assert!(message.contains("test.toml"), "{message}");
        }
    }

    #[test]
    fn each_missing_field_is_named() {
        for field in FIELDS {
            let err = parse(&with_line(field, "")).unwrap_err();
            assert_eq!(err.field(), Some(field), "{err}");
            assert!(err.to_string().contains("missing"), "{err}");
        }
    }

    #[test]
    fn source_is_optional_and_must_be_a_string() {
        assert_eq!(parse(VALID).unwrap().source, None);
        let m = parse(&format!("{VALID}\nsource = \"demo, seed 7\"\n")).unwrap();
        assert_eq!(m.source.as_deref(), Some("demo, seed 7"));
        let err = parse(&format!("{VALID}\nsource = 7\n")).unwrap_err();
        assert_eq!(err.field(), Some("source"), "{err}");
    }

    #[test]
    fn unknown_field_is_rejected() {
        let err = parse(&format!("{VALID}\ninput_widht = 128\n")).unwrap_err();
        assert_eq!(err.field(), Some("input_widht"), "{err}");
    }

    #[test]
    fn bad_toml_is_a_syntax_error() {
        let err = parse("name = \"unterminated\n").unwrap_err();
        assert!(matches!(err, ManifestError::Syntax { .. }), "{err}");
    }

    #[test]
    fn load_finds_toml_next_to_model() {
        let dir = TempDir::new();
        let model = dir.path().join("net.onnx");
        std::fs::write(dir.path().join("net.toml"), VALID).unwrap();
        assert_eq!(ModelManifest::path_for(&model), dir.path().join("net.toml"));
        assert_eq!(ModelManifest::load(&model).unwrap().name, "tiny-seg");
    }

    #[test]
    fn missing_toml_is_an_error() {
        let dir = TempDir::new();
        let err = ModelManifest::load(&dir.path().join("absent.onnx")).unwrap_err();
        match &err {
            ManifestError::Missing { path } => assert_eq!(path, &dir.path().join("absent.toml")),
            other => panic!("expected Missing, got {other:?}"),
        }
        assert!(err.to_string().contains("absent.toml"));
    }

    #[test]
    fn serializes_to_the_manifest_spelling() {
        let m = parse(VALID).unwrap();
        let text = toml::to_string(&m).unwrap();
        assert!(text.contains(r#"classes = "cityscapes-train""#), "{text}");
        assert!(text.contains(r#"channel_order = "rgb""#), "{text}");
        assert_eq!(parse(&text).unwrap(), m);
    }
}
