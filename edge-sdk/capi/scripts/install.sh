#!/usr/bin/env bash
# Installs the built C library of the edge SDK under a prefix, the way firmware builds
# consume it:
#
#   PREFIX/lib/libflowcloud_edge.a           (and libflowcloud_edge.so with --shared)
#   PREFIX/include/flowcloud_edge.h
#   PREFIX/lib/pkgconfig/flowcloud_edge.pc
#
# usage: scripts/install.sh PREFIX BUILD_DIR [--shared] [--no-openh264]
#
# BUILD_DIR holds the cargo output, e.g. target/release or
# target/aarch64-unknown-linux-gnu/release. --no-openh264: the library was built without
# the openh264 feature (then it needs no C++ runtime).
set -euo pipefail

usage() { echo "usage: $0 PREFIX BUILD_DIR [--shared] [--no-openh264]" >&2; exit 2; }
[[ $# -ge 2 ]] || usage
prefix="$1" build_dir="$2"
shift 2
shared=false openh264=true
for arg in "$@"; do
  case "$arg" in
    --shared) shared=true ;;
    --no-openh264) openh264=false ;;
    *) usage ;;
  esac
done

crate_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[[ -f "$build_dir/libflowcloud_edge.a" ]] || {
  echo "install.sh: no libflowcloud_edge.a in $build_dir (cargo build -p flowcloud-edge-capi first)" >&2
  exit 1
}
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$crate_dir/../../Cargo.toml" | head -n1)"
# As rustc lists them for this staticlib (glibc 2.34+ folds most into libc; they stay for
# older sysroots). openh264 is C++.
libs_private="-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc"
if $openh264; then
  libs_private="-lstdc++ $libs_private"
fi

mkdir -p "$prefix/lib/pkgconfig" "$prefix/include"
prefix="$(cd "$prefix" && pwd)"
install -m 0644 "$build_dir/libflowcloud_edge.a" "$prefix/lib/"
if $shared; then
  install -m 0755 "$build_dir/libflowcloud_edge.so" "$prefix/lib/"
fi
install -m 0644 "$crate_dir/include/flowcloud_edge.h" "$prefix/include/"
sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" -e "s|@LIBS_PRIVATE@|$libs_private|" \
  "$crate_dir/flowcloud_edge.pc.in" >"$prefix/lib/pkgconfig/flowcloud_edge.pc"
echo "install.sh: $prefix (libflowcloud_edge.a$($shared && echo ", .so"), flowcloud_edge.h, flowcloud_edge.pc)"
