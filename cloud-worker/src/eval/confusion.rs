//! The confusion matrix of an evaluation and the metrics computed from it.
//!
//! The matrix has one row per ground-truth class and one column per predicted class, plus a
//! **void** row and column (index [`ConfusionMatrix::void`]): with [`EvalClasses::Train`], a
//! ground-truth label id without a train id (`unlabeled`, `ego vehicle`, …, `parking`,
//! `caravan`, …) is void, and so is a predicted one. With [`EvalClasses::LabelIds`] every
//! label id is a class and the void row and column stay empty.
//!
//! # Metric definitions
//!
//! `M[g][p]` is the number of pixels with ground truth `g` and prediction `p`, `V` the void
//! index, `C` the classes (without void). For a class `c`:
//!
//! - `TP_c = M[c][c]`
//! - `FN_c = Σ_p M[c][p] − TP_c`, over every column *including void*: a pixel of class `c`
//!   predicted as a void label id is a miss;
//! - `FP_c = Σ_{g ∈ C, g ≠ c} M[g][c]`: pixels whose ground truth is void are not counted;
//! - `IoU_c = TP_c / (TP_c + FP_c + FN_c)`, NaN when the denominator is 0 (the class is neither
//!   in the ground truth nor predicted on a non-void pixel);
//! - `accuracy_c = TP_c / (TP_c + FN_c)`, NaN when the class is not in the ground truth.
//!
//! These are `cityscapesScripts`' `evalPixelLevelSemanticLabeling` definitions
//! (`getIouScoreForLabel`). From them:
//!
//! - **mIoU** ([`Metrics::miou`]): the mean of `IoU_c` over the classes whose IoU is not NaN,
//!   summed in class order: the official `averageScoreClasses`.
//! - **mIoU over the classes present** ([`Metrics::miou_present`]): the mean of `IoU_c` over the
//!   classes with ground-truth pixels (a class predicted but absent from the ground truth has
//!   IoU 0 and lowers the official mIoU; here it is left out).
//! - **Pixel accuracy**: `Σ_c TP_c / Σ_c Σ_p M[c][p]`, correct pixels over non-void ground-truth
//!   pixels.
//! - **Mean accuracy**: the mean of `accuracy_c` over the classes present in the ground truth.
//! - **mIoU with background** ([`Metrics::miou_with_background`]): void becomes one more class,
//!   *background*, and every class (background included) gets the plain IoU of the whole matrix:
//!   `TP_k = M[k][k]`, `FP_k = Σ_{g ≠ k} M[g][k]` (void rows included), `FN_k = Σ_{p ≠ k} M[k][p]`;
//!   the mean runs over the `C + 1` classes whose IoU is not NaN. This is the figure of the
//!   original system, whose models predicted the 34 label ids and so could predict void. A
//!   model that predicts only train ids never predicts void, so its background IoU is 0
//!   whenever the ground truth has void pixels.

use serde::Serialize;

use crate::classes::{self, IGNORE_TRAIN_ID, NUM_LABEL_IDS, NUM_TRAIN_CLASSES};
use crate::storage::LabelFormat;

/// Which classes an evaluation is over.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub enum EvalClasses {
    /// The 19 Cityscapes train classes (the benchmark setting); label ids without a train id
    /// are void.
    #[default]
    #[serde(rename = "train")]
    Train,
    /// The 34 Cityscapes label ids, each its own class; nothing is void.
    #[serde(rename = "labels")]
    LabelIds,
}

impl EvalClasses {
    /// Number of classes, without void: 19 or 34.
    #[must_use]
    pub const fn num_classes(self) -> usize {
        match self {
            Self::Train => NUM_TRAIN_CLASSES,
            Self::LabelIds => NUM_LABEL_IDS,
        }
    }

