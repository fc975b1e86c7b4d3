#!/usr/bin/env bash
# Packs the guest's whole userland into $VM_DIR/initramfs.gz: busybox-static, the media
# modules in load order (vivid from the distribution kernel, vicodec and v4l2-mem2mem from
# build-modules.sh, and what they depend on), the check binary with the host's ELF interpreter
# and C libraries it links, libv4l2.so.0 (libv4l-0) with its own, and /init.
# Always rebuilt: it takes well under a second.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
load_kernel_env

MODULE_DIR=$KERNEL_ROOT/image/lib/modules/$KABI
BUSYBOX=$TOOLS_ROOT/bin/busybox
[[ -x $BUSYBOX ]] || die "$BUSYBOX is missing: run fetch.sh"
[[ -f $VM_DIR/modules/vicodec.ko ]] || die "vicodec.ko is missing: run build-modules.sh"
[[ -x $VM_DIR/v4l2_guest_check && -x $VM_DIR/edge_unit_tests ]] ||
  die "the guest binaries are missing: run build-guest.sh"

ROOT=$VM_DIR/initramfs
rm -rf "$ROOT"
mkdir -p "$ROOT"/{bin,dev,proc,sys,tmp,modules}
cp "$BUSYBOX" "$ROOT/bin/busybox"
cp "$SCRIPTS/guest-init.sh" "$ROOT/init"
cp "$VM_DIR/v4l2_guest_check" "$ROOT/v4l2_guest_check"
cp "$VM_DIR/edge_unit_tests" "$ROOT/edge_unit_tests"
chmod +x "$ROOT/init" "$ROOT/v4l2_guest_check" "$ROOT/edge_unit_tests"

# The check is dynamically linked and loads libv4l2.so.0 at run time (dlopen, which ldd cannot
# see): each goes in with every library ldd lists for it, at the path the host has it. No libv4l
# plugin is copied: for vicodec, libv4l2 passes every call through to the kernel.
ldconfig=$(command -v ldconfig || echo /sbin/ldconfig)
# awk reads to the end (no early exit): with pipefail, ldconfig killed by SIGPIPE would fail us.
libv4l2=$("$ldconfig" -p | awk '$1 == "libv4l2.so.0" && /x86-64/ && !found { found = $NF } END { print found }')
[[ -n $libv4l2 ]] || die "libv4l2.so.0 is not installed: apt-get install libv4l-0 (.ci/setup.sh does)"
copy_host_file() { # copy_host_file <absolute path>
  mkdir -p "$ROOT$(dirname "$1")"
  cp -L "$1" "$ROOT$1"
}
copy_host_file "$libv4l2"
for elf in "$VM_DIR/v4l2_guest_check" "$VM_DIR/edge_unit_tests" "$libv4l2"; do
  # "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" and "/lib64/ld-linux-x86-64.so.2 (0x…)".
  for lib in $(ldd "$elf" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
    copy_host_file "$lib"
  done
done

# Where a module named in a `depends=` list is: ours first, then the kernel's.
module_path() {
  if [[ -f $VM_DIR/modules/$1.ko ]]; then
    echo "$VM_DIR/modules/$1.ko"
    return
  fi
  local found
  found=$(find "$MODULE_DIR/kernel" \( -name "$1.ko" -o -name "$1.ko.xz" -o -name "$1.ko.zst" \) -print -quit)
  [[ -n $found ]] || die "module $1 is not among the kernel's media modules (fetch.sh unpacks drivers/media only)"
  echo "$found"
}

# busybox insmod cannot read compressed modules.
module_bytes() {
  case $1 in
    *.xz) xz -dc "$1" ;;
    *.zst) zstd -dcq "$1" ;;
    *) cat "$1" ;;
  esac
}

# Adds a module after everything it depends on (read from its .modinfo `depends=` field, the
# list modprobe would follow), once.
declare -A added=()
add_module() { # add_module <name> [parameters...]
  local name=$1 path dep
  [[ -n ${added[$name]:-} ]] && return
  added[$name]=1
  path=$(module_path "$name")
  module_bytes "$path" >"$ROOT/modules/$name.ko"
  for dep in $(tr '\0' '\n' <"$ROOT/modules/$name.ko" | sed -n 's/^depends=//p' | tr ',' ' '); do
    add_module "$dep"
  done
  echo "$name.ko ${*:2}" >>"$ROOT/modules/load-order"
}
: >"$ROOT/modules/load-order"
# Two cameras: a single-planar one (as most are) and a multi-planar one, which offers NV12M
# with a buffer per plane.
add_module vivid n_devs=2 multiplanar=1,2
# multiplanar=1: the multi-planar API, as SoC encoders (Jetson's among them) have it.
add_module vicodec multiplanar=1

(cd "$ROOT" && find . | LC_ALL=C sort | "$BUSYBOX" cpio -o -H newc -R 0:0 2>/dev/null | gzip -1) \
  >"$VM_DIR/initramfs.gz"
log "initramfs: $(du -h "$VM_DIR/initramfs.gz" | cut -f1), modules: $(cut -d' ' -f1 "$ROOT/modules/load-order" | tr '\n' ' ')"
