#!/usr/bin/env bash
# Installs the pinned CUDA 13.0 compilers from NVIDIA's wheels, for cuda/ (no GPU or CUDA install
# needed):
#   .venv/nvrtc-13.0  NVRTC (`nvidia-cuda-nvrtc`): compiles the kernels at run time; the tests
#                     compile every kernel with it
#   .venv/nvcc-13.0   nvcc with what it runs (`nvidia-cuda-nvcc`, `-nvvm`, `-crt`, `-runtime`):
#                     cuda/build.rs compiles the kernels to PTX at build time with it, when
#                     FLOWCLOUD_NVCC names it (the justfile does)
#
# Why 13.0 and why separate: our GPU test machines run a CUDA 13.0 driver, which rejects PTX of a
# newer ISA than its own, and a newer compiler emits one. The torch wheels in .venv bring their
# own, newer nvidia-cuda-nvrtc, so these live in their own --target folders that nothing imports.
#
# Idempotent: installs only what is missing; a second run takes well under a second. Prints one
# line per folder; an install's output is shown only on failure.
set -euo pipefail

CUDA_VERSION="13.0.88"  # keep at 13.0.x: see above
CUDART_VERSION="13.0.96"  # the 13.0 runtime headers' wheel has its own patch number
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf 'setup: %-28s %s\n' "$1" "$2"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# install <folder> <file that proves it> <stamp dist-info> <requirement>...
install() {
  local target=$1 file=$2 stamp=$3
  shift 3
  if [[ -d $target/$stamp && -f $target/$file ]]; then
    step "$(basename "$target")" "ok: $target/$file"
    return
  fi
  # The repository's venv provides pip (created by .ci/python-env.sh, which setup runs first).
  [[ -x .venv/bin/python ]] || .ci/python-env.sh
  local log
  log="$(mktemp)"
  # A fresh folder: pip --target does not remove an older version's files.
  rm -rf "$target"
  if ! .venv/bin/python -m pip install --disable-pip-version-check --no-input -q --no-deps \
    --target "$target" "$@" </dev/null >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    rm -rf "$target"
    die "could not install $* into $target"
  fi
  rm -f "$log"
  [[ -d $target/$stamp && -f $target/$file ]] || die "$* installed, but $target/$file is missing"
  step "$(basename "$target")" "ok (installed): $target/$file"
}

install .venv/nvrtc-13.0 nvidia/cu13/lib/libnvrtc.so.13 \
  "nvidia_cuda_nvrtc-$CUDA_VERSION.dist-info" \
  "nvidia-cuda-nvrtc==$CUDA_VERSION"
install .venv/nvcc-13.0 nvidia/cu13/bin/nvcc \
  "nvidia_cuda_nvcc-$CUDA_VERSION.dist-info" \
  "nvidia-cuda-nvcc==$CUDA_VERSION" "nvidia-nvvm==$CUDA_VERSION" \
  "nvidia-cuda-crt==$CUDA_VERSION" "nvidia-cuda-runtime==$CUDART_VERSION"
