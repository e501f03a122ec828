//! Per-activation scratch directories (see [`crate::ActionSpec::scratch`]).

use crate::error::{Error, Result};
use std::path::Path;

pub use tempfile::TempDir;

/// A fresh, empty, private (mode 0700) directory under `parent`, removed
/// with everything in it when the returned guard drops.
///
/// # Errors
/// [`Error::Resources`] when the directory cannot be created.
pub fn create(parent: &Path) -> Result<TempDir> {
    tempfile::Builder::new()
        .prefix("ow-scratch-")
        .tempdir_in(parent)
        .map_err(|e| {
            Error::Resources(format!(
                "cannot create a scratch directory in {}: {e}",
                parent.display()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scratch_directory_is_empty_and_gone_after_use() {
        let parent = tempfile::tempdir().unwrap();
        let dir = create(parent.path()).unwrap();
        let path = dir.path().to_owned();
        assert!(path.starts_with(parent.path()));
        assert_eq!(std::fs::read_dir(&path).unwrap().count(), 0);
        std::fs::write(path.join("f"), b"x").unwrap();
        drop(dir);
        assert!(!path.exists());
        assert!(create(&parent.path().join("missing")).is_err());
    }
}
