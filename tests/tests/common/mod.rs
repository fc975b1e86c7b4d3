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

// Not every test binary that includes this module stores files.
#[allow(unused_imports)]
pub(crate) use flowcloud_tests::temp_dir::TempDir;
