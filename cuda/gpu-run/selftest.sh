#!/usr/bin/env bash
# Runs a GPU check bundle's run.sh on this machine and checks its mechanics: every part runs
# and is reported, nothing FAILs, and without a GPU each GPU part says NOT AVAILABLE (exit 2)
# while the GPU-free tests PASS. `just gpu-bundle` runs it after building the bundle.
#
#   cuda/gpu-run/selftest.sh [BUNDLE_DIR]    (default target/gpu-bundle)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
BUNDLE="${1:-target/gpu-bundle}"
die() { printf 'gpu-bundle selftest: FAIL: %s\n' "$*" >&2; exit 1; }
[[ -x $BUNDLE/run.sh ]] || die "no $BUNDLE/run.sh: run cuda/gpu-run/bundle.sh first"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
set +e
# From another folder, as the GPU run does: nothing may depend on this checkout's paths.
run_sh="$(cd "$BUNDLE" && pwd)/run.sh"
(cd / && OUT="$out" THROUGHPUT_SECONDS=1 bash "$run_sh") >"$out.log" 2>&1
rc=$?
set -e
summary="$out/summary.md"
[[ -s $summary ]] || { cat "$out.log"; die "run.sh wrote no summary (exit $rc)"; }
cat "$summary"
row() { grep -E "^\| $1 \|" "$summary" || die "no summary row for $1"; }
! grep -q '| FAIL' "$summary" || die "a part FAILed (logs in $out/logs)"
for part in test-cuda-flowcloud_cuda test-cuda-nvrtc test-cuda-context test-cuda-gpu_check_cli NVRTC; do
  row "$part" | grep -q '| PASS |' || die "$part did not PASS"
done
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
  ((rc == 0)) || die "run.sh exited $rc on a GPU machine"
else
  ((rc == 2)) || die "run.sh exited $rc without a GPU, expected 2"
  for part in machine gpu-check nvdec-bit-exact "nvdec-throughput openh264-1280x720-300f" \
    "nvdec-throughput x264-main-1280x720-300f" worker-decode-on-gpu worker-preprocess-on-gpu \
    worker-post-on-gpu gpu-stages; do
    row "$part" | grep -q '| NOT AVAILABLE |' || die "$part is not NOT AVAILABLE"
  done
  row gpu-check | grep -q 'libcuda.so.1' || die "gpu-check does not name libcuda.so.1"
  row nvdec-unit-tests | grep -q '| PASS |' || die "the NVDEC unit tests did not PASS"
  [[ $(grep -c '"status": "not available"' "$out/gpu-check.json") == 1 ]] || die "gpu-check.json"
fi
rm -f "$out.log"
echo "gpu-bundle selftest: ok (run.sh exit $rc; bundle $(du -sh "$BUNDLE" | cut -f1))"
