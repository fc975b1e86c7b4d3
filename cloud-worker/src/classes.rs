//! The Cityscapes class tables: names, ids, train ids and colours exactly as in the official
//! `cityscapesScripts/helpers/labels.py`.
//!
//! A model predicts either the 19 *train ids* (the usual benchmark setting) or the 34 *label
//! ids* (what the original system used). [`ClassTable`] names which one, and the free functions
//! convert between the two numberings the way `cityscapesScripts` does.

use std::fmt;
use std::str::FromStr;

/// Train id that marks a label id ignored in training and evaluation.
pub const IGNORE_TRAIN_ID: u8 = 255;

/// Label id `unlabeled`, the label id that train ids without a class map back to.
pub const UNLABELED_LABEL_ID: u8 = 0;

/// One row of `labels.py` (label ids 0..=33; `license plate`, id −1, is left out because no
/// model predicts it and no `labelIds` PNG contains it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Label {
    /// Class name as in `labels.py`.
    pub name: &'static str,
    /// Label id (the value in `*_gtFine_labelIds.png`).
    pub id: u8,
    /// Train id (the value in `*_gtFine_trainIds.png`), [`IGNORE_TRAIN_ID`] if ignored.
    pub train_id: u8,
    /// Display colour, RGB.
    pub color: [u8; 3],
}

const fn l(name: &'static str, id: u8, train_id: u8, color: [u8; 3]) -> Label {
    Label {
        name,
        id,
        train_id,
        color,
    }
}

/// All 34 label ids, indexed by label id.
pub const LABELS: [Label; 34] = [
    l("unlabeled", 0, 255, [0, 0, 0]),
    l("ego vehicle", 1, 255, [0, 0, 0]),
    l("rectification border", 2, 255, [0, 0, 0]),
    l("out of roi", 3, 255, [0, 0, 0]),
    l("static", 4, 255, [0, 0, 0]),
    l("dynamic", 5, 255, [111, 74, 0]),
    l("ground", 6, 255, [81, 0, 81]),
    l("road", 7, 0, [128, 64, 128]),
    l("sidewalk", 8, 1, [244, 35, 232]),
    l("parking", 9, 255, [250, 170, 160]),
    l("rail track", 10, 255, [230, 150, 140]),
    l("building", 11, 2, [70, 70, 70]),
    l("wall", 12, 3, [102, 102, 156]),
    l("fence", 13, 4, [190, 153, 153]),
    l("guard rail", 14, 255, [180, 165, 180]),
    l("bridge", 15, 255, [150, 100, 100]),
    l("tunnel", 16, 255, [150, 120, 90]),
    l("pole", 17, 5, [153, 153, 153]),
    l("polegroup", 18, 255, [153, 153, 153]),
    l("traffic light", 19, 6, [250, 170, 30]),
    l("traffic sign", 20, 7, [220, 220, 0]),
    l("vegetation", 21, 8, [107, 142, 35]),
    l("terrain", 22, 9, [152, 251, 152]),
    l("sky", 23, 10, [70, 130, 180]),
    l("person", 24, 11, [220, 20, 60]),
    l("rider", 25, 12, [255, 0, 0]),
    l("car", 26, 13, [0, 0, 142]),
    l("truck", 27, 14, [0, 0, 70]),
    l("bus", 28, 15, [0, 60, 100]),
    l("caravan", 29, 255, [0, 0, 90]),
    l("trailer", 30, 255, [0, 0, 110]),
    l("train", 31, 16, [0, 80, 100]),
    l("motorcycle", 32, 17, [0, 0, 230]),
    l("bicycle", 33, 18, [119, 11, 32]),
];

/// Label id of each train id 0..=18, indexed by train id.
const TRAIN_TO_LABEL: [u8; 19] = [
    7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33,
];

/// Number of train classes.
pub const NUM_TRAIN_CLASSES: usize = 19;

/// Number of label ids.
pub const NUM_LABEL_IDS: usize = 34;

/// Which Cityscapes numbering a model's output channels use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum ClassTable {
    /// The 19 train classes, trainIds 0..=18 (manifest name `cityscapes-train`).
    #[default]
    CityscapesTrain,
    /// The 34 label ids 0..=33 (manifest name `cityscapes-labels`).
    CityscapesLabels,
}

