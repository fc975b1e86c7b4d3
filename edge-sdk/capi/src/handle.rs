//! The table of live senders. An `fc_sender *` is an opaque token, not the address of the
//! state: tokens count up and are never reused, and every call looks its token up here. So
//! a double free, a call after free, or a pointer that never was a sender is answered with
//! `FC_RESULT_INVALID_HANDLE` instead of undefined behaviour; and a call that races with
//! `fc_sender_free` on another thread keeps the state alive (an `Arc`) until it returns.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::result::fc_result;
use crate::sender::SenderState;

/// A FlowCloud sender: one connection to a worker, its I/O thread and optionally the SDK's
/// camera thread. Opaque: create with `fc_sender_new`, release with `fc_sender_free`.
pub struct fc_sender {
    _private: [u8; 0],
}

struct Registry {
    next_token: usize,
    live: Vec<(usize, Arc<SenderState>)>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    next_token: 1,
    live: Vec::new(),
});

/// Tokens are multiples of this, so that they look like aligned pointers to a debugger.
const TOKEN_STEP: usize = 16;

fn registry() -> MutexGuard<'static, Registry> {
    // The table is a plain list: a panic cannot leave it half-updated.
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Adds `state` and returns its token.
pub(crate) fn insert(state: Arc<SenderState>) -> *mut fc_sender {
    let mut registry = registry();
    let token = registry.next_token.wrapping_mul(TOKEN_STEP);
    registry.next_token += 1;
    registry.live.push((token, state));
    core::ptr::without_provenance_mut(token)
}

/// The state behind a token. Does not allocate.
pub(crate) fn get(sender: *const fc_sender) -> Result<Arc<SenderState>, fc_result> {
    if sender.is_null() {
        return Err(fc_result::NullArgument);
    }
    let token = sender.addr();
    registry()
        .live
        .iter()
        .find(|(t, _)| *t == token)
        .map(|(_, state)| Arc::clone(state))
        .ok_or(fc_result::InvalidHandle)
}

/// Removes a token; the state is returned for shutting down.
pub(crate) fn remove(sender: *const fc_sender) -> Result<Arc<SenderState>, fc_result> {
    if sender.is_null() {
        return Err(fc_result::NullArgument);
    }
    let token = sender.addr();
    let mut registry = registry();
    let index = registry
        .live
        .iter()
        .position(|(t, _)| *t == token)
        .ok_or(fc_result::InvalidHandle)?;
    Ok(registry.live.swap_remove(index).1)
}
