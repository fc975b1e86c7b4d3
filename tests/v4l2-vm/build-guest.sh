#!/usr/bin/env bash
# Builds the in-guest check, edge-sdk/sdk/examples/v4l2_guest_check.rs, and the edge SDK's unit
# tests, whose `in_guest_` tests need the guest's drivers and reach crate internals the check
# cannot. Both are linked dynamically
# against glibc: it loads libv4l2.so.0 with dlopen, which a static glibc binary cannot do
# reliably, so build-initramfs.sh copies the host's ELF interpreter and C libraries (and
# libv4l2's) next to it into the busybox-static guest. Default features are off: the check needs
# neither openh264 nor the CLI. Cargo's own freshness check makes a second run instant.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

TARGET=x86_64-unknown-linux-gnu
# A target directory of its own, so the build does not wait on other cargo runs.
export CARGO_TARGET_DIR=${V4L2_VM_CARGO_TARGET_DIR:-$VM_DIR/cargo}

rustup target list --installed 2>/dev/null | grep -qx "$TARGET" ||
  die "the Rust target $TARGET is not installed: rustup target add $TARGET"

log "guest binary: cargo build --release --example v4l2_guest_check --target $TARGET"
(cd "$REPO" && cargo build --release --locked -q -p flowcloud-edge --no-default-features \
  --example v4l2_guest_check --target "$TARGET")
binary=$CARGO_TARGET_DIR/$TARGET/release/examples/v4l2_guest_check
mkdir -p "$VM_DIR"
cp "$binary" "$VM_DIR/v4l2_guest_check"

log "guest unit tests: cargo test --release --lib --no-run -p flowcloud-edge --target $TARGET"
tests=$(cd "$REPO" && cargo test --release --locked -q -p flowcloud-edge --no-default-features \
  --lib --no-run --target "$TARGET" --message-format=json |
  sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
[[ -x $tests ]] || die "cargo did not name the unit test binary"
# Debug information is most of its size, and the initramfs is unpacked into the guest's memory.
strip -o "$VM_DIR/edge_unit_tests" "$tests"
