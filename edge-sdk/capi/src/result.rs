//! The result code every export returns, and the panic boundary that guarantees one.

use core::ffi::{c_char, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// What a call did. `FC_RESULT_OK` is the one success; `FC_RESULT_DROPPED` is a normal outcome
/// of `fc_sender_push_au`; every other value is an error, and the call changed nothing.
///
/// The values start at 9000 so that they cannot be mistaken for 0/-1 conventions or errno
/// values: compare with `FC_RESULT_OK`, not with 0. `fc_result_str` names each one.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum fc_result {
    /// Success.
    #[default]
    Ok = 9000,
    /// `fc_sender_push_au` did not take the frame: every hand-off slot is in use, or a frame
    /// before it was not taken and this one is not a keyframe. Not an error: the SDK asks for
    /// a keyframe (`fc_sender_take_keyframe_request`) and counts the drop.
    Dropped = 9001,
    /// A pointer argument that must not be NULL is NULL.
    NullArgument = 9002,
    /// The handle is not a live `fc_sender`: never returned by `fc_sender_new`, or already
    /// freed (a double free or a use after free is reported, not undefined).
    InvalidHandle = 9003,
    /// A configuration field is out of range, or a string is empty, too long or not UTF-8.
    InvalidConfig = 9004,
    /// The server address could not be parsed or resolved.
    AddressUnresolved = 9005,
    /// The access unit has length 0.
    EmptyAccessUnit = 9006,
    /// The access unit is larger than `fc_sender_config.max_access_unit_bytes`.
    AccessUnitTooLarge = 9007,
    /// The bytes are not an Annex-B H.264 access unit the sender can send: data before the
    /// first start code, no NAL unit, more than 64 NAL units, or a NAL unit with the forbidden
    /// bit or an RTP-only/reserved type.
    InvalidAccessUnit = 9008,
    /// `keyframe` says IDR but the access unit has no IDR slice (NAL type 5), or the reverse.
    KeyframeMismatch = 9009,
    /// The SDK's own camera feeds this sender (`fc_sender_start_camera`); frames cannot be
    /// pushed and keyframe requests go to its encoder.
    CameraRunning = 9010,
    /// The sender was stopped (`fc_sender_stop`); only `fc_sender_stats` and `fc_sender_free`
    /// still work.
    Stopped = 9011,
    /// Called from a result or event callback, where it would wait for itself
    /// (`fc_sender_stop`, `fc_sender_free`).
    WrongThread = 9012,
    /// Not built into this library or not available on this platform (openh264 without the
    /// `openh264` feature, V4L2 outside Linux, an unknown source or encoder kind).
    Unsupported = 9013,
    /// The operating system refused something: creating the poller or a thread.
    Io = 9014,
    /// The camera source could not be opened or stopped delivering frames.
    Capture = 9015,
    /// The encoder could not be created or failed.
    Encoder = 9016,
    /// A bug inside the library (a Rust panic) was caught at the boundary; the sender that
    /// hit it refuses further work.
    Panic = 9017,
}

impl fc_result {
    /// Every value, in order (for tests and `fc_result_str`).
    pub(crate) const ALL: [Self; 18] = [
        Self::Ok,
        Self::Dropped,
        Self::NullArgument,
        Self::InvalidHandle,
        Self::InvalidConfig,
        Self::AddressUnresolved,
        Self::EmptyAccessUnit,
        Self::AccessUnitTooLarge,
        Self::InvalidAccessUnit,
        Self::KeyframeMismatch,
        Self::CameraRunning,
        Self::Stopped,
        Self::WrongThread,
        Self::Unsupported,
        Self::Io,
        Self::Capture,
        Self::Encoder,
        Self::Panic,
    ];

    /// A short description, NUL-terminated, with static lifetime.
    #[must_use]
    pub const fn description(self) -> &'static core::ffi::CStr {
        match self {
            Self::Ok => c"ok",
            Self::Dropped => c"frame dropped (hand-off full or waiting for a keyframe)",
            Self::NullArgument => c"a required pointer argument is NULL",
            Self::InvalidHandle => c"not a live fc_sender (never created or already freed)",
            Self::InvalidConfig => c"invalid configuration",
            Self::AddressUnresolved => c"the server address cannot be resolved",
            Self::EmptyAccessUnit => c"empty access unit",
            Self::AccessUnitTooLarge => c"access unit larger than max_access_unit_bytes",
            Self::InvalidAccessUnit => c"not a sendable Annex-B H.264 access unit",
            Self::KeyframeMismatch => c"keyframe flag does not match the NAL unit types",
            Self::CameraRunning => c"the SDK's camera feeds this sender",
            Self::Stopped => c"the sender is stopped",
            Self::WrongThread => c"not allowed from a callback",
            Self::Unsupported => c"not supported by this build or platform",
            Self::Io => c"operating system error",
            Self::Capture => c"capture source failed",
            Self::Encoder => c"encoder failed",
            Self::Panic => c"internal error (panic caught)",
        }
    }
}

/// A static, NUL-terminated description of a result code; "unknown result code" for a value
/// that is not an `fc_result`. Never NULL; the string must not be freed.
///
/// Takes an `int` so that any value, even one that is not an `fc_result`, is safe to pass.
///
/// Thread safety: any thread.
#[unsafe(no_mangle)]
pub extern "C" fn fc_result_str(result: c_int) -> *const c_char {
    let known = fc_result::ALL.iter().find(|r| **r as c_int == result);
    known
        .map_or(c"unknown result code", |r| r.description())
        .as_ptr()
}

/// Runs an export's body, turning a panic into [`fc_result::Panic`] so that no unwinding
/// crosses into C.
pub(crate) fn guard(body: impl FnOnce() -> fc_result) -> fc_result {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fc_result::Panic)
}

/// `?` inside [`guard`] bodies: the `Err` value is the result code.
pub(crate) fn guard_try(body: impl FnOnce() -> Result<(), fc_result>) -> fc_result {
    guard(|| match body() {
        Ok(()) => fc_result::Ok,
        Err(e) => e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::ffi::CStr;

    #[test]
    fn a_panic_becomes_a_result_code() {
        // The default hook would print the panic; this one keeps the test output clean.
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let result = guard(|| panic!("boom"));
        std::panic::set_hook(hook);
        assert_eq!(result, fc_result::Panic);
        assert_eq!(guard(|| fc_result::Stopped), fc_result::Stopped);
        assert_eq!(guard_try(|| Err(fc_result::Io)), fc_result::Io);
        assert_eq!(guard_try(|| Ok(())), fc_result::Ok);
    }

    #[test]
    fn codes_are_distinct_consecutive_and_named() {
        for (i, r) in fc_result::ALL.iter().enumerate() {
            assert_eq!(*r as c_int, 9000 + i as c_int);
            // SAFETY: fc_result_str returns a static NUL-terminated string.
            let s = unsafe { CStr::from_ptr(fc_result_str(*r as c_int)) };
            assert_eq!(s, r.description());
        }
        for unknown in [0, -1, 8999, 9018, c_int::MAX] {
            // SAFETY: as above.
            let s = unsafe { CStr::from_ptr(fc_result_str(unknown)) };
            assert_eq!(s, c"unknown result code");
        }
    }
}
