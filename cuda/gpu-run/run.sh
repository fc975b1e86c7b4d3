#!/usr/bin/env bash
# FlowCloud's GPU checks (issue 7) from a bundle made by `just gpu-bundle`, on a GPU machine
# without cargo:
#
#   bash target/gpu-bundle/run.sh            (results and logs under $OUT, else ./gpu-run-out)
#
# 1. the machine: nvidia-smi, driver, glibc; NVRTC for the kernels (FLOWCLOUD_NVRTC_LIB: the
#    bundled pinned 13.0.88, else the CUDA toolkit's libnvrtc.so.13);
# 2. the flowcloud-cuda test binaries (PTX with this NVRTC; GPU 0 opens);
# 3. flowcloud-gpu-check: every kernel against its reference, fused kernel vs copy bandwidth;
# 4. the NVDEC bit-exact test (worker unit-test binary) on the bundled streams, the worker's GPU
#    stages against the CPU ones, and gpu_stages: per-frame time of the GPU path vs the CPU path;
# 5. nvdec_throughput with 8 and 32 concurrent 720p streams, openh264 (CPU) as the baseline;
# then a summary table. Each part is PASS, FAIL or NOT AVAILABLE (what is missing is in its
# log). Exit status: 0 all PASS, 1 any FAIL, 2 otherwise (something not available).
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${OUT:-$PWD/gpu-run-out}"
mkdir -p "$OUT/logs"
: >"$OUT/progress.md"
BIN="$HERE/bin"
SCRATCH="$(mktemp -d)"
trap 'rm -rf "$SCRATCH"' EXIT
# The whole run must fit one 10-minute call, summary included: each part gets at most
# PART_TIMEOUT seconds and never more than what is left of TOTAL_BUDGET.
PART_TIMEOUT="${PART_TIMEOUT:-240}"
TOTAL_BUDGET="${TOTAL_BUDGET:-540}"
DEADLINE=$((SECONDS + TOTAL_BUDGET))

names=() statuses=() notes=()
# Each part's line also goes to progress.md at once: a run cut short still leaves it in $OUT.
record() {
  names+=("$1"); statuses+=("$2"); notes+=("$3")
  printf '== %s: %s %s\n' "$1" "$2" "$3"
  printf '| %s | %s | %s |\n' "$1" "$2" "$3" >>"$OUT/progress.md"
}
# Seconds the next part may take (at least 1; 0 when the budget is spent).
limit() { # MAX
  local left=$((DEADLINE - SECONDS - 10))
  ((left < 1)) && { echo 0; return; }
  ((left < $1)) && echo "$left" || echo "$1"
}
# run_part NAME MAX_SECONDS LOG COMMAND...: the command's exit status, 124 on time-out, 125 when
# no time was left to start it.
run_part() {
  local t; t="$(limit "$2")"
  if ((t == 0)); then echo "not run: the time budget was spent" >"$3"; return 125; fi
  timeout "$t" "${@:4}" >"$3" 2>&1
}

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host: $(uname -srm), $(nproc) CPUs, $(ldd --version 2>/dev/null | head -1)"
  echo "bundle: $(sed -n 2p "$HERE/MANIFEST.txt" 2>/dev/null)"
} | tee "$OUT/machine.txt"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi 2>&1 | tee "$OUT/nvidia-smi.txt"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.memory --format=csv 2>&1 | tee -a "$OUT/machine.txt"
  gpu_note="$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)"
else
  echo "nvidia-smi: not found" | tee "$OUT/nvidia-smi.txt"
  gpu_note="nvidia-smi not found"
fi
# The worker's binaries link libstdc++ (openh264 is C++): the bundled one if the system lacks it.
if ldd "$BIN/test-worker-lib" 2>/dev/null | grep -q 'not found'; then
  export LD_LIBRARY_PATH="$HERE/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  echo "libstdc++: the system has none; using the bundled one" | tee -a "$OUT/machine.txt"
fi
record machine "$( [[ $gpu_note == "nvidia-smi not found" ]] && echo "NOT AVAILABLE" || echo PASS)" "$gpu_note"

# NVRTC: an explicit FLOWCLOUD_NVRTC_LIB, the bundled pinned one, or the toolkit's.
unpack() { # FILE.xz DEST
  if command -v xz >/dev/null; then xz -dc "$1" >"$2"
  elif command -v python3 >/dev/null; then python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2"
  else return 1; fi
}
nvrtc_note=""
if [[ -n ${FLOWCLOUD_NVRTC_LIB:-} && -f $FLOWCLOUD_NVRTC_LIB ]]; then
  nvrtc_note="given: $FLOWCLOUD_NVRTC_LIB"
