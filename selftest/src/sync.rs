//! The lock helper of the broken plugins.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, recovering the data when a previous holder panicked: the broken plugins'
/// critical sections are plain assignments, so a poisoned mutex still holds consistent
/// state, and a panic in one test thread must not hide behind panics in the others.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
