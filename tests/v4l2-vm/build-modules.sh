#!/usr/bin/env bash
# Builds vicodec (the kernel's virtual FWHT memory-to-memory codec) and v4l2-mem2mem, the
# framework it needs, as out-of-tree modules for the guest kernel. Debian builds neither
# (CONFIG_VIDEO_VICODEC and CONFIG_V4L2_MEM2MEM_DEV are unset), so their sources are taken from
# linux-source of the same version (fetch.sh unpacks just them) and compiled against its
# linux-headers, whose Module.symvers gives symbol versions that the running kernel accepts.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
load_kernel_env

OUT=$VM_DIR/modules
stamp="$KABI $KVERSION"
if [[ -f $OUT/build.done && $(cat "$OUT/build.done") == "$stamp" ]]; then
  log "modules: cached (vicodec.ko, v4l2-mem2mem.ko for $KABI)"
  exit 0
fi
log "modules: building vicodec.ko and v4l2-mem2mem.ko for $KABI"

headers=$KERNEL_ROOT/headers/usr/src/linux-headers-$KABI
common=$KERNEL_ROOT/headers/usr/src/linux-headers-${KABI%-*}-common
source=$KERNEL_ROOT/source/drivers/media
[[ -d $headers && -d $common && -d $source/test-drivers/vicodec ]] ||
  die "kernel packages are incomplete: remove $VM_DIR/fetch.done and rerun fetch.sh"

rm -rf "$OUT"
build=$OUT/build
mkdir -p "$build"
cp "$source"/test-drivers/vicodec/*.[ch] "$source/v4l2-core/v4l2-mem2mem.c" "$build/"
cat >"$build/Kbuild" <<'KBUILD'
obj-m += v4l2-mem2mem.o vicodec.o
vicodec-objs := vicodec-core.o codec-fwht.o codec-v4l2-fwht.o
KBUILD

# Debian's per-flavour Makefile includes the common one by its installed path (/usr/src/...);
# naming the common Makefile with -f makes it work from where we unpacked it: the common tree is
# the source tree, the flavour directory (the -C directory) the object tree with .config.
make -C "$headers" -f "$common/Makefile" M="$build" -j"$(nproc)" modules >"$OUT/build.log" 2>&1 || {
  cat "$OUT/build.log" >&2
  die "module build failed (log: $OUT/build.log)"
}
cp "$build/vicodec.ko" "$build/v4l2-mem2mem.ko" "$OUT/"
echo "$stamp" >"$OUT/build.done"
log "modules: built $(cd "$OUT" && echo *.ko)"
