#!/usr/bin/env bash
# Installs everything FlowCloud needs to build, demo and test on a Debian 12 (bookworm) machine.
#
# Idempotent: each step checks first and does nothing when its tools are already there, so a
# second run takes a couple of seconds. Runs unattended (no stdin); as root, or through sudo.
# Prints one line per step; the output of an install is shown only when it fails.
set -euo pipefail

# rustup installs cargo, rustc and `cargo install`ed tools (just, cargo-fuzz) here.
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
case ":$PATH:" in
  *":$CARGO_BIN:"*) ;;
  *) export PATH="$CARGO_BIN:$PATH" ;;
esac

# Debian packages: GStreamer for the interop tests (RTP over TCP via rtpstreampay/rtpstreamdepay,
# x264enc/openh264enc/avdec_h264 as independent encoders and decoders), a C/C++ toolchain and
# nasm for the openh264 crate's bundled build, curl/ca-certificates/git for a fresh machine.
APT_PACKAGES=(
  build-essential
  pkg-config
  nasm
  ca-certificates
  curl
  git
  gstreamer1.0-tools
  gstreamer1.0-plugins-base
  gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly
  gstreamer1.0-libav
  python3
  python3-venv
  libelf1 xz-utils  # tests/v4l2-vm: objtool for the out-of-tree vicodec build; unpacking the kernel
  libv4l-0  # libv4l2.so.0: the edge SDK's libv4l2 device access, on the host and copied into the v4l2-vm guest
  gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user valgrind  # the C library: aarch64 build, qemu, leak checks
)
RUST_TARGETS=(thumbv7em-none-eabihf aarch64-unknown-linux-gnu)  # no_std proof; the C library for Jetson
RUST_COMPONENTS=(rustfmt clippy)
MIN_RUST="1.95"                           # workspace rust-version

step() { printf 'setup: %-28s %s\n' "$1" "$2"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# Runs a command with its output in a log that is printed only if the command fails.
LOG="$(mktemp)"
trap 'rm -f "$LOG" "$LOG.rustup-init"' EXIT
quietly() {
  if ! "$@" </dev/null >"$LOG" 2>&1; then
    cat "$LOG" >&2
    die "command failed: $*"
  fi
}

# Prefix for commands that need root: nothing as root, else passwordless sudo.
as_root_prefix() {
  if [[ $(id -u) -eq 0 ]]; then
    AS_ROOT=()
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    AS_ROOT=(sudo -n)
  else
    die "installing Debian packages needs root: run this script as root or with passwordless sudo"
  fi
}

# Same view of toolchain overrides as cargo in this repository.
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# --- apt packages -------------------------------------------------------------------------------
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  status="$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)"
  [[ $status == ii* ]] || missing+=("$pkg")
done
if ((${#missing[@]} == 0)); then
  step "apt packages" "ok (${#APT_PACKAGES[@]} installed)"
else
  step "apt packages" "installing: ${missing[*]}"
  as_root_prefix
  quietly "${AS_ROOT[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  quietly "${AS_ROOT[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"
  step "apt packages" "ok (installed ${#missing[@]})"
fi

# --- rustup and the stable toolchain -------------------------------------------------------------
if command -v rustup >/dev/null 2>&1; then
  step "rustup" "ok ($(rustup --version 2>/dev/null | cut -d' ' -f2))"
else
  step "rustup" "installing from https://sh.rustup.rs"
  if ! curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs -o "$LOG.rustup-init" 2>"$LOG"; then
    cat "$LOG" >&2
    die "rustup is not installed and https://sh.rustup.rs cannot be reached; install rustup (https://rustup.rs) and run this again"
  fi
  quietly sh "$LOG.rustup-init" -y --no-modify-path --profile minimal --default-toolchain stable
  rm -f "$LOG.rustup-init"
  step "rustup" "ok (installed)"
fi

if ! rustc --version >/dev/null 2>&1; then
  step "rust stable" "installing"
  quietly rustup toolchain install stable --profile minimal
  quietly rustup default stable
fi
rustc_version="$(rustc --version | cut -d' ' -f2)"
if [[ "$(printf '%s\n%s\n' "$MIN_RUST" "$rustc_version" | sort -V | head -n1)" != "$MIN_RUST" ]]; then
  die "rustc $rustc_version is older than the workspace's rust-version $MIN_RUST: run 'rustup update stable'"
fi
step "rust toolchain" "ok (rustc $rustc_version)"

# Targets and components of the toolchain cargo uses in this repository (there is no
# rust-toolchain.toml, so that is rustup's default).
installed_targets="$(rustup target list --installed)"
for target in "${RUST_TARGETS[@]}"; do
  if grep -qx "$target" <<<"$installed_targets"; then
    step "target $target" "ok"
  else
    step "target $target" "installing"
    quietly rustup target add "$target"
    step "target $target" "ok (installed)"
  fi
done

installed_components="$(rustup component list --installed)"
for component in "${RUST_COMPONENTS[@]}"; do
  if grep -q "^$component\(-\|$\)" <<<"$installed_components"; then
    step "component $component" "ok"
  else
    step "component $component" "installing"
    quietly rustup component add "$component"
    step "component $component" "ok (installed)"
  fi
done

# --- nightly, for cargo-fuzz (libFuzzer needs -Zsanitizer) ---------------------------------------
if rustup toolchain list | grep -Eq '^nightly-[a-z]'; then  # 'nightly', not a dated one
  step "rust nightly" "ok"
else
  step "rust nightly" "installing (for cargo-fuzz)"
  if ! rustup toolchain install nightly --profile minimal </dev/null >"$LOG" 2>&1; then
    cat "$LOG" >&2
    die "could not install the nightly toolchain (offline?); cargo-fuzz needs it: 'rustup toolchain install nightly --profile minimal'"
  fi
  step "rust nightly" "ok (installed)"
fi

# --- cargo tools ---------------------------------------------------------------------------------
cargo_tool() { # cargo_tool <command to look for> <crate>
  if command -v "$1" >/dev/null 2>&1; then
    step "$2" "ok ($("$1" --version 2>/dev/null | head -n1))"
  else
    step "$2" "installing with cargo install (takes a few minutes)"
    quietly cargo install "$2" --locked
    step "$2" "ok (installed)"
  fi
}
cargo_tool just just
cargo_tool cargo-fuzz cargo-fuzz
edge-sdk/capi/scripts/cbindgen.sh install  # pinned: the committed C header depends on the version

# ONNX Runtime (its library comes in the onnxruntime wheel) and the model tooling, in .venv.
.ci/python-env.sh
# NVRTC and nvcc 13.0 for compiling the CUDA kernels to PTX without a GPU (cuda/build.rs, just cuda-check).
.ci/cuda-compilers.sh

step "done" "(make sure $CARGO_BIN is on your PATH)"
