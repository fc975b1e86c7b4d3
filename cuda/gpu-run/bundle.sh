#!/usr/bin/env bash
# Builds the GPU check bundle: everything a GPU machine without cargo needs to run every GPU
# check of issue 7 with one command (`bash target/gpu-bundle/run.sh`, results under $OUT).
#
#   cuda/gpu-run/bundle.sh [BUNDLE_DIR]      (default target/gpu-bundle; `just gpu-bundle`)
#
# Contents (at most 64 MiB, the most a GPU run can carry; checked at the end):
#   run.sh                 this folder's run.sh
#   bin/                   stripped release binaries: flowcloud-gpu-check, nvdec_throughput,
#                          gpu_stages, h264_streams, the test binaries of flowcloud-cuda (test-cuda-*) and
#                          flowcloud-worker's unit tests (test-worker-lib, for the NVDEC tests)
#   streams/*.h264         openh264 (edge SDK encoder, street scene) and x264 (GStreamer) streams,
#                          the committed 4:2:0 test vectors, and a resolution-change stream; each
#                          checked to decode with openh264 here
#   lib/libstdc++.so.6     this machine's, used on the GPU machine only if it has none
#   nvrtc/*.xz             the pinned NVRTC 13.0.88 (.ci/cuda-compilers.sh), xz-compressed (110 MB raw)
#   MANIFEST.txt           commit, build time, sha256 of every file
#
# Needs: cargo, python3 (reads cargo's JSON messages), gst-launch-1.0 with x264enc, xz, strip.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT="$PWD"
BUNDLE="${1:-target/gpu-bundle}"
CACHE="target/gpu-bundle-cache"
MAX_BYTES=$((64 * 1024 * 1024))
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

step() { printf 'gpu-bundle: %s\n' "$*"; }
die() { printf 'gpu-bundle: error: %s\n' "$*" >&2; exit 1; }
for tool in cargo python3 xz strip gst-launch-1.0; do
  command -v "$tool" >/dev/null || die "$tool is not installed (needed to build the bundle)"
done
gst-inspect-1.0 x264enc >/dev/null 2>&1 || die "GStreamer's x264enc is missing (gstreamer1.0-plugins-ugly)"

rm -rf "$BUNDLE"
mkdir -p "$BUNDLE"/{bin,streams,nvrtc} "$CACHE"

step "building release binaries"
cargo build --release --locked -p flowcloud-cuda --bin flowcloud-gpu-check
cargo build --release --locked -p flowcloud-worker --example nvdec_throughput --example gpu_stages \
  --example h264_streams
# Test binaries, found from cargo's own messages: name<TAB>path of each test executable.
test_executables() {
  cargo test --release --locked --no-run --message-format=json "$@" 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["target"]["name"] + "\t" + m["executable"])
'
}
cargo test --release --locked --no-run -p flowcloud-cuda >/dev/null 2>&1 || cargo test --release --locked --no-run -p flowcloud-cuda
cargo test --release --locked --no-run -p flowcloud-worker --lib >/dev/null 2>&1 || cargo test --release --locked --no-run -p flowcloud-worker --lib
copied=0
while IFS=$'\t' read -r name path; do
  strip -o "$BUNDLE/bin/test-cuda-$name" "$path"; copied=$((copied + 1))
done < <(test_executables -p flowcloud-cuda)
((copied >= 4)) || die "expected the flowcloud-cuda test binaries (lib, nvrtc, context, gpu_check_cli), found $copied"
worker_lib="$(test_executables -p flowcloud-worker --lib | awk -F'\t' '$1 == "flowcloud_worker" { print $2 }')"
[[ -n $worker_lib ]] || die "cargo did not report flowcloud-worker's unit-test binary"
strip -o "$BUNDLE/bin/test-worker-lib" "$worker_lib"
strip -o "$BUNDLE/bin/flowcloud-gpu-check" "$TARGET_DIR/release/flowcloud-gpu-check"
for example in nvdec_throughput gpu_stages h264_streams; do
  strip -o "$BUNDLE/bin/$example" "$TARGET_DIR/release/examples/$example"
