#!/usr/bin/env bash
# The C ABI from C, end to end (`just capi-test`):
#
#  1. builds libflowcloud_edge.a and the helper examples, installs the library into a
#     staging prefix with its pkg-config file;
#  2. compiles examples/firmware.c and tests/edge_cases.c with gcc against the committed
#     header (-Wall -Wextra -Werror -pedantic), and the header alone as C++;
#  3. makes H.264 test files: the SDK's test pattern through openh264 (examples/write_h264)
#     and, where GStreamer's x264enc is installed, x264;
#  4. streams each file with firmware.c to the stand-in worker on loopback and checks that
#     every frame got its result line, the worker saw every access unit and no protocol
#     error, and the worker's PLI reached the firmware as a keyframe request; then the SDK's
#     camera mode, and a SIGINT in the middle of a looping stream;
#  5. repeats the firmware and edge-case runs under AddressSanitizer with LeakSanitizer
#     (no error, no leak), and once under valgrind --leak-check=full when it is installed.
#
# Environment: CARGO_TARGET_DIR (default target), CAPI_TEST_VALGRIND=0 to skip valgrind.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
crate="$repo/edge-sdk/capi"
cd "$repo"
target="${CARGO_TARGET_DIR:-$repo/target}"
work="$target/capi-test"
rm -rf "$work"
mkdir -p "$work"

log() { printf 'capi-test: %s\n' "$*"; }
fail() { printf 'capi-test: FAIL: %b\n' "$*" >&2; exit 1; }
passed=0
pass() { passed=$((passed + 1)); log "ok: $*"; }

# --- 1. build and stage --------------------------------------------------------------------
log "building libflowcloud_edge and the helpers"
cargo build -p flowcloud-edge-capi --locked --lib --example write_h264 --example stand_in_worker
"$crate/scripts/install.sh" "$work/prefix" "$target/debug" >/dev/null
export PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig"
read -r -a flags <<<"$(pkg-config --cflags --libs --static flowcloud_edge)"
log "pkg-config --cflags --libs --static flowcloud_edge: ${flags[*]}"

# --- 2. compile ----------------------------------------------------------------------------
cflags=(-std=c11 -Wall -Wextra -Werror -pedantic -g -O1)
gcc "${cflags[@]}" "$crate/examples/firmware.c" "${flags[@]}" -o "$work/firmware"
gcc "${cflags[@]}" "$crate/tests/edge_cases.c" "${flags[@]}" -o "$work/edge_cases"
asan=(-fsanitize=address -fno-omit-frame-pointer)
gcc "${cflags[@]}" "${asan[@]}" "$crate/examples/firmware.c" "${flags[@]}" -o "$work/firmware-asan"
gcc "${cflags[@]}" "${asan[@]}" "$crate/tests/edge_cases.c" "${flags[@]}" -o "$work/edge_cases-asan"
echo '#include "flowcloud_edge.h"' |
  g++ -std=c++11 -x c++ -Wall -Wextra -Werror -pedantic -fsyntax-only -I "$work/prefix/include" -
pass "firmware.c and edge_cases.c compile against the header with -Werror; the header is valid C++"

# --- 3. test streams -----------------------------------------------------------------------
frames=90
"$target/debug/examples/write_h264" "$work/openh264.h264" --frames $frames --size 320x240 \
  --fps 30 --keyframe-interval 30 --bitrate 400000
streams=("$work/openh264.h264")
if gst-inspect-1.0 x264enc >/dev/null 2>&1; then
  gst-launch-1.0 -q videotestsrc num-buffers=$frames pattern=ball \
    ! video/x-raw,width=320,height=240,framerate=30/1 \
    ! x264enc tune=zerolatency key-int-max=30 bitrate=400 \
    ! video/x-h264,profile=baseline,stream-format=byte-stream \
    ! filesink location="$work/x264.h264"
  streams+=("$work/x264.h264")
else
  log "GStreamer x264enc not installed: streaming the openh264 file only"
fi

# --- 4. runs against the stand-in worker ---------------------------------------------------
worker_pid=
cleanup() { [[ -n "$worker_pid" ]] && kill "$worker_pid" 2>/dev/null || true; }
trap cleanup EXIT

# Starts the stand-in worker (extra arguments passed on); sets $port and $worker_pid.
start_worker() {
  local port_file="$work/port" name="$1"
  shift
  rm -f "$port_file"
  "$target/debug/examples/stand_in_worker" --port-file "$port_file" --timeout 120 "$@" \
    >"$work/$name.worker.log" 2>&1 &
  worker_pid=$!
  for _ in $(seq 200); do
    [[ -s "$port_file" ]] && break
    sleep 0.05
  done
  [[ -s "$port_file" ]] || fail "$name: the stand-in worker did not start: $(cat "$work/$name.worker.log")"
  port="$(cat "$port_file")"
}

# Waits for the worker; fails unless it exited 0.
stop_worker() {
  local name="$1"
  local status=0
  wait "$worker_pid" || status=$?
  worker_pid=
  [[ $status -eq 0 ]] || fail "$name: the stand-in worker failed ($status): $(cat "$work/$name.worker.log")"
}

# The firmware's final counters: "N frames pushed, N sent, N dropped, N results, ...".
final_counts() {
  sed -n 's/^firmware: \([0-9]*\) frames pushed, \([0-9]*\) sent, \([0-9]*\) dropped, \([0-9]*\) results.*/\1 \2 \3 \4/p' "$1"
}