elif unpack "$HERE/nvrtc/libnvrtc.so.13.xz" "$SCRATCH/libnvrtc.so.13" 2>>"$OUT/logs/nvrtc.log" &&
  unpack "$HERE/nvrtc/libnvrtc-builtins.so.13.0.xz" "$SCRATCH/libnvrtc-builtins.so.13.0" 2>>"$OUT/logs/nvrtc.log"; then
  export FLOWCLOUD_NVRTC_LIB="$SCRATCH/libnvrtc.so.13"
  nvrtc_note="bundled 13.0.88"
else
  for candidate in /usr/local/cuda/lib64/libnvrtc.so.13 /usr/local/cuda-13.0/lib64/libnvrtc.so.13 \
    /usr/local/cuda/targets/x86_64-linux/lib/libnvrtc.so.13; do
    if [[ -f $candidate ]]; then export FLOWCLOUD_NVRTC_LIB="$candidate"; break; fi
  done
  nvrtc_note="bundled one not unpacked (no xz or python3); ${FLOWCLOUD_NVRTC_LIB:-no toolkit NVRTC found}"
fi
if [[ -n ${FLOWCLOUD_NVRTC_LIB:-} ]]; then
  record NVRTC PASS "$nvrtc_note: $FLOWCLOUD_NVRTC_LIB"
else
  record NVRTC "NOT AVAILABLE" "$nvrtc_note"
fi

# A part's status from its exit code: 0 PASS, 2 NOT AVAILABLE (the tools' own code), else FAIL.
status_of() { case "$1" in 0) echo PASS ;; 2) echo "NOT AVAILABLE" ;; 124) echo "FAIL (timed out)" ;; 125) echo "FAIL (no time left)" ;; *) echo "FAIL (exit $1)" ;; esac; }

# 2. flowcloud-cuda's tests. They skip their GPU parts without one (SKIP lines).
for t in "$BIN"/test-cuda-*; do
  name="${t##*/}"
  run_part "$name" 120 "$OUT/logs/$name.log" "$t" --nocapture
  rc=$?
  skips="$(grep -c '^SKIP' "$OUT/logs/$name.log")"
  summary="$(grep -E '^test result:' "$OUT/logs/$name.log" | tail -1 | cut -d';' -f1-2)"
  ((skips > 0)) && summary+=", $skips SKIP (see log)"
  record "$name" "$(status_of $rc)" "${summary:-no test result line}"
done

# 3. Kernels against references, and bandwidth.
run_part gpu-check "$PART_TIMEOUT" "$OUT/logs/gpu-check.log" "$BIN/flowcloud-gpu-check" --out "$OUT/gpu-check.json"
rc=$?
note="$(grep -E '^summary:' "$OUT/logs/gpu-check.log" | tail -1)"
[[ $rc == 2 ]] && note="$(grep -m1 'not available' "$OUT/logs/gpu-check.log" | cut -c1-160)"
record gpu-check "$(status_of $rc)" "${note:-see logs/gpu-check.log}"

# 4. NVDEC against openh264, bit for bit, on the bundled streams. The test prints SKIP (and
# passes) without NVDEC: that is NOT AVAILABLE here.
run_part nvdec-bit-exact 180 "$OUT/logs/nvdec-bit-exact.log" env FLOWCLOUD_NVDEC_STREAMS="$HERE/streams" \
  "$BIN/test-worker-lib" decode::nvdec::tests::bit_exact_against_openh264_on_a_gpu --exact --nocapture
rc=$?
if [[ $rc == 0 ]] && grep -q '^SKIP' "$OUT/logs/nvdec-bit-exact.log"; then
  record nvdec-bit-exact "NOT AVAILABLE" "$(grep -m1 '^SKIP' "$OUT/logs/nvdec-bit-exact.log" | cut -c1-160)"
else
  record nvdec-bit-exact "$(status_of $rc)" "$(grep -c 'bit-exact$' "$OUT/logs/nvdec-bit-exact.log") of $(find "$HERE/streams" -name '*.h264' | wc -l) streams bit-exact"