done

# openh264 is C++: a fallback libstdc++ for a machine without one (run.sh uses it only then).
mkdir -p "$BUNDLE/lib"
libstdcxx="$(ldd "$BUNDLE/bin/test-worker-lib" | awk '$1 == "libstdc++.so.6" { print $3 }')"
[[ -f $libstdcxx ]] || die "cannot find the libstdc++.so.6 the worker binaries link"
cp -L "$libstdcxx" "$BUNDLE/lib/libstdc++.so.6"

step "streams"
streams="$BUNDLE/streams"
"$BUNDLE/bin/h264_streams" generate "$streams" 2>&1 | grep -v '^\[OpenH264\]' || true
# x264 streams (main, high and baseline; 322x242 and 642x362 are cropped), no B-frames
# (tune=zerolatency): the worker's decoders output one picture per access unit.
for spec in "main 1280 720 300" "high 1920 1080 60" "high 322 242 60" "baseline 642 362 60"; do
  read -r profile w h n <<<"$spec"
  kbps=$((w * h * 2000 / 921600 + 64))
  gst-launch-1.0 -q videotestsrc num-buffers="$n" pattern=ball motion=wavy \
    ! "video/x-raw,width=$w,height=$h,framerate=30/1,format=I420" \
    ! x264enc tune=zerolatency bitrate="$kbps" key-int-max=60 \
    ! "video/x-h264,profile=$profile,stream-format=byte-stream" \
    ! filesink location="$streams/x264-$profile-${w}x$h-${n}f.h264"
done
# The committed test vectors the bit-exact test uses by default (4:2:0, progressive).
for v in openh264-322x242 openh264-640x480 x264-baseline-320x240 x264-high-322x242 x264-main-1280x720; do
  cp "edge-sdk/core/testdata/$v.h264" "$streams/vector-$v.h264"
done
# A mid-stream resolution change, openh264 and x264 mixed: 322x242 → 1280x720 → 642x362.
cat "$streams/openh264-322x242-60f.h264" "$streams/x264-main-1280x720-300f.h264" \
  "$streams/openh264-642x362-60f.h264" >"$streams/resolution-change-322x242-1280x720-642x362.h264"
"$BUNDLE/bin/h264_streams" verify "$streams"

step "NVRTC (pinned, xz)"
.ci/cuda-compilers.sh
lib=".venv/nvrtc-13.0/nvidia/cu13/lib"
for f in libnvrtc.so.13 libnvrtc-builtins.so.13.0; do
  sum="$(sha256sum "$lib/$f" | cut -c1-16)"
  cached="$CACHE/$f.$sum.xz"
  # Compressing 110 MB takes over a minute on two cores: once per library version.
  [[ -s $cached ]] || { xz -T0 -6 -c "$lib/$f" >"$cached.tmp" && mv "$cached.tmp" "$cached"; }
  cp "$cached" "$BUNDLE/nvrtc/$f.xz"
done

cp cuda/gpu-run/run.sh "$BUNDLE/run.sh"
chmod +x "$BUNDLE/run.sh"
{
  echo "FlowCloud GPU check bundle"
  echo "commit: $(git rev-parse HEAD)$(git diff --quiet HEAD -- . 2>/dev/null || echo ' (with uncommitted changes)')"
  echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -srm), $(ldd --version 2>/dev/null | head -1)"
  echo
  (cd "$BUNDLE" && find . -type f ! -name MANIFEST.txt -printf '%P\n' | sort | xargs sha256sum)
} >"$BUNDLE/MANIFEST.txt"

bytes="$(du -sb "$BUNDLE" | cut -f1)"
((bytes <= MAX_BYTES)) || die "$BUNDLE is $((bytes / 1048576)) MiB, over the 64 MiB a GPU run carries"
step "$BUNDLE: $((bytes / 1048576)) MiB ($bytes bytes) of 64 MiB; run on a GPU machine: bash $BUNDLE/run.sh"