# check_stream NAME OUT EXPECTED_FRAMES: every frame sent and answered, one line per result.
check_stream() {
  local name="$1" out="$2" expected="$3"
  local counts pushed sent dropped results lines
  counts="$(final_counts "$out")"
  [[ -n "$counts" ]] || fail "$name: no final statistics line:\n$(tail -20 "$out")"
  read -r pushed sent dropped results <<<"$counts"
  lines="$(grep -c '^result rtp=' "$out" || true)"
  [[ $pushed -eq $expected && $sent -eq $expected && $dropped -eq 0 && $results -eq $expected ]] ||
    fail "$name: expected $expected frames pushed, sent and answered, 0 dropped; got $counts"
  [[ $lines -eq $expected ]] || fail "$name: $lines result lines for $expected frames"
  grep -q "access units" "$work/$name.worker.log" || fail "$name: worker summary missing"
  grep -q " $expected access units" "$work/$name.worker.log" ||
    fail "$name: the worker did not see $expected access units: $(tail -3 "$work/$name.worker.log")"
}

# run_firmware NAME [VAR=VALUE...] -- COMMAND...: runs COMMAND against a fresh worker, with
# @SERVER@ in it replaced by the worker's address; output in $work/NAME.out.
run_firmware() {
  local name="$1"
  shift
  local env=() command=()
  while [[ $1 != -- ]]; do env+=("$1"); shift; done
  shift
  start_worker "$name" --pli-after 40
  for arg in "$@"; do command+=("${arg//@SERVER@/127.0.0.1:$port}"); done
  local status=0
  env "${env[@]}" "${command[@]}" >"$work/$name.out" 2>&1 || status=$?
  [[ $status -eq 0 ]] || fail "$name: firmware exited $status:\n$(tail -30 "$work/$name.out")"
  stop_worker "$name"
}

asan_env=(ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:exitcode=23 LSAN_OPTIONS=exitcode=23)

for stream in "${streams[@]}"; do
  name="$(basename "$stream" .h264)"
  run_firmware "$name" -- "$work/firmware" @SERVER@ "$stream" 60
  check_stream "$name" "$work/$name.out" $frames
  grep -q 'event: keyframe requested (picture loss)' "$work/$name.out" ||
    fail "$name: the worker's PLI did not reach the firmware"
  pass "$name: $frames access units pushed at 60 fps, $frames results, PLI → keyframe request"

  run_firmware "$name-asan" "${asan_env[@]}" -- "$work/firmware-asan" @SERVER@ "$stream" 60
  check_stream "$name-asan" "$work/$name-asan.out" $frames
  pass "$name under AddressSanitizer + LeakSanitizer: no errors, no leaks"
done

run_firmware camera -- "$work/firmware" @SERVER@ camera:pattern 60 --frames 60 --size 320x240
counts="$(final_counts "$work/camera.out")"
read -r pushed sent dropped results <<<"$counts"
[[ $pushed -ge 60 && $sent -eq $pushed && $dropped -eq 0 && $results -eq $pushed ]] ||
  fail "camera: expected >= 60 frames sent and answered, none dropped; got $counts"
pass "camera mode (pattern → openh264 in the SDK): $pushed frames, $results results"

# Ctrl-C in the middle of a looping stream: a clean shutdown, plain and under ASan.
for variant in firmware firmware-asan; do
  name="sigint-$variant"
  start_worker "$name"
  env "${asan_env[@]}" "$work/$variant" "127.0.0.1:$port" "${streams[0]}" 30 --loop \
    >"$work/$name.out" 2>&1 &
  firmware_pid=$!
  sleep 2
  kill -INT "$firmware_pid"
  status=0
  wait "$firmware_pid" || status=$?
  [[ $status -eq 0 ]] || fail "$name: exit $status after SIGINT:\n$(tail -30 "$work/$name.out")"
  grep -q 'interrupted, shutting down' "$work/$name.out" || fail "$name: no shutdown message"
  counts="$(final_counts "$work/$name.out")"
  read -r pushed sent dropped results <<<"$counts"
  [[ $pushed -gt 20 && $results -eq $pushed && $dropped -eq 0 ]] ||
    fail "$name: after SIGINT expected every pushed frame answered; got $counts"
  stop_worker "$name"
  pass "$name: SIGINT after $pushed frames → results for all, clean exit"
done

# --- 5. edge cases, plain and under ASan; valgrind ------------------------------------------
"$work/edge_cases" >"$work/edge_cases.out" 2>&1 || fail "edge_cases: $(cat "$work/edge_cases.out")"
env "${asan_env[@]}" "$work/edge_cases-asan" >"$work/edge_cases-asan.out" 2>&1 ||
  fail "edge_cases under ASan: $(cat "$work/edge_cases-asan.out")"
pass "$(tail -n1 "$work/edge_cases-asan.out") (edge cases from C, also under ASan + LSan)"

if [[ "${CAPI_TEST_VALGRIND:-1}" != 0 ]] && command -v valgrind >/dev/null 2>&1; then
  run_firmware valgrind -- valgrind --error-exitcode=1 --leak-check=full \
    --errors-for-leak-kinds=definite,indirect,possible --quiet "$work/firmware" @SERVER@ "${streams[0]}" 30 --frames 30
  check_stream valgrind "$work/valgrind.out" 30
  pass "firmware under valgrind --leak-check=full: no errors, no leaks (definite, indirect or possible)"
else
  log "valgrind skipped"
fi

log "$passed passed, 0 failed"