    /// The name used on the command line and in reports.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::LabelIds => "labels",
        }
    }

    /// The class table whose indices are these classes.
    #[must_use]
    pub const fn table(self) -> classes::ClassTable {
        match self {
            Self::Train => classes::ClassTable::CityscapesTrain,
            Self::LabelIds => classes::ClassTable::CityscapesLabels,
        }
    }

    /// Class index of a ground-truth label id: `Some(void)` for a label id without a class,
    /// `None` for a value that is not a label id (above 33).
    fn ground_truth_class(self, label_id: u8) -> Option<usize> {
        if usize::from(label_id) >= NUM_LABEL_IDS {
            return None;
        }
        Some(match self {
            Self::Train => self.void_or(classes::label_id_to_train_id(label_id)),
            Self::LabelIds => usize::from(label_id),
        })
    }

    /// Class index of a predicted value in `format`; `None` for a value that format cannot
    /// hold.
    fn predicted_class(self, value: u8, format: LabelFormat) -> Option<usize> {
        match (self, format) {
            (_, LabelFormat::LabelIds) => self.ground_truth_class(value),
            (Self::Train, LabelFormat::TrainIds) => match value {
                IGNORE_TRAIN_ID => Some(NUM_TRAIN_CLASSES),
                v if usize::from(v) < NUM_TRAIN_CLASSES => Some(usize::from(v)),
                _ => None,
            },
            // As cityscapesScripts' `trainId2label`: train id 255 is `unlabeled`.
            (Self::LabelIds, LabelFormat::TrainIds) => (value == IGNORE_TRAIN_ID
                || usize::from(value) < NUM_TRAIN_CLASSES)
                .then(|| usize::from(classes::train_id_to_label_id(value))),
        }
    }

    /// `train_id` as a class index, void for [`IGNORE_TRAIN_ID`].
    fn void_or(self, train_id: u8) -> usize {
        if train_id == IGNORE_TRAIN_ID {
            self.num_classes()
        } else {
            usize::from(train_id)
        }
    }
}

/// A label image that cannot be counted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PixelError {
    /// The prediction and the ground truth differ in size.
    #[error("the prediction has {prediction} pixels, the ground truth {ground_truth}")]
    Length {
        /// Pixels of the ground truth.
        ground_truth: usize,
        /// Pixels of the prediction.
        prediction: usize,
    },
    /// The ground truth holds a value that is not a Cityscapes label id.
    #[error("ground truth value {value} ({pixels} pixels) is not a Cityscapes label id (0..=33)")]
    GroundTruthValue {
        /// The value.
        value: u8,
        /// How many pixels have it.
        pixels: u64,
    },
    /// The prediction holds a value its format cannot hold.
    #[error("prediction value {value} ({pixels} pixels) is not a {expected}")]
    PredictionValue {
        /// The value.
        value: u8,
        /// How many pixels have it.
        pixels: u64,
        /// What the values should be.
        expected: &'static str,
    },
}

/// Pixel counts per (ground truth, prediction) class pair; see the [module documentation](self).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfusionMatrix {
    classes: EvalClasses,
    /// `(n + 1)²` counts, row-major: row = ground truth, column = prediction, index `n` void.
    counts: Vec<u64>,
}

impl ConfusionMatrix {
    /// An empty matrix.
    #[must_use]
    pub fn new(classes: EvalClasses) -> Self {
        let side = classes.num_classes() + 1;
        Self {
            classes,
            counts: vec![0; side * side],
        }
    }

    /// A matrix with the given counts, row-major, `(num_classes + 1)²` of them (void last);
    /// `None` if there are not that many.
    #[must_use]
    pub fn from_counts(classes: EvalClasses, counts: Vec<u64>) -> Option<Self> {
        let side = classes.num_classes() + 1;
        (counts.len() == side * side).then_some(Self { classes, counts })
    }

    /// The classes.
    #[must_use]
    pub const fn classes(&self) -> EvalClasses {
        self.classes
    }

    /// The index of the void row and column: the number of classes.
    #[must_use]
    pub const fn void(&self) -> usize {
        self.classes.num_classes()
    }

    /// Rows (and columns): classes plus void.
    #[must_use]
    pub const fn side(&self) -> usize {
        self.classes.num_classes() + 1
    }