fi
run_part nvdec-unit-tests 60 "$OUT/logs/nvdec-unit-tests.log" \
  "$BIN/test-worker-lib" decode::nvdec --skip bit_exact_against_openh264_on_a_gpu \
  --skip device_output_matches_host_output_on_a_gpu
rc=$?
record nvdec-unit-tests "$(status_of $rc)" "$(grep -E '^test result:' "$OUT/logs/nvdec-unit-tests.log" | tail -1 | cut -d';' -f1-2)"

# 4b. The worker's GPU stages: NVDEC's pictures handed on in CUDA memory against its host
# copies, and the CUDA preprocessing and post-processing backends against the CPU ones. Each
# test prints SKIP (and passes) without a GPU: that is NOT AVAILABLE here.
for part in decode::nvdec::tests::device_output_matches_host_output_on_a_gpu \
  preprocess::cuda::tests::matches_the_cpu_backend_on_a_gpu \
  post::cuda::tests::matches_the_cpu_backend_on_a_gpu; do
  name="worker-${part%%::*}-on-gpu"
  run_part "$name" 120 "$OUT/logs/$name.log" env FLOWCLOUD_NVDEC_STREAMS="$HERE/streams" \
    "$BIN/test-worker-lib" "$part" --exact --nocapture
  rc=$?
  if [[ $rc == 0 ]] && grep -q '^SKIP' "$OUT/logs/$name.log"; then
    record "$name" "NOT AVAILABLE" "$(grep -m1 '^SKIP' "$OUT/logs/$name.log" | cut -c1-160)"
  elif [[ $rc == 0 ]] && ! grep -q '^test result: ok. 1 passed' "$OUT/logs/$name.log"; then
    record "$name" "FAIL (test not found)" "$part"
  else
    record "$name" "$(status_of $rc)" "$(grep -E '^test result:' "$OUT/logs/$name.log" | tail -1 | cut -d';' -f1-2)"
  fi
done

# 4c. Per-frame time through the worker's stages, GPU path against CPU path, 720p.
run_part gpu-stages 180 "$OUT/logs/gpu-stages.log" "$BIN/gpu_stages" \
  --stream "$HERE/streams/openh264-1280x720-300f.h264" --out "$OUT/gpu-stages.json"
rc=$?
note="see logs/gpu-stages.log"
[[ $rc == 2 ]] && note="$(grep -m1 'not available' "$OUT/logs/gpu-stages.log" | cut -c1-160)"
record gpu-stages "$(status_of $rc)" "$note"

# 5. Throughput: 8 and 32 concurrent 720p streams (openh264's and x264's), openh264 as baseline.
for stream in openh264-1280x720-300f x264-main-1280x720-300f; do
  run_part "$stream" 120 "$OUT/logs/nvdec-throughput-$stream.log" \
    "$BIN/nvdec_throughput" --stream "$HERE/streams/$stream.h264" --streams 8,32 \
    --seconds "${THROUGHPUT_SECONDS:-8}" --out "$OUT/nvdec-throughput-$stream.json"
  rc=$?
  note="see logs/nvdec-throughput-$stream.log"
  [[ $rc == 2 ]] && note="$(grep -m1 'not available' "$OUT/logs/nvdec-throughput-$stream.log" | cut -c1-160)"
  record "nvdec-throughput $stream" "$(status_of $rc)" "$note"
done

{
  echo
  echo "## Summary ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
  echo
  echo "| part | status | notes |"
  echo "|---|---|---|"
  for i in "${!names[@]}"; do echo "| ${names[$i]} | ${statuses[$i]} | ${notes[$i]} |"; done
  if [[ -s $OUT/gpu-check.md ]] && grep -q '^| ' "$OUT/gpu-check.md"; then
    echo
    grep -A100 '^## Bandwidth' "$OUT/gpu-check.md"
  fi
  if grep -q '^| stage' "$OUT/logs/gpu-stages.log" 2>/dev/null; then
    echo
    echo "gpu-stages.log:"
    grep '^|' "$OUT/logs/gpu-stages.log"
  fi
  for f in "$OUT"/logs/nvdec-throughput-*.log; do
    grep -q '^| streams' "$f" || continue
    echo
    echo "${f##*/}:"
    grep '^|' "$f"
  done
} | tee "$OUT/summary.md"

fail=0 missing=0
for s in "${statuses[@]}"; do
  case "$s" in FAIL*) fail=1 ;; "NOT AVAILABLE") missing=1 ;; esac
done
((fail)) && exit 1
((missing)) && exit 2
exit 0
