#!/usr/bin/env bash
# Downloads, without installing, what the guest test needs:
#  - the distribution's kernel image (with the vivid module) and the headers, kbuild and source
#    packages of the same version, from which vicodec is built (Debian does not ship it);
#  - busybox-static, the guest's whole userland;
#  - qemu-system-x86 and whichever of its libraries this host lacks.
# Packages come from the host's own apt sources through `apt-get download` and are unpacked with
# dpkg-deb under $VM_DIR. A stamp records the kernel version, so a second run does nothing.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# The kernel meta package decides the version; override to test another flavour of the same arch.
KERNEL_META=${V4L2_VM_KERNEL_META:-linux-image-amd64}

candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ { print $2 }'; }

# A fresh container often has empty apt lists.
if [[ -z $(candidate "$KERNEL_META") || $(candidate "$KERNEL_META") == "(none)" ]]; then
  log "no candidate for $KERNEL_META in the apt lists: running apt-get update"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
fi
kernel_pkg=$(apt-cache depends "$KERNEL_META" | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
[[ -n $kernel_pkg ]] || die "cannot tell which kernel $KERNEL_META depends on"
KABI=${kernel_pkg#linux-image-}          # 6.1.0-56-amd64: the module directory name
KVERSION=$(candidate "$kernel_pkg")      # 6.1.192-2: the package version
KSERIES=$(cut -d. -f1,2 <<<"$KVERSION")  # 6.1: names the kbuild and source packages
stamp="$KABI $KVERSION"

if [[ -f $VM_DIR/fetch.done && $(cat "$VM_DIR/fetch.done") == "$stamp" ]]; then
  log "fetch: cached ($stamp)"
  exit 0
fi
log "fetch: kernel $KABI ($KVERSION), busybox-static, qemu-system-x86"

# `apt-get download` writes into the current directory; as root it warns that it cannot drop
# privileges to _apt, which is harmless here.
download() { # download <dir> <package>...
  mkdir -p "$1"
  (
    cd "$1"
    apt-get download -q "${@:2}" 2>&1 | grep -v 'Download is performed unsandboxed' || true
  )
  local pkg
  for pkg in "${@:2}"; do
    compgen -G "$1/${pkg%%=*}_*.deb" >/dev/null || die "apt-get download $pkg failed"
  done
}

# A new kernel invalidates everything unpacked or derived from the old one.
rm -rf "$VM_DIR/debs" "$TOOLS_ROOT" "$KERNEL_ROOT" "$VM_DIR"/vmlinux-*

# Same version for all kernel packages: the modules we build must match the running kernel's
# symbol versions (Module.symvers in the headers).
download "$VM_DIR/debs/kernel" \
  "linux-image-$KABI=$KVERSION" \
  "linux-headers-$KABI=$KVERSION" \
  "linux-headers-${KABI%-*}-common=$KVERSION" \
  "linux-kbuild-$KSERIES=$KVERSION" \
  "linux-source-$KSERIES=$KVERSION"

# qemu's libraries that are not on this host, as apt would install them.
missing=$(apt-get install -s -q --no-install-recommends qemu-system-x86 2>/dev/null |
  awk '/^Inst / { print $2 }')
# shellcheck disable=SC2086 # one package name per word
download "$VM_DIR/debs/tools" busybox-static qemu-system-x86 qemu-system-data seabios $missing

mkdir -p "$TOOLS_ROOT" "$KERNEL_ROOT/image" "$KERNEL_ROOT/headers" "$KERNEL_ROOT/source"
for deb in "$VM_DIR"/debs/tools/*.deb; do dpkg-deb -x "$deb" "$TOOLS_ROOT"; done
for deb in "$VM_DIR"/debs/kernel/linux-{headers,kbuild}-*.deb; do
  dpkg-deb -x "$deb" "$KERNEL_ROOT/headers"
done
# Of the image only the kernel and the media modules (vivid and what it needs): 45 of 400 MB.
dpkg-deb --fsys-tarfile "$VM_DIR"/debs/kernel/linux-image-"$KABI"_*.deb |
  tar -x -C "$KERNEL_ROOT/image" "./boot/vmlinuz-$KABI" "./lib/modules/$KABI/kernel/drivers/media"
# Of the source only what build-modules.sh compiles, straight out of the tarball in the package.
dpkg-deb --fsys-tarfile "$VM_DIR"/debs/kernel/linux-source-"$KSERIES"_*.deb |
  tar -xO --wildcards --no-anchored "linux-source-$KSERIES.tar.xz" |
  tar -xJ -C "$KERNEL_ROOT/source" --strip-components=1 \
    "linux-source-$KSERIES/drivers/media/test-drivers/vicodec" \
    "linux-source-$KSERIES/drivers/media/v4l2-core/v4l2-mem2mem.c"
# Everything needed is unpacked; the packages themselves are not kept.
rm -rf "$VM_DIR/debs"

printf 'KABI=%s\nKVERSION=%s\nKSERIES=%s\n' "$KABI" "$KVERSION" "$KSERIES" >"$KERNEL_ENV"
echo "$stamp" >"$VM_DIR/fetch.done"
du -sh "$TOOLS_ROOT" "$KERNEL_ROOT" | sed 's/^/v4l2-vm: /' >&2
