//! Builds the libargus shim's C ABI (argus/fc_argus.h) when a capture feature asks for it:
//! `argus-fake` compiles the fake (argus/fc_argus_fake.c, any Linux target); `argus` compiles
//! the real C++ shim against the L4T Multimedia API and links libargus and NvBufSurface
//! (aarch64 Linux, headers and libraries under FLOWCLOUD_L4T_ROOT, default `/`).
//! Without either feature this does nothing.

use std::env;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let fake = env::var_os("CARGO_FEATURE_ARGUS_FAKE").is_some();
    let real = env::var_os("CARGO_FEATURE_ARGUS").is_some();
    if !fake && !real {
        return;
    }
    println!("cargo:rerun-if-changed=argus");
    #[cfg(any(feature = "argus", feature = "argus-fake"))]
    build_shim(fake);
}

#[cfg(any(feature = "argus", feature = "argus-fake"))]
fn build_shim(fake: bool) {
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        panic!("the argus and argus-fake features are for Linux targets only");
    }
    if fake {
        cc::Build::new()
            .file("argus/fc_argus_fake.c")
            .include("argus")
            .std("c11")
            .warnings(true)
            .extra_warnings(true)
            .warnings_into_errors(true)
            .compile("fc_argus_fake");
        return;
    }
    println!("cargo:rerun-if-env-changed=FLOWCLOUD_L4T_ROOT");
    if env::var("CARGO_CFG_TARGET_ARCH").as_deref() != Ok("aarch64") {
        panic!(
            "the argus feature builds the libargus shim for Jetson (aarch64); for tests elsewhere use the argus-fake feature"
        );
    }
    let root =
        std::path::PathBuf::from(env::var_os("FLOWCLOUD_L4T_ROOT").unwrap_or_else(|| "/".into()));
    let include = root.join("usr/src/jetson_multimedia_api/include");
    if !include.join("Argus/Argus.h").is_file() || !include.join("nvbufsurface.h").is_file() {
        panic!(
            "the argus feature needs the L4T Multimedia API: {} has no Argus/Argus.h or nvbufsurface.h. \
             On a Jetson install nvidia-l4t-jetson-multimedia-api; when cross-compiling use `cross build` \
             (its image sets FLOWCLOUD_L4T_ROOT=/opt/l4t) or point FLOWCLOUD_L4T_ROOT at an unpacked L4T root",
            include.display()
        );
    }
    cc::Build::new()
        .cpp(true)
        .file("argus/fc_argus_shim.cpp")
        .include("argus")
        .include(&include)
        .flag("-std=c++14")
        .warnings(true)
        .compile("fc_argus_shim");
    let tegra = root.join("usr/lib/aarch64-linux-gnu/tegra");
    println!("cargo:rustc-link-search=native={}", tegra.display());
    // libnvargus_socketclient talks to nvargus-daemon, as NVIDIA's samples do.
    println!("cargo:rustc-link-lib=dylib=nvargus_socketclient");
    println!("cargo:rustc-link-lib=dylib=nvbufsurface");
}
