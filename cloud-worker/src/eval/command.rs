//! The command line of `flowcloud-worker eval`.

use std::num::NonZeroUsize;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::confusion::EvalClasses;
use super::dataset::ImageLimits;
use super::run::{EvalOptions, MAX_BATCH, Source};
use crate::storage::LabelFormat;

/// What prediction files hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum PredictionFormat {
    /// Cityscapes label ids (0–33), files `*labelIds.png`: what cityscapesScripts reads.
    #[default]
    #[value(name = "labelIds")]
    LabelIds,
    /// Cityscapes train ids (0–18, 255 = ignore), files `*trainIds.png`.
    #[value(name = "trainIds")]
    TrainIds,
}

impl From<PredictionFormat> for LabelFormat {
    fn from(format: PredictionFormat) -> Self {
        match format {
            PredictionFormat::LabelIds => Self::LabelIds,
            PredictionFormat::TrainIds => Self::TrainIds,
        }
    }
}

/// The classes the metrics are computed over.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ClassesArg {
    /// The 19 Cityscapes train classes (the benchmark); label ids without a train id are void.
    #[default]
    Train,
    /// The 34 Cityscapes label ids, each its own class, none void.
    Labels,
}

impl From<ClassesArg> for EvalClasses {
    fn from(classes: ClassesArg) -> Self {
        match classes {
            ClassesArg::Train => Self::Train,
            ClassesArg::Labels => Self::LabelIds,
        }
    }
}

/// The arguments of `flowcloud-worker eval` (its help text is the doc comment of
/// [`crate::config::Command::Eval`]). Arguments that belong to one source conflict with the
/// other (`requires` would not do: clap lets a required argument be missing when it conflicts
/// with one present, and `--predictions` and `--model` conflict through their group).
#[derive(Debug, Clone, PartialEq, Eq, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["predictions", "model"])))]
pub struct EvalArgs {
    /// Dataset root holding gtFine/SPLIT/ (or any folder: then every *_gtFine_labelIds.png
    /// below it is the ground truth).
    #[arg(long, value_name = "DIR")]
    pub gt: PathBuf,

    /// Dataset split: the folder below gtFine/ and leftImg8bit/.
    #[arg(long, value_name = "SPLIT", default_value = "val")]
    pub split: String,

    /// Folder of predictions, searched recursively: each *labelIds.png (or *trainIds.png) file
    /// is matched to the ground truth by the {city}_{seq}_{frame} its name starts with, as
    /// cityscapesScripts does. A ground-truth file without a prediction is an error.
    #[arg(long, value_name = "DIR")]
    pub predictions: Option<PathBuf>,

    /// What the prediction files hold.
    #[arg(
        long,
        value_name = "FORMAT",
        default_value = "labelIds",
        conflicts_with = "model"
    )]
    pub prediction_format: PredictionFormat,

    /// Run this .onnx model (its manifest, same name with .toml, next to it) with ONNX Runtime
    /// over the images and evaluate its predictions.
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,

    /// Dataset root holding leftImg8bit/SPLIT/ (or any folder with the *_leftImg8bit.png
    /// images below it). Default: the --gt folder.
    #[arg(long, value_name = "DIR", conflicts_with = "predictions")]
    pub images: Option<PathBuf>,

    /// Write the model's predictions here as CITY/{city}_{seq}_{frame}_labelIds.png, the
    /// format --predictions and cityscapesScripts read.
    #[arg(long, value_name = "DIR", conflicts_with = "predictions")]
    pub write_predictions: Option<PathBuf>,

    /// Images per inference (a model with a fixed batch of 1 still runs them one at a time).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1,
        conflicts_with = "predictions",
        value_parser = clap::value_parser!(u16).range(1..=MAX_BATCH as i64)
    )]
    pub batch_size: u16,

    /// Inference threads, 0 = all cores.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        conflicts_with = "predictions"
    )]
    pub model_threads: usize,

    /// The classes the metrics are over.
    #[arg(long, value_name = "CLASSES", default_value = "train")]
    pub classes: ClassesArg,

    /// Write every number (per-class figures with names, the confusion matrix, pixel counts)
    /// as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Also print the confusion matrix (percent of each ground-truth row).
    #[arg(long)]
    pub print_confusion: bool,

    /// Largest image side accepted, in pixels; larger images are an error.
    #[arg(long, value_name = "PX", default_value_t = ImageLimits::default().max_side)]
    pub max_image_side: u32,

    /// No progress on standard error.
    #[arg(long, short)]
    pub quiet: bool,
}

