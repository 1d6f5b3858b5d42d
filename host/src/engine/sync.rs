//! Atomics and the ring's slot cell, swapped for loom's models under `--cfg loom`
//! so the ring's ordering can be model-checked.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU64, Ordering};

use std::sync::Arc;

/// One ring slot: an atomically replaceable `Option<Arc<T>>`.
///
/// Normally arc-swap, which lets a reader take a reference while the writer
/// replaces the value, without locks and without use-after-free. Under loom it
/// is a loom mutex: loom cannot see inside arc-swap, and what loom checks here is
/// the ring's own protocol (write position vs slot contents), not arc-swap.
pub(crate) struct SlotCell<T> {
    #[cfg(not(loom))]
    inner: arc_swap::ArcSwapOption<T>,
    #[cfg(loom)]
    inner: loom::sync::Mutex<Option<Arc<T>>>,
}

impl<T> SlotCell<T> {
    pub(crate) fn empty() -> Self {
        SlotCell {
            #[cfg(not(loom))]
            inner: arc_swap::ArcSwapOption::const_empty(),
            #[cfg(loom)]
            inner: loom::sync::Mutex::new(None),
        }
    }

    pub(crate) fn load(&self) -> Option<Arc<T>> {
        #[cfg(not(loom))]
        return self.inner.load_full();
        #[cfg(loom)]
        return self.inner.lock().unwrap().clone();
    }

    pub(crate) fn store(&self, value: Arc<T>) {
        #[cfg(not(loom))]
        self.inner.store(Some(value));
        #[cfg(loom)]
        {
            *self.inner.lock().unwrap() = Some(value);
        }
    }
}
