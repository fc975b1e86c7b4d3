#!/usr/bin/env bash
# Builds the in-guest check, edge-sdk/sdk/examples/v4l2_guest_check.rs, as one static binary:
# the guest has no libc of its own (its userland is busybox-static), so glibc is linked in with
# `crt-static`. Default features are off: the check needs neither openh264 nor the CLI.
# Cargo's own freshness check makes a second run instant.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

TARGET=x86_64-unknown-linux-gnu
# A target directory of its own: the static build's flags would otherwise invalidate the
# workspace's normal build artifacts, and the build does not wait on other cargo runs.
export CARGO_TARGET_DIR=${V4L2_VM_CARGO_TARGET_DIR:-$VM_DIR/cargo}
# --target keeps these flags away from build scripts and proc macros, which run on the host.
export RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static"

rustup target list --installed 2>/dev/null | grep -qx "$TARGET" ||
  die "the Rust target $TARGET is not installed: rustup target add $TARGET"

log "guest binary: cargo build --release --example v4l2_guest_check --target $TARGET (static)"
(cd "$REPO" && cargo build --release --locked -q -p flowcloud-edge --no-default-features \
  --example v4l2_guest_check --target "$TARGET")
binary=$CARGO_TARGET_DIR/$TARGET/release/examples/v4l2_guest_check
# A dynamic binary would die in the guest with a bare "not found"; say so here instead.
if readelf -l "$binary" | grep -q 'program interpreter'; then
  die "$binary is dynamically linked (is glibc's libc.a from libc6-dev installed?)"
fi
mkdir -p "$VM_DIR"
cp "$binary" "$VM_DIR/v4l2_guest_check"
