# Settings and helpers shared by the V4L2 VM test scripts (sourced, not run).
#
# Everything the test downloads or builds lives under $VM_DIR, so the host stays untouched and a
# second run reuses it. Override the location with V4L2_VM_DIR.

# shellcheck disable=SC2034 # the variables are for the scripts that source this file
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SCRIPTS=$REPO/tests/v4l2-vm
VM_DIR=${V4L2_VM_DIR:-$REPO/target/v4l2-vm}
# Written by fetch.sh: which distribution kernel the guest runs (KABI, KVERSION, KSERIES).
KERNEL_ENV=$VM_DIR/kernel.env
# Extracted host tools (qemu, busybox-static) and their libraries; nothing is installed.
TOOLS_ROOT=$VM_DIR/tools
# Extracted kernel packages: image + modules, headers + kbuild, the source tarball.
KERNEL_ROOT=$VM_DIR/kernel

log() { printf 'v4l2-vm: %s\n' "$*" >&2; }
# Milliseconds on the wall clock, and the seconds since such a mark ("12.3").
now_ms() { local t=${EPOCHREALTIME/[.,]/}; echo $((t / 1000)); }
seconds_since() { local ms=$(($(now_ms) - $1)); printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100)); }
die() { log "error: $*"; exit 1; }

# Loads kernel.env, or stops with a hint when fetch.sh has not run yet.
load_kernel_env() {
  [[ -f $KERNEL_ENV ]] || die "$KERNEL_ENV is missing: run tests/v4l2-vm/fetch.sh first"
  # shellcheck source=/dev/null
  source "$KERNEL_ENV"
}

# Prefix for commands that need root: nothing as root, else passwordless sudo.
as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo -n "$@"
  else
    die "'$*' needs root (or passwordless sudo)"
  fi
}
