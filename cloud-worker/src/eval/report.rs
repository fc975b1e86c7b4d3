//! An evaluation as text (a table for people) and as JSON (every number).

use std::fmt::Write as _;

use serde::Serialize;

use super::confusion::{ConfusionMatrix, Metrics};
use super::run::Evaluation;

/// The JSON document `--json` writes.
#[derive(Serialize)]
struct JsonReport<'a> {
    /// "predictions" or "model".
    mode: &'static str,
    split: &'a str,
    ground_truth_dir: String,
    /// The predictions' folder, or the images' folder in model mode.
    source_dir: String,
    model: Option<&'a str>,
    images: usize,
    unmatched_predictions: usize,
    #[serde(flatten)]
    metrics: &'a Metrics,
    confusion_matrix: ConfusionJson<'a>,
}

/// The confusion matrix: `counts[g][p]` pixels with ground truth `labels[g]` and prediction
/// `labels[p]`.
#[derive(Serialize)]
struct ConfusionJson<'a> {
    rows: &'static str,
    columns: &'static str,
    labels: Vec<&'static str>,
    counts: Vec<&'a [u64]>,
}

/// The evaluation as a JSON document: the mode, folders and image count, every field of
/// [`Metrics`] (NaN written as `null`), and the confusion matrix with its labels (void last).
///
/// # Errors
///
/// Never in practice: serializing these types cannot fail; the error is `serde_json`'s.
pub fn json(
    evaluation: &Evaluation,
    metrics: &Metrics,
    split: &str,
) -> Result<String, serde_json::Error> {
    let matrix = &evaluation.matrix;
    let report = JsonReport {
        mode: if evaluation.model_name.is_some() {
            "model"
        } else {
            "predictions"
        },
        split,
        ground_truth_dir: evaluation.ground_truth_dir.display().to_string(),
        source_dir: evaluation.source_dir.display().to_string(),
        model: evaluation.model_name.as_deref(),
        images: evaluation.images,
        unmatched_predictions: evaluation.unmatched_predictions,
        metrics,
        confusion_matrix: ConfusionJson {
            rows: "ground truth",
            columns: "prediction",
            labels: labels(matrix),
            counts: matrix.rows().collect(),
        },
    };
    let mut text = serde_json::to_string_pretty(&report)?;
    text.push('\n');
    Ok(text)
}

/// Class names in matrix order, `void` last.
fn labels(matrix: &ConfusionMatrix) -> Vec<&'static str> {
    let table = matrix.classes().table();
    (0..matrix.void())
        .map(|c| {
            table
                .name(u8::try_from(c).unwrap_or(u8::MAX))
                .unwrap_or("?")
        })
        .chain(["void"])
        .collect()
}

/// `0.1234`, or `-` for NaN.
fn figure(value: f64) -> String {
    if value.is_nan() {
        "-".to_owned()
    } else {
        format!("{value:.4}")
    }
}

/// The per-class table and the totals, as printed by `flowcloud-worker eval`.
#[must_use]
pub fn table(evaluation: &Evaluation, metrics: &Metrics) -> String {
    let mut out = String::new();
    let classes = match metrics.classes {
        super::EvalClasses::Train => "the 19 Cityscapes train classes",
        super::EvalClasses::LabelIds => "the 34 Cityscapes label ids",
    };
    let _ = writeln!(
        out,
        "ground truth  {} ({} images)",
        evaluation.ground_truth_dir.display(),
        evaluation.images
    );
    match &evaluation.model_name {
        Some(name) => {
            let _ = writeln!(
                out,
                "model         {name}, on the images in {}",
                evaluation.source_dir.display()
            );
        }
        None => {
            let _ = writeln!(out, "predictions   {}", evaluation.source_dir.display());
        }
    }
    let _ = writeln!(out, "classes       {classes}");
    if evaluation.unmatched_predictions > 0 {
        let _ = writeln!(
            out,
            "prediction files without ground truth, ignored: {}",
            evaluation.unmatched_predictions
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<22} {:>3} {:>5} {:>8} {:>8} {:>12} {:>12}",
        "class", "id", "label", "IoU", "acc", "GT pixels", "predicted"
    );
    for c in &metrics.per_class {
        let _ = writeln!(
            out,
            "{:<22} {:>3} {:>5} {:>8} {:>8} {:>12} {:>12}",
            c.name,
            c.id,
            c.label_id,
            figure(c.iou),
            figure(c.accuracy),
            c.gt_pixels,
            c.predicted_pixels
        );
    }
    let bg = &metrics.background;
    let _ = writeln!(
        out,
        "{:<22} {:>3} {:>5} {:>8} {:>8} {:>12} {:>12}",
        "background (void)",
        "-",
        "-",
        figure(bg.iou),
        "-",
        bg.gt_pixels,
        bg.predicted_pixels
    );
    let _ = writeln!(out, "{}", "-".repeat(76));
    let _ = writeln!(
        out,
        "pixels: {} ({} evaluated, {} void)",
        metrics.total_pixels, metrics.evaluated_pixels, metrics.void_pixels
    );
    let rows = [
        (
            "pixel accuracy",
            metrics.pixel_accuracy,
            "correct / non-void ground-truth pixels".to_owned(),
        ),
        (
            "mean accuracy",
            metrics.mean_accuracy,
            format!("{} classes in the ground truth", metrics.present_classes),
        ),
        (
            "mIoU (Cityscapes)",
            metrics.miou,
            format!(
                "{} classes with an IoU; as cityscapesScripts",
                metrics.miou_classes
            ),
        ),
        (
            "mIoU (with background)",
            metrics.miou_with_background,
            format!(
                "{} classes, void as one background class",
                metrics.miou_with_background_classes
            ),
        ),
        (
            "mIoU (classes present)",
            metrics.miou_present,
            format!("{} classes in the ground truth", metrics.present_classes),
        ),
    ];
    for (name, value, note) in rows {
        let _ = writeln!(out, "{name:<24} {:>8}   ({note})", figure(value));
    }
    out
}

