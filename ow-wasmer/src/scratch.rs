//! The per-activation scratch directory, in memory: wasmer-wasix reaches
//! files only through its virtual filesystem, and one that lives in the
//! activation's own memory leaves nothing behind on the host to clean up.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use virtual_fs::limiter::FsMemoryLimiter;
use virtual_fs::{FsError, TmpFileSystem};

/// A fresh, empty in-memory filesystem, to be mapped at
/// [`ow_common::SCRATCH_GUEST_DIR`], refusing writes (`StorageFull`) past
/// `max_bytes`.
pub(crate) fn filesystem(max_bytes: usize) -> TmpFileSystem {
    let fs = TmpFileSystem::new();
    fs.set_memory_limiter(Arc::new(Budget {
        used: AtomicUsize::new(0),
        max: max_bytes,
    }));
    fs
}

/// Bytes held by the scratch filesystem's files.
#[derive(Debug)]
struct Budget {
    used: AtomicUsize,
    max: usize,
}

impl FsMemoryLimiter for Budget {
    fn on_grow(&self, grown: usize) -> Result<(), FsError> {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(grown).filter(|&total| total <= self.max)
            })
            .map(drop)
            .map_err(|_| FsError::StorageFull)
    }

    fn on_shrink(&self, shrunk: usize) {
        // Saturating: a shrink never takes the count below zero.
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                Some(used.saturating_sub(shrunk))
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_refuses_growth_past_its_maximum_and_credits_shrinking() {
        let budget = Budget {
            used: AtomicUsize::new(0),
            max: 100,
        };
        assert!(budget.on_grow(60).is_ok());
        assert!(matches!(budget.on_grow(41), Err(FsError::StorageFull)));
        budget.on_shrink(30);
        assert!(budget.on_grow(70).is_ok());
        assert!(budget.on_grow(1).is_err());
    }
}
