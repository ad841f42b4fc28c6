//! Lock helpers shared by the doubles.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, recovering the data when a previous holder panicked.
///
/// Every critical section in this crate is a handful of assignments that cannot panic
/// half-way (no user code runs while these mutexes are held), so a poisoned mutex still
/// holds consistent state. Refusing it would turn one panicking test thread into panics in
/// every other thread that shares the double, hiding the first failure behind many.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
