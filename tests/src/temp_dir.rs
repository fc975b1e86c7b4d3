//! A scratch folder for tests.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A fresh folder under the system's temporary folder, removed with everything in it on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// `flowcloud-<name>-<pid>-<n>`, emptied if it exists.
    ///
    /// # Panics
    ///
    /// If the folder cannot be created (a test cannot go on without it).
    #[must_use]
    pub fn new(name: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("flowcloud-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        #[allow(clippy::unwrap_used)]
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    /// The folder.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
