//! A driver's controls as a table that can be searched by name.
//!
//! Vendor controls (NVIDIA's encoder controls on Jetson, say) live in a private id range that
//! has moved between driver releases and that a driver may simply lack. Walking the driver's own
//! list (`VIDIOC_QUERYCTRL` with `V4L2_CTRL_FLAG_NEXT_CTRL | V4L2_CTRL_FLAG_NEXT_COMPOUND`) and
//! matching the names it reports finds them where they are, and tells us plainly when one is
//! missing, instead of an `EINVAL` from a blind `VIDIOC_S_CTRL`.

use super::bindings as b;

/// What kind of value a control takes (`enum v4l2_ctrl_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlKind {
    /// A 32-bit integer in a range.
    Integer,
    /// On or off.
    Boolean,
    /// One of a list of named choices.
    Menu,
    /// An action with no value.
    Button,
    /// A 64-bit integer.
    Integer64,
    /// Text.
    String,
    /// A set of bits.
    Bitmask,
    /// One of a list of integers.
    IntegerMenu,
    /// A structure set through a pointer and a size (the type number as the driver gave it).
    Compound(u32),
    /// A type this SDK does not know.
    Other(u32),
}

impl ControlKind {
    const fn from_raw(raw: u32) -> Self {
        match raw {
            b::V4L2_CTRL_TYPE_INTEGER => Self::Integer,
            b::V4L2_CTRL_TYPE_BOOLEAN => Self::Boolean,
            b::V4L2_CTRL_TYPE_MENU => Self::Menu,
            b::V4L2_CTRL_TYPE_BUTTON => Self::Button,
            b::V4L2_CTRL_TYPE_INTEGER64 => Self::Integer64,
            b::V4L2_CTRL_TYPE_STRING => Self::String,
            b::V4L2_CTRL_TYPE_BITMASK => Self::Bitmask,
            b::V4L2_CTRL_TYPE_INTEGER_MENU => Self::IntegerMenu,
            raw if raw >= b::V4L2_CTRL_COMPOUND_TYPES => Self::Compound(raw),
            raw => Self::Other(raw),
        }
    }

    /// Whether the value is a 32-bit integer (integer, boolean, menu, bitmask).
    #[must_use]
    pub const fn is_integer(self) -> bool {
        matches!(
            self,
            Self::Integer | Self::Boolean | Self::Menu | Self::Bitmask | Self::IntegerMenu
        )
    }
}

/// One control as the driver describes it (`struct v4l2_queryctrl`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlInfo {
    /// The control id (`V4L2_CID_*`).
    pub id: u32,
    /// The name the driver gives it ("Video Bitrate", "FWHT I-Frame QP Value", …).
    pub name: String,
    /// Its value type.
    pub kind: ControlKind,
    /// Smallest value (integer kinds).
    pub minimum: i32,
    /// Largest value (integer kinds).
    pub maximum: i32,
    /// Step between values.
    pub step: i32,
    /// The driver's default.
    pub default: i32,
    /// `V4L2_CTRL_FLAG_*`.
    pub flags: u32,
}

impl ControlInfo {
    pub(crate) fn from_raw(raw: &b::v4l2_queryctrl) -> Self {
        Self {
            id: raw.id,
            name: super::device::c_string(&raw.name),
            kind: ControlKind::from_raw(raw.type_),
            minimum: raw.minimum,
            maximum: raw.maximum,
            step: raw.step,
            default: raw.default_value,
            flags: raw.flags,
        }
    }

    /// Whether the control can be set now: not disabled, not read-only.
    #[must_use]
    pub const fn is_writable(&self) -> bool {
        self.flags & (b::V4L2_CTRL_FLAG_DISABLED | b::V4L2_CTRL_FLAG_READ_ONLY) == 0
    }

    /// The name as `v4l2-ctl --list-ctrls` prints it ([`normalize_name`]).
    #[must_use]
    pub fn short_name(&self) -> String {
        normalize_name(&self.name)
    }
}