impl EvalArgs {
    /// The evaluation these arguments ask for.
    #[must_use]
    pub fn to_options(&self) -> EvalOptions {
        let source = match (&self.predictions, &self.model) {
            (Some(dir), _) => Source::Predictions {
                dir: dir.clone(),
                format: self.prediction_format.into(),
            },
            // clap's `source` group makes one of the two present.
            (None, model) => Source::Model {
                model: model.clone().unwrap_or_default(),
                images: self.images.clone().unwrap_or_else(|| self.gt.clone()),
                threads: NonZeroUsize::new(self.model_threads),
                batch: usize::from(self.batch_size),
                write_predictions: self.write_predictions.clone(),
            },
        };
        EvalOptions {
            ground_truth: self.gt.clone(),
            split: self.split.clone(),
            classes: self.classes.into(),
            limits: ImageLimits {
                max_side: self.max_image_side,
                ..ImageLimits::default()
            },
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use clap::{CommandFactory, Parser};

    use super::*;
    use crate::config::{Cli, Command};

    fn parse(args: &[&str]) -> EvalArgs {
        let cli = Cli::try_parse_from(args).unwrap();
        match cli.command {
            Some(Command::Eval(args)) => *args,
            None => panic!("{args:?} is not eval"),
        }
    }

    #[test]
    fn every_eval_flag_has_help() {
        let cli = Cli::command();
        let eval = cli.find_subcommand("eval").unwrap();
        let help = eval.clone().render_long_help().to_string();
        for arg in eval.get_arguments() {
            let long = arg.get_long().unwrap();
            assert!(arg.get_help().is_some(), "--{long} has no doc comment");
            assert!(help.contains(&format!("--{long}")), "--{long} not in help");
        }
        assert_eq!(eval.get_arguments().count(), 14);
    }

    #[test]
    fn predictions_and_model_options() {
        let args = parse(&["w", "eval", "--gt", "/d", "--predictions", "/p"]);
        assert_eq!(
            args.to_options(),
            EvalOptions {
                ground_truth: PathBuf::from("/d"),
                split: "val".to_owned(),
                classes: EvalClasses::Train,
                limits: ImageLimits::default(),
                source: Source::Predictions {
                    dir: PathBuf::from("/p"),
                    format: LabelFormat::LabelIds,
                },
            }
        );
        let args = parse(&[
            "w",
            "eval",
            "--gt",
            "/d",
            "--split",
            "test",
            "--model",
            "/m.onnx",
            "--batch-size",
            "4",
            "--model-threads",
            "2",
            "--classes",
            "labels",
            "--max-image-side",
            "4096",
        ]);
        let options = args.to_options();
        assert_eq!(options.split, "test");
        assert_eq!(options.classes, EvalClasses::LabelIds);
        assert_eq!(options.limits.max_side, 4096);
        assert_eq!(
            options.source,
            Source::Model {
                model: PathBuf::from("/m.onnx"),
                images: PathBuf::from("/d"),
                threads: NonZeroUsize::new(2),
                batch: 4,
                write_predictions: None,
            }
        );
        let args = parse(&[
            "w",
            "eval",
            "--gt",
            "/d",
            "--predictions",
            "/p",
            "--prediction-format",
            "trainIds",
        ]);
        assert!(matches!(
            args.to_options().source,
            Source::Predictions {
                format: LabelFormat::TrainIds,
                ..
            }
        ));
    }

    #[test]
    fn plain_flags_still_serve() {
        let cli = Cli::try_parse_from(["w", "--max-batch", "8", "--print-config"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.into_config().unwrap().batching.max_batch, 8);
        assert!(Cli::try_parse_from(["w", "--max-batch", "8", "eval", "--gt", "/d"]).is_err());
        assert!(Cli::try_parse_from(["w", "eval", "--gt", "/d"]).is_err());
    }
}
