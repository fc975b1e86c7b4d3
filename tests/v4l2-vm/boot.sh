#!/usr/bin/env bash
# Boots the distribution kernel with the test initramfs in qemu and decides the verdict from the
# serial console: exit 0 only if the guest printed the check's PASS line and exit code 0, and the
# unit tests' passing result and exit code 0.
#
# KVM is used only when /dev/kvm is writable and the CPU has VMX/SVM. CI machines have neither
# (or a software /dev/kvm that fails on stock kernels), so the usual run is TCG, qemu's own
# translator; booting through PVH with the media modules only, that is still a matter of
# seconds. Override with V4L2_VM_ACCEL=kvm|tcg; V4L2_VM_TIMEOUT bounds the whole boot.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
load_kernel_env

QEMU=$TOOLS_ROOT/usr/bin/qemu-system-x86_64
[[ -x $QEMU ]] || die "$QEMU is missing: run fetch.sh"
# qemu was unpacked, not installed: point it at its libraries and firmware.
export LD_LIBRARY_PATH=$TOOLS_ROOT/usr/lib/x86_64-linux-gnu:$TOOLS_ROOT/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

accel=${V4L2_VM_ACCEL:-}
if [[ -z $accel ]]; then
  if [[ -w /dev/kvm ]] && grep -qwE 'vmx|svm' /proc/cpuinfo; then accel=kvm; else accel=tcg; fi
fi
case $accel in
  kvm) accel_args=(-accel kvm -cpu host) ;;
  tcg) accel_args=(-accel "tcg,thread=multi" -cpu max) ;;
  *) die "V4L2_VM_ACCEL must be kvm or tcg, not $accel" ;;
esac

# The bzImage's payload as a plain ELF vmlinux boots through qemu's PVH entry without running
# the decompressor under emulation: seconds faster on TCG. Cached; falls back to the bzImage.
bzimage=$KERNEL_ROOT/image/boot/vmlinuz-$KABI
vmlinux=$VM_DIR/vmlinux-$KABI
if [[ ! -s $vmlinux ]]; then
  # Like the kernel's scripts/extract-vmlinux: try each xz signature until one unpacks to ELF.
  while read -r offset; do
    tail -c +"$((offset + 1))" "$bzimage" | xz -dc --single-stream >"$vmlinux.tmp" 2>/dev/null || true
    if [[ $(head -c 4 "$vmlinux.tmp" | od -An -tx1 | tr -d ' \n') == 7f454c46 ]]; then
      mv "$vmlinux.tmp" "$vmlinux"
      break
    fi
  done < <(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$bzimage" | cut -d: -f1)
  rm -f "$vmlinux.tmp"
fi
kernel=$bzimage
[[ -s $vmlinux ]] && kernel=$vmlinux

console_log=$VM_DIR/guest-console.log
log "boot: $accel, kernel $(basename "$kernel"), console log $console_log"
start=$(now_ms)
# panic=-1 with -no-reboot: a guest panic ends qemu at once instead of hanging to the timeout.
set +e
timeout "${V4L2_VM_TIMEOUT:-600}" "$QEMU" "${accel_args[@]}" -smp 2 -m 512 \
  -L "$TOOLS_ROOT/usr/share/qemu" -L "$TOOLS_ROOT/usr/share/seabios" \
  -kernel "$kernel" -initrd "$VM_DIR/initramfs.gz" \
  -append "console=ttyS0 quiet panic=-1" \
  -nographic -no-reboot -nodefaults -serial stdio -net none -monitor none 2>&1 |
  tee "$console_log"
qemu_rc=${PIPESTATUS[0]}
set -e
log "boot: qemu exit code $qemu_rc after $(seconds_since "$start") s"

# The unit tests must have run at least one test, all passing.
if grep -q '^v4l2_guest_check: PASS' "$console_log" &&
  grep -q '^guest: v4l2_guest_check exit code 0 ' "$console_log" &&
  grep -Eq '^test result: ok\. [1-9][0-9]* passed; 0 failed' "$console_log" &&
  grep -q '^guest: edge_unit_tests exit code 0 ' "$console_log"; then
  log "verdict: PASS"
  exit 0
fi
log "verdict: FAIL (see $console_log)"
exit 1
