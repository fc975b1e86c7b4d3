#!/usr/bin/env bash
# The pinned cbindgen for the C header of the edge SDK.
#
#   scripts/cbindgen.sh install       installs cbindgen $CBINDGEN_VERSION if it is not there
#                                     (idempotent: quick when it is)
#   scripts/cbindgen.sh generate OUT  writes the header for edge-sdk/capi to OUT
#
# A different cbindgen may format the header differently, which would make the committed
# header look stale; hence the exact version.
set -euo pipefail

CBINDGEN_VERSION=0.29.4

CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
case ":$PATH:" in
  *":$CARGO_BIN:"*) ;;
  *) export PATH="$CARGO_BIN:$PATH" ;;
esac

crate_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

installed() {
  [[ "$(cbindgen --version 2>/dev/null)" == "cbindgen $CBINDGEN_VERSION" ]]
}

install() {
  if installed; then
    printf 'setup: %-28s %s\n' "cbindgen" "ok ($CBINDGEN_VERSION)"
    return
  fi
  printf 'setup: %-28s %s\n' "cbindgen" "installing $CBINDGEN_VERSION with cargo install (takes a few minutes)"
  local log
  log="$(mktemp)"
  if ! cargo install --locked cbindgen --version "$CBINDGEN_VERSION" </dev/null >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "cbindgen.sh: could not install cbindgen $CBINDGEN_VERSION" >&2
    exit 1
  fi
  rm -f "$log"
  printf 'setup: %-28s %s\n' "cbindgen" "ok (installed $CBINDGEN_VERSION)"
}

case "${1:-}" in
  install)
    install
    ;;
  generate)
    out="${2:?usage: cbindgen.sh generate OUT}"
    installed || install >&2
    # --quiet: cbindgen's notes about items it skips (the Rust-only API) are not errors.
    cbindgen --quiet --config "$crate_dir/cbindgen.toml" --crate flowcloud-edge-capi \
      --output "$out" "$crate_dir"
    ;;
  *)
    echo "usage: $0 install | generate OUT" >&2
    exit 2
    ;;
esac
