#!/usr/bin/env bash
# The C library for Jetson-class devices (`just capi-aarch64`):
#
#  1. cross-builds libflowcloud_edge.a for aarch64-unknown-linux-gnu with Debian's cross
#     toolchain (gcc/g++-aarch64-linux-gnu; g++ because openh264 is C++ — without it the
#     library is built without the openh264 feature, and this says so);
#  2. links examples/firmware.c and tests/edge_cases.c against it with aarch64-linux-gnu-gcc
#     and checks the binaries are AArch64 ELF;
#  3. where qemu-user is installed: runs the edge cases, firmware.c streaming an H.264 file
#     and in camera mode against the stand-in worker (a host binary: qemu-user shares the
#     host's loopback), and the crate's Rust tests — all under qemu-aarch64.
#
# Environment: CARGO_TARGET_DIR (default target).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
crate="$repo/edge-sdk/capi"
cd "$repo"
target="${CARGO_TARGET_DIR:-$repo/target}"
triple=aarch64-unknown-linux-gnu
sysroot=/usr/aarch64-linux-gnu
work="$target/capi-aarch64"
rm -rf "$work"
mkdir -p "$work"

log() { printf 'capi-aarch64: %s\n' "$*"; }
fail() { printf 'capi-aarch64: FAIL: %b\n' "$*" >&2; exit 1; }
passed=0
pass() { passed=$((passed + 1)); log "ok: $*"; }

command -v aarch64-linux-gnu-gcc >/dev/null ||
  fail "aarch64-linux-gnu-gcc not found (just setup installs gcc-aarch64-linux-gnu)"
rustup target list --installed | grep -qx "$triple" ||
  fail "the $triple Rust target is not installed (just setup)"

# The linker, the C/C++ compilers for openh264's build script and the qemu-user runner for
# `cargo test` come from the repository's .cargo/config.toml.

features=() install_flags=() openh264=true
if ! command -v aarch64-linux-gnu-g++ >/dev/null; then
  log "aarch64-linux-gnu-g++ not found: building without the openh264 feature (no software encoder in camera mode)"
  features=(--no-default-features)
  install_flags=(--no-openh264)
  openh264=false
fi

# --- 1. cross-build -------------------------------------------------------------------------
log "building libflowcloud_edge.a for $triple ${features[*]}"
cargo build -p flowcloud-edge-capi --target "$triple" --locked --lib "${features[@]}"
"$crate/scripts/install.sh" "$work/prefix" "$target/$triple/debug" "${install_flags[@]}" >/dev/null
pass "libflowcloud_edge.a for $triple ($(du -h "$work/prefix/lib/libflowcloud_edge.a" | cut -f1))"

# --- 2. link C against it --------------------------------------------------------------------
export PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR=
read -r -a flags <<<"$(pkg-config --cflags --libs --static flowcloud_edge)"
cflags=(-std=c11 -Wall -Wextra -Werror -pedantic -g -O1)
aarch64-linux-gnu-gcc "${cflags[@]}" "$crate/examples/firmware.c" "${flags[@]}" -o "$work/firmware"
aarch64-linux-gnu-gcc "${cflags[@]}" "$crate/tests/edge_cases.c" "${flags[@]}" -o "$work/edge_cases"
for binary in firmware edge_cases; do
  machine="$(readelf -h "$work/$binary" | sed -n 's/^ *Machine: *//p')"
  [[ "$machine" == AArch64 ]] || fail "$binary is built for '$machine', not AArch64"
done
pass "firmware.c and edge_cases.c link against it with aarch64-linux-gnu-gcc (AArch64 ELF)"

# --- 3. run under qemu-user ------------------------------------------------------------------
if ! command -v qemu-aarch64 >/dev/null; then
  log "qemu-aarch64 not installed: not running the aarch64 binaries"
  log "$passed passed, 0 failed"
  exit 0
fi
qemu=(qemu-aarch64 -L "$sysroot")
"${qemu[@]}" "$work/edge_cases" >"$work/edge_cases.out" 2>&1 ||
  fail "edge_cases under qemu: $(cat "$work/edge_cases.out")"
pass "$(tail -n1 "$work/edge_cases.out") (edge cases, aarch64 under qemu)"

# The stand-in worker and the test stream are host programs.
cargo build -p flowcloud-edge-capi --locked --example write_h264 --example stand_in_worker
"$target/debug/examples/write_h264" "$work/clip.h264" --frames 60 --size 320x240 --fps 30 \
  --keyframe-interval 30 --bitrate 400000 >/dev/null 2>&1

worker_pid=
cleanup() { [[ -n "$worker_pid" ]] && kill "$worker_pid" 2>/dev/null || true; }
trap cleanup EXIT

# stream NAME EXPECTED ARGS...: firmware under qemu against a fresh stand-in worker.
stream() {
  local name="$1" expected="$2"
  shift 2
  rm -f "$work/port"
  "$target/debug/examples/stand_in_worker" --port-file "$work/port" --timeout 180 --pli-after 20 \
    >"$work/$name.worker.log" 2>&1 &
  worker_pid=$!
  for _ in $(seq 200); do
    [[ -s "$work/port" ]] && break
    sleep 0.05
  done
  local status=0
  "${qemu[@]}" "$work/firmware" "127.0.0.1:$(cat "$work/port")" "$@" >"$work/$name.out" 2>&1 ||
    status=$?
  [[ $status -eq 0 ]] || fail "$name: firmware exited $status:\n$(tail -30 "$work/$name.out")"
  status=0
  wait "$worker_pid" || status=$?
  worker_pid=
  [[ $status -eq 0 ]] || fail "$name: the stand-in worker failed: $(cat "$work/$name.worker.log")"
  local counts
  counts="$(sed -n 's/^firmware: \([0-9]*\) frames pushed, \([0-9]*\) sent, \([0-9]*\) dropped, \([0-9]*\) results.*/\1 \2 \3 \4/p' "$work/$name.out")"
  read -r pushed sent dropped results <<<"$counts"
  [[ -n "$counts" && $pushed -ge $expected && $sent -eq $pushed && $dropped -eq 0 &&
    $results -eq $pushed ]] ||
    fail "$name: expected >= $expected frames sent and answered, none dropped; got '$counts':\n$(tail -20 "$work/$name.out")"
  pass "$name: $pushed frames, $results results (aarch64 under qemu)"
}

stream push 60 "$work/clip.h264" 30
if $openh264; then
  stream camera 30 camera:pattern 30 --frames 30 --size 160x120
fi

# The crate's Rust tests, built for aarch64 and run through the qemu runner.
log "running the crate's Rust tests for $triple under qemu"
status=0
cargo test -p flowcloud-edge-capi --target "$triple" --locked "${features[@]}" \
  >"$work/cargo-test.out" 2>&1 || status=$?
grep -E '^(test result|no_heap): ' "$work/cargo-test.out" || true
[[ $status -eq 0 ]] || fail "cargo test for $triple failed:\n$(tail -40 "$work/cargo-test.out")"
pass "cargo test -p flowcloud-edge-capi --target $triple (qemu-aarch64)"

log "$passed passed, 0 failed"
