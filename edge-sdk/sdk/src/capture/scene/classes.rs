//! The Cityscapes classes the street scene draws, with their `labelIds` and palette colours.

/// A class the scene draws. The discriminant is the Cityscapes `labelId` written into label
/// maps (`*_gtFine_labelIds.png`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum SceneClass {
    /// The driving surface, lane markings and crossings included.
    Road = 7,
    /// Pavements, kerbs, paved plazas.
    Sidewalk = 8,
    /// Buildings, their windows and doors included.
    Building = 11,
    /// Street lights, sign posts and their arms.
    Pole = 17,
    /// The plate of a traffic sign (its post is [`SceneClass::Pole`]).
    TrafficSign = 20,
    /// Trees (trunk and crown), hedges.
    Vegetation = 21,
    /// Grass verges and lawns.
    Terrain = 22,
    /// Sky.
    Sky = 23,
    /// Pedestrians.
    Person = 24,
    /// Cars and vans, parked or moving.
    Car = 26,
}

impl SceneClass {
    /// Every class the scene draws, in `labelId` order.
    pub const ALL: [Self; 10] = [
        Self::Road,
        Self::Sidewalk,
        Self::Building,
        Self::Pole,
        Self::TrafficSign,
        Self::Vegetation,
        Self::Terrain,
        Self::Sky,
        Self::Person,
        Self::Car,
    ];

    /// The Cityscapes `labelId`.
    #[must_use]
    pub const fn label_id(self) -> u8 {
        self as u8
    }

    /// The class of a `labelId`, if the scene draws it.
    #[must_use]
    pub const fn from_label_id(id: u8) -> Option<Self> {
        Some(match id {
            7 => Self::Road,
            8 => Self::Sidewalk,
            11 => Self::Building,
            17 => Self::Pole,
            20 => Self::TrafficSign,
            21 => Self::Vegetation,
            22 => Self::Terrain,
            23 => Self::Sky,
            24 => Self::Person,
            26 => Self::Car,
            _ => return None,
        })
    }

    /// The Cityscapes class name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Road => "road",
            Self::Sidewalk => "sidewalk",
            Self::Building => "building",
            Self::Pole => "pole",
            Self::TrafficSign => "traffic sign",
            Self::Vegetation => "vegetation",
            Self::Terrain => "terrain",
            Self::Sky => "sky",
            Self::Person => "person",
            Self::Car => "car",
        }
    }

    /// The Cityscapes palette colour (as in `*_gtFine_color.png`).
    #[must_use]
    pub const fn color(self) -> [u8; 3] {
        match self {
            Self::Road => [128, 64, 128],
            Self::Sidewalk => [244, 35, 232],
            Self::Building => [70, 70, 70],
            Self::Pole => [153, 153, 153],
            Self::TrafficSign => [220, 220, 0],
            Self::Vegetation => [107, 142, 35],
            Self::Terrain => [152, 251, 152],
            Self::Sky => [70, 130, 180],
            Self::Person => [220, 20, 60],
            Self::Car => [0, 0, 142],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_ids_round_trip() {
        for class in SceneClass::ALL {
            assert_eq!(SceneClass::from_label_id(class.label_id()), Some(class));
        }
        assert_eq!(SceneClass::from_label_id(0), None);
        assert_eq!(SceneClass::from_label_id(19), None);
    }
}