    /// Pixels with ground truth `gt` and prediction `prediction` (0 out of range).
    #[must_use]
    pub fn get(&self, gt: usize, prediction: usize) -> u64 {
        if gt >= self.side() || prediction >= self.side() {
            return 0;
        }
        self.counts[gt * self.side() + prediction]
    }

    /// The rows, ground truth first to last, void last.
    pub fn rows(&self) -> impl Iterator<Item = &[u64]> {
        self.counts.chunks_exact(self.side())
    }

    /// Every pixel counted.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Adds another matrix of the same classes; `false` (and nothing added) if the classes
    /// differ.
    pub fn merge(&mut self, other: &Self) -> bool {
        if other.classes != self.classes {
            return false;
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        true
    }

    /// Counts one image: `ground_truth` holds Cityscapes label ids (`*_gtFine_labelIds.png`),
    /// `prediction` the values of `format`, pixel for pixel.
    ///
    /// # Errors
    ///
    /// [`PixelError`] when the lengths differ or a value is not valid; nothing is counted then.
    pub fn add_image(
        &mut self,
        ground_truth: &[u8],
        prediction: &[u8],
        format: LabelFormat,
    ) -> Result<(), PixelError> {
        if ground_truth.len() != prediction.len() {
            return Err(PixelError::Length {
                ground_truth: ground_truth.len(),
                prediction: prediction.len(),
            });
        }
        // Count the raw value pairs first (a 256×256 histogram), then map the pairs that occur:
        // one increment per pixel, and every value is checked before anything is added.
        let mut pairs = vec![0u64; 256 * 256];
        for (&g, &p) in ground_truth.iter().zip(prediction) {
            pairs[usize::from(g) << 8 | usize::from(p)] += 1;
        }
        let gt_class: [Option<usize>; 256] = std::array::from_fn(|v| {
            u8::try_from(v)
                .ok()
                .and_then(|v| self.classes.ground_truth_class(v))
        });
        let predicted_class: [Option<usize>; 256] = std::array::from_fn(|v| {
            u8::try_from(v)
                .ok()
                .and_then(|v| self.classes.predicted_class(v, format))
        });
        let row_sum = |g: usize| pairs[g << 8..(g + 1) << 8].iter().sum::<u64>();
        let column_sum = |p: usize| (0..256).map(|g| pairs[g << 8 | p]).sum::<u64>();
        for value in 0..=u8::MAX {
            let v = usize::from(value);
            if gt_class[v].is_none() && row_sum(v) > 0 {
                return Err(PixelError::GroundTruthValue {
                    value,
                    pixels: row_sum(v),
                });
            }
            if predicted_class[v].is_none() && column_sum(v) > 0 {
                return Err(PixelError::PredictionValue {
                    value,
                    pixels: column_sum(v),
                    expected: match format {
                        LabelFormat::LabelIds => "Cityscapes label id (0..=33)",
                        LabelFormat::TrainIds => "Cityscapes train id (0..=18, 255)",
                    },
                });
            }
        }
        let side = self.side();
        for (pair, &count) in pairs.iter().enumerate() {
            if count == 0 {
                continue;
            }
            if let (Some(g), Some(p)) = (gt_class[pair >> 8], predicted_class[pair & 0xff]) {
                self.counts[g * side + p] += count;
            }
        }
        Ok(())
    }

    /// Every metric of the [module documentation](self).
    #[must_use]
    pub fn metrics(&self) -> Metrics {
        let n = self.classes.num_classes();
        let void = n;
        let row = |g: usize| {
            self.counts[g * (n + 1)..(g + 1) * (n + 1)]
                .iter()
                .sum::<u64>()
        };
        let column_over =
            |p: usize, rows: std::ops::Range<usize>| rows.map(|g| self.get(g, p)).sum::<u64>();
        let table = self.classes.table();

        let mut per_class = Vec::with_capacity(n);
        for c in 0..n {
            let tp = self.get(c, c);
            let gt_pixels = row(c);
            let predicted_pixels = column_over(c, 0..n);
            let false_negatives = gt_pixels - tp;
            let false_positives = predicted_pixels - tp;
            let void_predicted_as = self.get(void, c);
            let class = u8::try_from(c).unwrap_or(u8::MAX);
            per_class.push(ClassMetrics {
                id: class,
                label_id: table.to_label_id(class),
                name: table.name(class).unwrap_or("?"),
                gt_pixels,
                predicted_pixels,
                true_positives: tp,
                false_positives,
                false_negatives,
                iou: ratio(tp, tp + false_positives + false_negatives),
                accuracy: ratio(tp, gt_pixels),
                iou_with_background: ratio(
                    tp,
                    tp + false_positives + void_predicted_as + false_negatives,
                ),
            });
        }
        let background = {
            let tp = self.get(void, void);
            let gt_pixels = row(void);
            let predicted_pixels = column_over(void, 0..n + 1);
            BackgroundMetrics {
                gt_pixels,
                predicted_pixels,
                true_positives: tp,
                iou: ratio(tp, gt_pixels + predicted_pixels - tp),
            }
        };

        let evaluated_pixels: u64 = per_class.iter().map(|c| c.gt_pixels).sum();
        let correct: u64 = per_class.iter().map(|c| c.true_positives).sum();
        let present = || per_class.iter().filter(|c| c.gt_pixels > 0);
        let miou = Mean::of(per_class.iter().map(|c| c.iou));
        let miou_with_background = Mean::of(
            per_class
                .iter()
                .map(|c| c.iou_with_background)
                .chain([background.iou]),
        );
        let miou_present = Mean::of(present().map(|c| c.iou));
        let mean_accuracy = Mean::of(present().map(|c| c.accuracy));
        Metrics {
            classes: self.classes,
            total_pixels: self.total(),
            evaluated_pixels,
            void_pixels: background.gt_pixels,
            pixel_accuracy: ratio(correct, evaluated_pixels),
            mean_accuracy: mean_accuracy.value,
            miou: miou.value,
            miou_classes: miou.count,
            miou_with_background: miou_with_background.value,
            miou_with_background_classes: miou_with_background.count,
            miou_present: miou_present.value,
            present_classes: miou_present.count,
            per_class,
            background,
        }
    }
}

/// `a / b` in `f64`, NaN when `b` is 0.
fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        return f64::NAN;
    }
    // Pixel counts stay far below 2^53, where the conversion is exact.
    #[allow(clippy::cast_precision_loss)]
    {
        a as f64 / b as f64
    }
}

