#!/usr/bin/env bash
# The V4L2 test in a qemu guest: the SDK's V4l2Capture and V4l2M2mEncoder against the kernel's
# vivid (virtual camera) and vicodec (virtual stateful encoder) drivers, which no CI machine has
# as real hardware. Exit code 0 only if every check in the guest passed.
#
#   fetch.sh            kernel, headers, source, busybox-static and qemu packages (downloaded,
#                       unpacked under target/v4l2-vm, nothing installed)
#   build-modules.sh    vicodec.ko + v4l2-mem2mem.ko, out of tree for that kernel
#   build-guest.sh      edge-sdk/sdk/examples/v4l2_guest_check.rs
#   build-initramfs.sh  busybox + modules + the binary with its C libraries + libv4l2 + /init
#   boot.sh             qemu (KVM if usable, else TCG), verdict from the serial console
#
# Every step is cached under target/v4l2-vm (V4L2_VM_DIR), so a second run only rebuilds what
# changed and boots. Needs apt (for `apt-get download`), gcc and make, Rust with the
# x86_64-unknown-linux-gnu target, and libv4l2 (libv4l-0), which the guest gets a copy of.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

step() { # step <script>
  local started rc=0
  started=$(now_ms)
  "$SCRIPTS/$1" || rc=$?
  local outcome="done"
  [[ $rc == 0 ]] || outcome="failed ($rc)"
  log "$1: $outcome in $(seconds_since "$started") s"
  return "$rc"
}

started=$(now_ms)
status=0
step fetch.sh
step build-modules.sh
step build-guest.sh
step build-initramfs.sh
step boot.sh || status=$?
log "total $(seconds_since "$started") s"
exit "$status"