/// A manifest named a class table this worker does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown class table {0:?} (expected \"cityscapes-train\" or \"cityscapes-labels\")")]
pub struct UnknownClassTable(pub String);

impl ClassTable {
    /// The name used in engine manifests and config.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::CityscapesTrain => "cityscapes-train",
            Self::CityscapesLabels => "cityscapes-labels",
        }
    }

    /// Number of classes, i.e. output channels of the model: 19 or 34.
    #[must_use]
    pub const fn num_classes(self) -> usize {
        match self {
            Self::CityscapesTrain => NUM_TRAIN_CLASSES,
            Self::CityscapesLabels => NUM_LABEL_IDS,
        }
    }

    /// The `labels.py` row of class index `class` in this table, `None` if out of range.
    #[must_use]
    pub fn label(self, class: u8) -> Option<&'static Label> {
        let id = match self {
            Self::CityscapesTrain => *TRAIN_TO_LABEL.get(usize::from(class))?,
            Self::CityscapesLabels => class,
        };
        LABELS.get(usize::from(id))
    }

    /// Name of class index `class`, `None` if out of range.
    #[must_use]
    pub fn name(self, class: u8) -> Option<&'static str> {
        self.label(class).map(|l| l.name)
    }

    /// Colour of class index `class`; black for an index out of range, so that garbage in a
    /// class map renders as "unlabeled" rather than failing.
    #[must_use]
    pub fn color(self, class: u8) -> [u8; 3] {
        self.label(class).map_or([0, 0, 0], |l| l.color)
    }

    /// A full 256-entry palette (out-of-range entries black), for table look-ups in hot loops
    /// and for upload as a constant table to the GPU.
    #[must_use]
    pub fn palette(self) -> [[u8; 3]; 256] {
        let mut p = [[0u8; 3]; 256];
        for (class, entry) in (0..=u8::MAX).zip(p.iter_mut()) {
            *entry = self.color(class);
        }
        p
    }

    /// Label id of class index `class` (what `*_gtFine_labelIds.png` holds). Out-of-range
    /// indices map to `unlabeled` (0).
    #[must_use]
    pub fn to_label_id(self, class: u8) -> u8 {
        match self {
            Self::CityscapesTrain => train_id_to_label_id(class),
            Self::CityscapesLabels if usize::from(class) < NUM_LABEL_IDS => class,
            Self::CityscapesLabels => UNLABELED_LABEL_ID,
        }
    }

    /// Train id of class index `class` (what `*_gtFine_trainIds.png` holds). Ignored or
    /// out-of-range classes map to [`IGNORE_TRAIN_ID`].
    #[must_use]
    pub fn to_train_id(self, class: u8) -> u8 {
        match self {
            Self::CityscapesTrain if usize::from(class) < NUM_TRAIN_CLASSES => class,
            Self::CityscapesTrain => IGNORE_TRAIN_ID,
            Self::CityscapesLabels => label_id_to_train_id(class),
        }
    }
}

impl fmt::Display for ClassTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ClassTable {
    type Err = UnknownClassTable;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cityscapes-train" => Ok(Self::CityscapesTrain),
            "cityscapes-labels" => Ok(Self::CityscapesLabels),
            other => Err(UnknownClassTable(other.to_owned())),
        }
    }
}

/// Label id of a train id. Like `cityscapesScripts`' `trainId2label` (built over the reversed
/// list, so the first row with a train id wins), train id 255 maps to `unlabeled` (0); so does
/// every other value without a class (19..=254).
#[must_use]
pub fn train_id_to_label_id(train_id: u8) -> u8 {
    TRAIN_TO_LABEL
        .get(usize::from(train_id))
        .copied()
        .unwrap_or(UNLABELED_LABEL_ID)
}

