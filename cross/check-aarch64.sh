#!/usr/bin/env bash
# The edge SDK for Jetson-class devices, checked on an x86-64 host without containers
# (`just edge-aarch64`):
#
#  1. builds flowcloud-core, flowcloud-edge (library and the flowcloud-edge/flowcloud-scenes
#     CLIs) and flowcloud-edge-capi (libflowcloud_edge.a/.so) for aarch64-unknown-linux-gnu with
#     Debian's cross toolchain; the linker and the C/C++ compilers for openh264 come from
#     .cargo/config.toml;
#  2. runs the three crates' test suites, and the libargus capture tests over the fake shim
#     (`argus-fake`), under qemu-user (the runner in .cargo/config.toml).
#     Tests that need a kernel V4L2 device print `SKIP <test>: <reason>` and pass: qemu-user
#     does not pass V4L2 ioctls through. Tests that start the CLIs go through
#     FLOWCLOUD_TEST_RUNNER, since qemu-user does not follow execve into an aarch64 binary.
#
# The C library linked from C and run against a loopback worker is `just capi-aarch64`
# (edge-sdk/capi/tests/aarch64.sh). Environment: CARGO_TARGET_DIR (default target).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
target="${CARGO_TARGET_DIR:-$repo/target}"
triple=aarch64-unknown-linux-gnu
sysroot=/usr/aarch64-linux-gnu
crates=(-p flowcloud-core -p flowcloud-edge -p flowcloud-edge-capi)

log() { printf 'edge-aarch64: %s\n' "$*"; }
fail() { printf 'edge-aarch64: FAIL: %b\n' "$*" >&2; exit 1; }

for tool in aarch64-linux-gnu-gcc aarch64-linux-gnu-g++ qemu-aarch64; do
  command -v "$tool" >/dev/null || fail "$tool not found (just setup installs it)"
done
[[ -e $sysroot/lib/ld-linux-aarch64.so.1 ]] ||
  fail "$sysroot/lib/ld-linux-aarch64.so.1 missing (just setup installs libc6-dev-arm64-cross)"
rustup target list --installed | grep -qx "$triple" ||
  fail "the $triple Rust target is not installed (just setup)"

# --- 1. build -------------------------------------------------------------------------------
started=$SECONDS
log "cargo build --target $triple ${crates[*]} --bins --lib"
cargo build --target "$triple" --locked "${crates[@]}" --lib --bins
bin="$target/$triple/debug"
for binary in flowcloud-edge flowcloud-scenes libflowcloud_edge.so; do
  machine="$(readelf -h "$bin/$binary" | sed -n 's/^ *Machine: *//p')"
  [[ "$machine" == AArch64 ]] || fail "$binary is built for '$machine', not AArch64"
done
[[ -f $bin/libflowcloud_edge.a ]] || fail "libflowcloud_edge.a was not built"
log "ok: built for $triple in $((SECONDS - started)) s (flowcloud-edge, flowcloud-scenes, libflowcloud_edge.a/.so are AArch64)"
qemu-aarch64 -L "$sysroot" "$bin/flowcloud-edge" --help >/dev/null ||
  fail "flowcloud-edge --help under qemu-aarch64 failed"
log "ok: flowcloud-edge --help runs under qemu-aarch64"

# --- 2. test under qemu-user ----------------------------------------------------------------
started=$SECONDS
out="$target/edge-aarch64-test.log"
log "cargo test --target $triple ${crates[*]} (qemu-aarch64; log in $out)"
status=0
FLOWCLOUD_TEST_RUNNER="qemu-aarch64 -L $sysroot" \
  cargo test --target "$triple" --locked "${crates[@]}" >"$out" 2>&1 || status=$?
# The libargus capture type over the fake shim, cross-compiled with aarch64-linux-gnu-gcc too.
FLOWCLOUD_TEST_RUNNER="qemu-aarch64 -L $sysroot" \
  cargo test --target "$triple" --locked -p flowcloud-edge --features argus-fake --lib argus \
  >>"$out" 2>&1 || status=$?
grep -E '^SKIP ' "$out" || true
[[ $status -eq 0 ]] || fail "cargo test for $triple failed:\n$(grep -E '^(test .*FAILED|---- |thread .*panicked|error)' "$out" | head -40)"
read -r passed failed ignored < <(awk '/^test result:/ { p += $4; f += $6; i += $8 } END { print p + 0, f + 0, i + 0 }' "$out")
skipped="$(grep -c '^SKIP ' "$out" || true)"
log "ok: $passed tests passed, $failed failed, $ignored ignored, $skipped skipped for want of a kernel device, under qemu-aarch64 in $((SECONDS - started)) s"