/// The mean of the values that are not NaN, summed in order (as `cityscapesScripts`'
/// `getScoreAverage`), and how many there were.
struct Mean {
    value: f64,
    count: usize,
}

impl Mean {
    fn of(values: impl Iterator<Item = f64>) -> Self {
        let (mut sum, mut count) = (0.0, 0usize);
        for v in values.filter(|v| !v.is_nan()) {
            sum += v;
            count += 1;
        }
        // A count of classes (at most 35) converts exactly.
        #[allow(clippy::cast_precision_loss)]
        let value = if count == 0 {
            f64::NAN
        } else {
            sum / count as f64
        };
        Self { value, count }
    }
}

/// The figures of one class; NaN where a figure is undefined (serialized as `null`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClassMetrics {
    /// The class index: the train id, or the label id with [`EvalClasses::LabelIds`].
    pub id: u8,
    /// The Cityscapes label id of the class.
    pub label_id: u8,
    /// The Cityscapes class name.
    pub name: &'static str,
    /// Ground-truth pixels of the class: `TP + FN`.
    pub gt_pixels: u64,
    /// Pixels predicted as the class on non-void ground truth: `TP + FP`.
    pub predicted_pixels: u64,
    /// `TP`.
    pub true_positives: u64,
    /// `FP` (void ground truth not counted).
    pub false_positives: u64,
    /// `FN` (predicted void counted).
    pub false_negatives: u64,
    /// `TP / (TP + FP + FN)`, the official Cityscapes IoU.
    pub iou: f64,
    /// `TP / (TP + FN)`.
    pub accuracy: f64,
    /// The IoU when void is a class: void ground truth predicted as this class counts as `FP`.
    pub iou_with_background: f64,
}