/// Train id of a label id; [`IGNORE_TRAIN_ID`] for ignored label ids and for values above 33.
#[must_use]
pub fn label_id_to_train_id(label_id: u8) -> u8 {
    LABELS
        .get(usize::from(label_id))
        .map_or(IGNORE_TRAIN_ID, |l| l.train_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_rows_are_indexed_by_id() {
        for (i, label) in LABELS.iter().enumerate() {
            assert_eq!(usize::from(label.id), i);
        }
    }

    #[test]
    fn train_ids_are_a_bijection_onto_0_to_18() {
        let mut seen = [false; NUM_TRAIN_CLASSES];
        for label in LABELS.iter().filter(|l| l.train_id != IGNORE_TRAIN_ID) {
            let t = usize::from(label.train_id);
            assert!(!seen[t], "train id {t} twice");
            seen[t] = true;
            assert_eq!(TRAIN_TO_LABEL[t], label.id);
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn train_table_agrees_with_label_table() {
        let train = ClassTable::CityscapesTrain;
        let labels = ClassTable::CityscapesLabels;
        assert_eq!(train.num_classes(), 19);
        assert_eq!(labels.num_classes(), 34);
        for t in 0..19u8 {
            let id = train_id_to_label_id(t);
            assert_eq!(train.name(t), labels.name(id));
            assert_eq!(train.color(t), labels.color(id));
            assert_eq!(label_id_to_train_id(id), t);
        }
    }

    #[test]
    fn spot_check_official_values() {
        let t = ClassTable::CityscapesTrain;
        let expect: [(&str, [u8; 3]); 19] = [
            ("road", [128, 64, 128]),
            ("sidewalk", [244, 35, 232]),
            ("building", [70, 70, 70]),
            ("wall", [102, 102, 156]),
            ("fence", [190, 153, 153]),
            ("pole", [153, 153, 153]),
            ("traffic light", [250, 170, 30]),
            ("traffic sign", [220, 220, 0]),
            ("vegetation", [107, 142, 35]),
            ("terrain", [152, 251, 152]),
            ("sky", [70, 130, 180]),
            ("person", [220, 20, 60]),
            ("rider", [255, 0, 0]),
            ("car", [0, 0, 142]),
            ("truck", [0, 0, 70]),
            ("bus", [0, 60, 100]),
            ("train", [0, 80, 100]),
            ("motorcycle", [0, 0, 230]),
            ("bicycle", [119, 11, 32]),
        ];
        for (i, (name, color)) in (0u8..).zip(expect) {
            assert_eq!(t.name(i), Some(name));
            assert_eq!(t.color(i), color);
        }
        let ids = ClassTable::CityscapesLabels;
        assert_eq!(ids.name(0), Some("unlabeled"));
        assert_eq!(ids.name(7), Some("road"));
        assert_eq!(ids.name(26), Some("car"));
        assert_eq!(ids.name(33), Some("bicycle"));
        assert_eq!(ids.name(34), None);
        assert_eq!(t.name(19), None);
    }

    #[test]
    fn conversions_at_the_edges() {
        assert_eq!(train_id_to_label_id(255), 0);
        assert_eq!(train_id_to_label_id(19), 0);
        assert_eq!(label_id_to_train_id(0), 255);
        assert_eq!(label_id_to_train_id(9), 255); // parking
        assert_eq!(label_id_to_train_id(34), 255);
        assert_eq!(label_id_to_train_id(200), 255);
        assert_eq!(ClassTable::CityscapesLabels.to_label_id(40), 0);
        assert_eq!(ClassTable::CityscapesLabels.to_train_id(26), 13);
        assert_eq!(ClassTable::CityscapesTrain.to_label_id(13), 26);
        assert_eq!(ClassTable::CityscapesTrain.to_train_id(19), 255);
    }

    #[test]
    fn palette_matches_color() {
        for table in [ClassTable::CityscapesTrain, ClassTable::CityscapesLabels] {
            let p = table.palette();
            for c in 0..=255u8 {
                assert_eq!(p[usize::from(c)], table.color(c));
            }
        }
    }

    #[test]
    fn parse_round_trip() {
        for table in [ClassTable::CityscapesTrain, ClassTable::CityscapesLabels] {
            assert_eq!(table.as_str().parse::<ClassTable>(), Ok(table));
            assert_eq!(table.to_string(), table.as_str());
        }
        assert!("cityscapes".parse::<ClassTable>().is_err());
        assert!("Cityscapes-Train".parse::<ClassTable>().is_err());
    }
}