/// A control name in the form `v4l2-ctl` prints it: lower case, every run of characters that
/// are not ASCII letters or digits turned into one `_`, none at either end ("Video GOP Size" →
/// `video_gop_size`, "H.264 I-Frame Period" → `h_264_i_frame_period`). Names are compared in
/// this form, so a caller may use either spelling.
#[must_use]
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut gap = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            if gap && !out.is_empty() {
                out.push('_');
            }
            gap = false;
            out.push(c.to_ascii_lowercase());
        } else {
            gap = true;
        }
    }
    out
}

/// Every control a device reported, searchable by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ControlTable {
    controls: Vec<ControlInfo>,
}

impl ControlTable {
    /// A table of these controls (what [`crate::v4l2::Device::controls`] found, or a test's own).
    #[must_use]
    pub const fn new(controls: Vec<ControlInfo>) -> Self {
        Self { controls }
    }

    /// All controls, in the driver's order.
    #[must_use]
    pub fn controls(&self) -> &[ControlInfo] {
        &self.controls
    }

    /// The control called `name` (compared in [`normalize_name`] form).
    #[must_use]
    pub fn by_name(&self, name: &str) -> Option<&ControlInfo> {
        let wanted = normalize_name(name);
        self.controls.iter().find(|c| c.short_name() == wanted)
    }

    /// The first control matching one of `names`, in order; failing that, the control with
    /// `id` when one is given (a driver that names the control differently but kept the id of
    /// the vendor's header).
    #[must_use]
    pub fn find(&self, names: &[&str], id: Option<u32>) -> Option<&ControlInfo> {
        names
            .iter()
            .find_map(|name| self.by_name(name))
            .or_else(|| id.and_then(|id| self.controls.iter().find(|c| c.id == id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control(id: u32, name: &str, kind: ControlKind) -> ControlInfo {
        ControlInfo {
            id,
            name: name.into(),
            kind,
            minimum: 0,
            maximum: 100,
            step: 1,
            default: 0,
            flags: 0,
        }
    }

    #[test]
    fn names_are_compared_as_v4l2_ctl_prints_them() {
        assert_eq!(normalize_name("Video GOP Size"), "video_gop_size");
        assert_eq!(
            normalize_name("H.264 I-Frame Period"),
            "h_264_i_frame_period"
        );
        assert_eq!(
            normalize_name("  FWHT I-Frame QP Value "),
            "fwht_i_frame_qp_value"
        );
        assert_eq!(
            normalize_name("insert_sps_pps_at_idr"),
            "insert_sps_pps_at_idr"
        );
        assert_eq!(normalize_name("--"), "");
    }

    #[test]
    fn lookups_go_by_name_then_by_id() {
        let table = ControlTable::new(vec![
            control(0x0099_0900 + 203, "Video GOP Size", ControlKind::Integer),
            control(
                0x0099_0900 + 535,
                "Vendor SPS/PPS thing",
                ControlKind::Boolean,
            ),
        ]);
        assert_eq!(
            table.by_name("video_gop_size").map(|c| c.id),
            Some(0x0099_09cb)
        );
        assert!(table.by_name("Video Bitrate").is_none());
        // By name first, in the order given.
        let found = table.find(&["Video Bitrate", "Video GOP Size"], None);
        assert_eq!(found.map(|c| c.name.as_str()), Some("Video GOP Size"));
        // Unknown names, known id.
        let found = table.find(&["Insert SPS PPS at IDR"], Some(0x0099_0900 + 535));
        assert_eq!(found.map(|c| c.name.as_str()), Some("Vendor SPS/PPS thing"));
        // Neither.
        assert!(table.find(&["Enable Max Performance"], Some(1)).is_none());
    }

    #[test]
    fn kinds_and_writability_follow_the_header() {
        assert_eq!(ControlKind::from_raw(1), ControlKind::Integer);
        assert_eq!(ControlKind::from_raw(0x0100), ControlKind::Compound(0x0100));
        assert_eq!(ControlKind::from_raw(0x42), ControlKind::Other(0x42));
        assert!(ControlKind::Menu.is_integer() && !ControlKind::Compound(0x100).is_integer());
        let mut info = control(1, "x", ControlKind::Integer);
        assert!(info.is_writable());
        info.flags = b::V4L2_CTRL_FLAG_READ_ONLY;
        assert!(!info.is_writable());
    }
}
