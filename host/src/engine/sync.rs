//! Atomics and the ring's slot cell, swapped for loom's models under
//! `--cfg rill_loom` so the ring's ordering can be model-checked (a cfg name of
//! our own: `--cfg loom` would also switch tokio's internals).

#[cfg(rill_loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(rill_loom))]
pub(crate) use std::sync::atomic::{AtomicU64, Ordering};

use std::sync::Arc;

/// One ring slot: an atomically replaceable `Option<Arc<T>>`.
///
/// Normally arc-swap, which lets a reader take a reference while the writer
/// replaces the value, without locks and without use-after-free. Under loom it
/// is a loom mutex: loom cannot see inside arc-swap, and what loom checks here is
/// the ring's own protocol (write position vs slot contents), not arc-swap.
pub(crate) struct SlotCell<T> {
    #[cfg(not(rill_loom))]
    inner: arc_swap::ArcSwapOption<T>,
    #[cfg(rill_loom)]
    inner: loom::sync::Mutex<Option<Arc<T>>>,
}

impl<T> SlotCell<T> {
    pub(crate) fn empty() -> Self {
        SlotCell {
            #[cfg(not(rill_loom))]
            inner: arc_swap::ArcSwapOption::const_empty(),
            #[cfg(rill_loom)]
            inner: loom::sync::Mutex::new(None),
        }
    }

    pub(crate) fn load(&self) -> Option<Arc<T>> {
        #[cfg(not(rill_loom))]
        return self.inner.load_full();
        #[cfg(rill_loom)]
        return self.inner.lock().unwrap().clone();
    }

    pub(crate) fn store(&self, value: Arc<T>) {
        #[cfg(not(rill_loom))]
        self.inner.store(Some(value));
        #[cfg(rill_loom)]
        {
            *self.inner.lock().unwrap() = Some(value);
        }
    }
}