/// The confusion matrix as percentages of each ground-truth row (rows with no pixels left out),
/// columns headed by class index, `V` for void.
#[must_use]
pub fn confusion_table(matrix: &ConfusionMatrix) -> String {
    let names = labels(matrix);
    let mut out = String::new();
    let _ = write!(out, "{:<26}", "ground truth \\ prediction %");
    for p in 0..matrix.side() {
        if p == matrix.void() {
            let _ = write!(out, " {:>3}", "V");
        } else {
            let _ = write!(out, " {p:>3}");
        }
    }
    let _ = writeln!(out);
    for (g, row) in matrix.rows().enumerate() {
        let total: u64 = row.iter().sum();
        if total == 0 {
            continue;
        }
        let label = if g == matrix.void() {
            "void (V)".to_owned()
        } else {
            format!("{} ({g})", names[g])
        };
        let _ = write!(out, "{label:<26}");
        for &count in row {
            // Rounded percentage; only for display.
            #[allow(clippy::cast_precision_loss)]
            let percent = (count as f64 * 100.0 / total as f64).round();
            if count == 0 {
                let _ = write!(out, " {:>3}", ".");
            } else {
                let _ = write!(out, " {percent:>3}");
            }
        }
        let _ = writeln!(out);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::eval::EvalClasses;
    use crate::storage::LabelFormat;

    fn evaluation() -> Evaluation {
        let mut matrix = ConfusionMatrix::new(EvalClasses::Train);
        matrix
            .add_image(&[7, 7, 26, 0], &[7, 26, 26, 0], LabelFormat::LabelIds)
            .unwrap();
        Evaluation {
            matrix,
            images: 1,
            ground_truth_dir: PathBuf::from("/data/gtFine/val"),
            source_dir: PathBuf::from("/data/results"),
            unmatched_predictions: 2,
            model_name: None,
        }
    }

    #[test]
    fn json_has_every_number() {
        let e = evaluation();
        let m = e.matrix.metrics();
        let text = json(&e, &m, "val").unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["mode"], "predictions");
        assert_eq!(v["classes"], "train");
        assert_eq!(v["images"], 1);
        assert_eq!(v["unmatched_predictions"], 2);
        assert_eq!(v["per_class"][0]["name"], "road");
        assert_eq!(v["per_class"][0]["iou"], 0.5);
        assert_eq!(v["per_class"][13]["iou"], 0.5);
        assert!(v["per_class"][1]["iou"].is_null());
        assert_eq!(v["miou"], 0.5);
        assert_eq!(v["miou_classes"], 2);
        assert_eq!(v["background"]["iou"], 1.0);
        assert_eq!(v["confusion_matrix"]["labels"][19], "void");
        assert_eq!(v["confusion_matrix"]["counts"][0][13], 1);
        assert_eq!(v["confusion_matrix"]["counts"][19][19], 1);
        assert_eq!(v["total_pixels"], 4);
    }

    #[test]
    fn table_shows_classes_and_totals() {
        let e = evaluation();
        let text = table(&e, &e.matrix.metrics());
        assert!(text.contains("road"), "{text}");
        assert!(
            text.lines()
                .any(|l| l.starts_with("mIoU (Cityscapes)") && l.contains(" 0.5000 ")),
            "{text}"
        );
        assert!(text.contains("(1 images)"), "{text}");
        assert!(text.contains("without ground truth, ignored: 2"), "{text}");
        let confusion = confusion_table(&e.matrix);
        assert!(confusion.contains("road (0)"), "{confusion}");
        assert!(confusion.contains("void (V)"), "{confusion}");
        assert!(!confusion.contains("sidewalk"), "{confusion}");
    }
}
