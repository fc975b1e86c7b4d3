//! What the end-to-end tests share: binaries of other workspace crates, built on demand.

use std::path::PathBuf;
use std::process::Command;

/// Binary `bin` of workspace package `package`, built here in release: cargo builds only a
/// crate's own binaries for its tests, and the worker's inference must keep up with the cameras
/// as it does in production (a debug build of the worker is several times slower).
pub(crate) fn built_binary(package: &str, bin: &str) -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "--locked",
            "-p",
            package,
            "--bin",
            bin,
        ])
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building {bin} failed: {status}");
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    let binary = target.join("release").join(bin);
    assert!(binary.is_file(), "no binary at {}", binary.display());
    binary
}

/// A fresh folder under the system's temporary folder, removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    /// `flowcloud-<name>-<pid>-<n>`.
    pub(crate) fn new(name: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("flowcloud-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("creating a temporary folder");
        Self(path)
    }

    /// The folder.
    pub(crate) fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
