#!/usr/bin/env bash
# Installs the pinned NVRTC (the `nvidia-cuda-nvrtc` wheel, CUDA 13.0) into <repo>/.venv/nvrtc-13.0,
# for `just cuda-check`: cuda/ compiles every kernel to PTX with it. No GPU or CUDA install needed.
#
# Why 13.0 and why separate: our GPU test machines run a CUDA 13.0 driver, which rejects PTX of a
# newer ISA than its own, and a newer NVRTC emits one. The torch wheels in .venv bring their own,
# newer nvidia-cuda-nvrtc, so this one lives in its own --target folder that nothing else imports.
#
# The library lands at .venv/nvrtc-13.0/nvidia/cu13/lib/libnvrtc.so.13; the tests find it there,
# or wherever FLOWCLOUD_NVRTC_LIB points.
#
# Idempotent: installs only when the pinned version is missing; a second run takes well under a
# second. Prints one line; the install's output is shown only on failure.
set -euo pipefail

NVRTC_VERSION="13.0.88"  # keep at 13.0.x: see above
cd "$(dirname "${BASH_SOURCE[0]}")/.."
TARGET=".venv/nvrtc-13.0"
LIB="$TARGET/nvidia/cu13/lib/libnvrtc.so.13"
STAMP="$TARGET/nvidia_cuda_nvrtc-$NVRTC_VERSION.dist-info"

step() { printf 'setup: %-28s %s\n' "$1" "$2"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

if [[ -d $STAMP && -f $LIB ]]; then
  step "nvrtc $NVRTC_VERSION" "ok: $LIB"
  exit 0
fi

# The repository's venv provides pip (created by .ci/python-env.sh, which `just setup` runs).
[[ -x .venv/bin/python ]] || .ci/python-env.sh

LOG="$(mktemp)"
trap 'rm -f "$LOG"' EXIT
# A fresh folder: pip --target does not remove an older version's files.
rm -rf "$TARGET"
if ! .venv/bin/python -m pip install --disable-pip-version-check --no-input -q --no-deps \
  --target "$TARGET" "nvidia-cuda-nvrtc==$NVRTC_VERSION" </dev/null >"$LOG" 2>&1; then
  cat "$LOG" >&2
  rm -rf "$TARGET"
  die "could not install nvidia-cuda-nvrtc==$NVRTC_VERSION into $TARGET"
fi
[[ -d $STAMP && -f $LIB ]] || die "nvidia-cuda-nvrtc==$NVRTC_VERSION installed, but $LIB is missing"
step "nvrtc $NVRTC_VERSION" "ok (installed): $LIB"