/// The figures of void taken as a *background* class (for [`Metrics::miou_with_background`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BackgroundMetrics {
    /// Void ground-truth pixels.
    pub gt_pixels: u64,
    /// Pixels predicted as a void label id, whatever their ground truth.
    pub predicted_pixels: u64,
    /// Void ground truth predicted void.
    pub true_positives: u64,
    /// `TP / (gt_pixels + predicted_pixels − TP)`.
    pub iou: f64,
}

/// Every metric of a confusion matrix; see the [module documentation](self) for the exact
/// definitions. NaN where a figure is undefined (serialized as `null`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Metrics {
    /// The classes evaluated.
    pub classes: EvalClasses,
    /// Every pixel counted, void included.
    pub total_pixels: u64,
    /// Non-void ground-truth pixels: what pixel accuracy and the class metrics count.
    pub evaluated_pixels: u64,
    /// Void ground-truth pixels.
    pub void_pixels: u64,
    /// Correct pixels over non-void ground-truth pixels.
    pub pixel_accuracy: f64,
    /// Mean of the per-class accuracies over the classes present in the ground truth.
    pub mean_accuracy: f64,
    /// The official Cityscapes mIoU: mean IoU over the classes whose IoU is not NaN.
    pub miou: f64,
    /// How many classes [`Self::miou`] averages.
    pub miou_classes: usize,
    /// Mean IoU with void as one more class, over the classes (background included) whose IoU
    /// is not NaN.
    pub miou_with_background: f64,
    /// How many classes [`Self::miou_with_background`] averages.
    pub miou_with_background_classes: usize,
    /// Mean IoU over the classes present in the ground truth.
    pub miou_present: f64,
    /// How many classes are present in the ground truth.
    pub present_classes: usize,
    /// Per class, in class order.
    pub per_class: Vec<ClassMetrics>,
    /// Void as a class.
    pub background: BackgroundMetrics,
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRAIN: EvalClasses = EvalClasses::Train;
    const V: usize = NUM_TRAIN_CLASSES;

    /// A train-class matrix with the given `(gt, prediction, count)` entries.
    fn matrix(entries: &[(usize, usize, u64)]) -> ConfusionMatrix {
        let mut counts = vec![0; 20 * 20];
        for &(g, p, n) in entries {
            counts[g * 20 + p] += n;
        }
        ConfusionMatrix::from_counts(TRAIN, counts).unwrap()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn hand_computed_train_matrix() {
        // road (0): 8 right, 2 as sidewalk, 1 as void; sidewalk (1): 3 right, 1 as road, 2 as
        // car (13), which is absent from the ground truth; void ground truth: 4 predicted road
        // (not an FP of road), 5 predicted void.
        let m = matrix(&[
            (0, 0, 8),
            (0, 1, 2),
            (0, V, 1),
            (1, 1, 3),
            (1, 0, 1),
            (1, 13, 2),
            (V, 0, 4),
            (V, V, 5),
        ]);
        let r = m.metrics();
        let road = &r.per_class[0];
        assert_eq!(road.name, "road");
        assert_eq!((road.id, road.label_id), (0, 7));
        assert_eq!(
            (
                road.true_positives,
                road.false_positives,
                road.false_negatives
            ),
            (8, 1, 3)
        );
        assert_eq!((road.gt_pixels, road.predicted_pixels), (11, 9));
        assert!(close(road.iou, 8.0 / 12.0));
        assert!(close(road.accuracy, 8.0 / 11.0));
        assert!(close(road.iou_with_background, 8.0 / 16.0));
        let sidewalk = &r.per_class[1];
        assert_eq!(
            (
                sidewalk.true_positives,
                sidewalk.false_positives,
                sidewalk.false_negatives
            ),
            (3, 2, 3)
        );
        assert!(close(sidewalk.iou, 3.0 / 8.0));
        // car: predicted, absent: IoU 0, accuracy undefined.
        let car = &r.per_class[13];
        assert_eq!(car.name, "car");
        assert_eq!(car.iou, 0.0);
        assert!(car.accuracy.is_nan());
        // Neither in the ground truth nor predicted: NaN, left out of the means.
        assert!(r.per_class[2].iou.is_nan());

        assert_eq!(
            (r.total_pixels, r.evaluated_pixels, r.void_pixels),
            (26, 17, 9)
        );
        assert!(close(r.pixel_accuracy, 11.0 / 17.0));
        assert!(close(r.mean_accuracy, (8.0 / 11.0 + 3.0 / 6.0) / 2.0));
        assert_eq!(r.miou_classes, 3);
        assert!(close(r.miou, (8.0 / 12.0 + 3.0 / 8.0 + 0.0) / 3.0));
        assert_eq!(r.present_classes, 2);
        assert!(close(r.miou_present, (8.0 / 12.0 + 3.0 / 8.0) / 2.0));
        // Background: TP 5, ground truth 9, predicted 6 (5 + road's 1).
        assert_eq!(
            (
                r.background.gt_pixels,
                r.background.predicted_pixels,
                r.background.true_positives
            ),
            (9, 6, 5)
        );
        assert!(close(r.background.iou, 5.0 / 10.0));
        assert_eq!(r.miou_with_background_classes, 4);
        assert!(close(
            r.miou_with_background,
            (8.0 / 16.0 + 3.0 / 8.0 + 0.0 + 5.0 / 10.0) / 4.0
        ));
    }

    #[test]
    fn perfect_prediction_and_empty_matrix() {
        let m = matrix(&[(0, 0, 10), (5, 5, 3), (V, V, 7)]);
        let r = m.metrics();
        assert_eq!(r.miou, 1.0);
        assert_eq!(r.miou_classes, 2);
        assert_eq!(r.miou_present, 1.0);
        assert_eq!(r.pixel_accuracy, 1.0);
        assert_eq!(r.mean_accuracy, 1.0);
        assert_eq!(r.miou_with_background, 1.0);
        assert_eq!(r.miou_with_background_classes, 3);

        let r = ConfusionMatrix::new(TRAIN).metrics();
        assert!(r.miou.is_nan() && r.pixel_accuracy.is_nan() && r.mean_accuracy.is_nan());
        assert_eq!(
            (r.miou_classes, r.present_classes, r.total_pixels),
            (0, 0, 0)
        );
    }

    #[test]
    fn a_train_id_model_loses_the_background_class() {
        // Void ground truth predicted as road: no FP for road officially, but with background
        // road's IoU drops and background's IoU is 0.
        let r = matrix(&[(0, 0, 6), (V, 0, 2)]).metrics();
        assert_eq!(r.miou, 1.0);
        assert!(close(r.per_class[0].iou_with_background, 6.0 / 8.0));
        assert_eq!(r.background.iou, 0.0);
        assert!(close(r.miou_with_background, (6.0 / 8.0) / 2.0));
    }

    #[test]
    fn add_image_maps_label_ids_to_train_ids() {
        let mut m = ConfusionMatrix::new(TRAIN);
        // gt: road(7), sidewalk(8), unlabeled(0), parking(9), car(26), car
        // pred: road, road, road, sky(23), car, static(4) (a void label id)
        let gt = [7, 8, 0, 9, 26, 26];
        let pred = [7, 7, 7, 23, 26, 4];
        m.add_image(&gt, &pred, LabelFormat::LabelIds).unwrap();
        assert_eq!(m.get(0, 0), 1);
        assert_eq!(m.get(1, 0), 1);
        assert_eq!(m.get(V, 0), 1);
        assert_eq!(m.get(V, 10), 1);
        assert_eq!(m.get(13, 13), 1);
        assert_eq!(m.get(13, V), 1);
        assert_eq!(m.total(), 6);

        let mut t = ConfusionMatrix::new(TRAIN);
        let pred_train = [0, 0, 0, 10, 13, 255];
        t.add_image(&gt, &pred_train, LabelFormat::TrainIds)
            .unwrap();
        assert_eq!(t, m);
    }

    #[test]
    fn add_image_rejects_bad_values_and_counts_nothing() {
        let mut m = ConfusionMatrix::new(TRAIN);
        assert_eq!(
            m.add_image(&[7, 34, 34], &[7, 7, 7], LabelFormat::LabelIds),
            Err(PixelError::GroundTruthValue {
                value: 34,
                pixels: 2
            })
        );
        assert!(matches!(
            m.add_image(&[7, 7], &[7, 40], LabelFormat::LabelIds),
            Err(PixelError::PredictionValue { value: 40, .. })
        ));
        assert!(matches!(
            m.add_image(&[7, 7], &[19, 0], LabelFormat::TrainIds),
            Err(PixelError::PredictionValue { value: 19, .. })
        ));
        // 255 is ignore in train ids, not in label ids.
        assert!(m.add_image(&[7], &[255], LabelFormat::LabelIds).is_err());
        assert!(matches!(
            m.add_image(&[7, 7], &[7], LabelFormat::LabelIds),
            Err(PixelError::Length { .. })
        ));
        assert_eq!(m.total(), 0);
        m.add_image(&[7], &[255], LabelFormat::TrainIds).unwrap();
        assert_eq!(m.get(0, V), 1);
    }

    #[test]
    fn label_id_mode_has_no_void() {
        let mut m = ConfusionMatrix::new(EvalClasses::LabelIds);
        m.add_image(&[0, 0, 7, 9], &[0, 7, 7, 9], LabelFormat::LabelIds)
            .unwrap();
        assert_eq!(m.side(), 35);
        assert_eq!(
            (m.get(0, 0), m.get(0, 7), m.get(7, 7), m.get(9, 9)),
            (1, 1, 1, 1)
        );
        let r = m.metrics();
        assert_eq!(r.void_pixels, 0);
        assert_eq!(r.per_class[0].name, "unlabeled");
        assert_eq!(r.per_class[9].name, "parking");
        // unlabeled 1/2, road 1/2, parking 1: mean over the 3 with an IoU.
        assert!(close(r.miou, (0.5 + 0.5 + 1.0) / 3.0));
        assert!(r.background.iou.is_nan());
        assert_eq!(r.miou_with_background.to_bits(), r.miou.to_bits());
        // Train ids become label ids, 255 `unlabeled`.
        let mut t = ConfusionMatrix::new(EvalClasses::LabelIds);
        t.add_image(&[0, 7], &[255, 0], LabelFormat::TrainIds)
            .unwrap();
        assert_eq!((t.get(0, 0), t.get(7, 7)), (1, 1));
    }

    #[test]
    fn merge_adds_and_refuses_other_classes() {
        let mut a = matrix(&[(0, 0, 1)]);
        assert!(a.merge(&matrix(&[(0, 0, 2), (V, 3, 1)])));
        assert_eq!((a.get(0, 0), a.get(V, 3)), (3, 1));
        assert!(!a.merge(&ConfusionMatrix::new(EvalClasses::LabelIds)));
        assert_eq!(a.total(), 4);
        assert_eq!(a.get(99, 0), 0);
        assert!(ConfusionMatrix::from_counts(TRAIN, vec![0; 19 * 19]).is_none());
    }

    #[test]
    fn metrics_serialize_nan_as_null() {
        let text = serde_json::to_string(&ConfusionMatrix::new(TRAIN).metrics()).unwrap();
        assert!(text.contains(r#""miou":null"#), "{text}");
        assert!(text.contains(r#""classes":"train""#), "{text}");
    }
}
