# FlowCloud recipes. `just --list` shows them; `just test` is what CI runs.

set shell := ["bash", "-euo", "pipefail", "-c"]
# Recipe arguments reach the shell as "$@", so arguments with spaces survive.
set positional-arguments

fuzz_dir := "edge-sdk/core/fuzz"
nvcc := justfile_directory() / ".venv/nvcc-13.0/nvidia/cu13/bin/nvcc"

# cuda/build.rs compiles the kernels to PTX with the pinned nvcc that setup installs; without it
# the build looks for another nvcc, and with none NVRTC compiles the kernels at run time.
export FLOWCLOUD_NVCC := if path_exists(nvcc) == "true" { nvcc } else { env_var_or_default("FLOWCLOUD_NVCC", "") }

# Show the recipes.
default:
    @{{ just_executable() }} --list

# Install everything the project needs (apt packages, Rust targets and tools); fast when done.
setup:
    .ci/setup.sh

# The main job: simulated cameras stream synthetic street scenes as H.264 to a real flowcloud-worker (decode, segment with the demo model), get the class map of every frame back and score it; overlays go to out/demo/.
demo *args: setup
    cargo build --release --locked -p flowcloud-worker -p flowcloud-tests
    "${CARGO_TARGET_DIR:-target}/release/flowcloud-demo" "$@"

# The demo model's accuracy on 200 fresh streets (10 frames each): directly (flowcloud-worker eval) and end to end (flowcloud-demo); figures go to out/demo-accuracy/.
demo-accuracy: setup
    #!/usr/bin/env bash
    set -euo pipefail
    cargo build --release --locked -p flowcloud-worker -p flowcloud-tests -p flowcloud-edge
    bin="${CARGO_TARGET_DIR:-target}/release"
    out=out/demo-accuracy
    rm -rf "$out" && mkdir -p "$out"
    # World 303: no training (101) or validation (202) street comes from it.
    "$bin/flowcloud-scenes" --out "$out/data" --split test --seed 303 --sequences 200 \
        --frames-per-sequence 10 --frame-step 1 --fps 10
    "$bin/flowcloud-worker" eval --model engines/demo/street-demo.onnx --gt "$out/data" --split test \
        --json "$out/direct.json"
    "$bin/flowcloud-demo" --cameras 1 --frames 2000 --fps 10 --scene-seed 303 --frames-per-street 10 \
        --out "$out/stored" --json "$out/end-to-end.json"

# Train the demo model on synthetic street scenes and export it to engines/demo/ (CPU, about 40 minutes; resumable).
train-demo:
    engines/demo/train.sh

# The protocol-only demo: a test-pattern stream packetized, framed, sent over loopback TCP, depacketized and checked.
demo-loopback *args: setup
    cargo run --release --locked -p flowcloud-tests --bin flowcloud-loopback -- "$@"

# The whole test suite, what CI runs: lints, no_std build, tests, fuzzing, benchmark smoke test.
test: setup
    cargo fmt --all --check
    cargo clippy --workspace --all-targets --locked -- -D warnings
    cargo clippy -p flowcloud-core --no-default-features --locked -- -D warnings
    cargo clippy -p flowcloud-edge --no-default-features --all-targets --locked -- -D warnings
    cargo clippy -p flowcloud-edge --features argus-fake --all-targets --locked -- -D warnings
    cargo clippy -p flowcloud-edge-capi --no-default-features --all-targets --locked -- -D warnings
    cargo build -p flowcloud-core --no-default-features --target thumbv7em-none-eabihf --locked
    cargo test --workspace --locked
    {{ just_executable() }} capi-header-check
    {{ just_executable() }} capi-test
    {{ just_executable() }} capi-aarch64
    {{ just_executable() }} edge-aarch64
    {{ just_executable() }} cross-lint
    cargo test -p flowcloud-core --no-default-features --locked --lib
    cargo test -p flowcloud-edge --features argus-fake --locked --lib argus
    {{ just_executable() }} engines-test
    {{ just_executable() }} v4l2-vm
    {{ just_executable() }} fuzz-check
    {{ just_executable() }} fuzz 60
    cargo bench -p flowcloud-core --locked -- --test
    {{ just_executable() }} bench-models 128
    cargo bench -p flowcloud-worker --locked --bench pipeline -- --test
    cargo bench -p flowcloud-edge --locked --bench sender -- --test

# Compile every fuzz target of the protocol core (nightly).
fuzz-build: _fuzz-crate
    cd {{ fuzz_dir }} && cargo +nightly fuzz build

# Compile-only check of the fuzz targets (same as fuzz-build).
fuzz-check: fuzz-build

# Run every fuzz target for `seconds` each, corpus in edge-sdk/core/fuzz/corpus/<target>; fails on a crash.
fuzz seconds="60": _fuzz-crate
    #!/usr/bin/env bash
    set -euo pipefail
    cd {{ fuzz_dir }}
    targets="$(cargo +nightly fuzz list)"
    [[ -n "$targets" ]] || { echo "fuzz: no fuzz targets in {{ fuzz_dir }}" >&2; exit 1; }
    for target in $targets; do
        mkdir -p "corpus/$target"
        echo "fuzz: $target for {{ seconds }} s"
        # Seeds and past findings are read (and so replayed) too; only corpus/ is written.
        dirs=("corpus/$target" "seeds/$target")
        [[ -d "regressions/$target" ]] && dirs+=("regressions/$target")
        cargo +nightly fuzz run "$target" "${dirs[@]}" -- -max_total_time={{ seconds }}
    done

# The model tooling's tests (export parity, GMAC, fine-tuning); installs PyTorch into .venv first.
engines-test:
    .ci/python-env.sh --torch
    .venv/bin/python -m pytest -q engines/tests

# The CUDA kernels without a GPU: every kernel compiled to PTX by the pinned NVRTC 13.0 and, at build time, nvcc 13.0 (same PTX), the "not available" errors, the CPU references.
cuda-check:
    .ci/cuda-compilers.sh
    CI="${CI:-1}" cargo test -p flowcloud-cuda --locked

# Build the GPU check bundle (target/gpu-bundle, at most 64 MiB: release binaries, H.264 streams, the pinned NVRTC) and run its run.sh here as a test of its mechanics; on a GPU machine `bash target/gpu-bundle/run.sh` runs every GPU check of issue 7.
gpu-bundle:
    cuda/gpu-run/bundle.sh target/gpu-bundle
    cuda/gpu-run/selftest.sh target/gpu-bundle

# Export a network to ONNX with its manifest, e.g. `just export --arch deeplabv3_resnet50 --weights torchvision --size 1024x512 --out engines/build/dl.onnx`.
export *args:
    .ci/python-env.sh --torch
    PYTHONPATH=engines .venv/bin/python -m flowcloud_engines.export "$@"

# Fine-tune on a Cityscapes-format folder (resumable), e.g. `just finetune --data DATA --weights torchvision --run-dir runs/x`.
finetune *args:
    .ci/python-env.sh --torch
    PYTHONPATH=engines .venv/bin/python -m flowcloud_engines.finetune "$@"

# Model report: parameters, size per precision, GMAC from the graph, latency and memory per backend.
model-report *args:
    .ci/python-env.sh --torch
    PYTHONPATH=engines .venv/bin/python -m flowcloud_engines.report "$@"

# Parity report between backends or precisions: max |Δlogit|, argmax agreement, channel order.
parity *args:
    .ci/python-env.sh --torch
    PYTHONPATH=engines .venv/bin/python -m flowcloud_engines.parity "$@"

# Export the benchmark's DeepLabV3-ResNet50 (seeded random weights) at these sizes (default 128×128 and 520×520) into engines/build/bench/ (skips those already there).
bench-models sides="128 520":
    #!/usr/bin/env bash
    set -euo pipefail
    .ci/python-env.sh --torch
    for side in {{ sides }}; do
        out="engines/build/bench/deeplabv3-resnet50-$side.onnx"
        [[ -s "$out" && -s "${out%.onnx}.toml" ]] && continue
        PYTHONPATH=engines .venv/bin/python -m flowcloud_engines.export --arch deeplabv3_resnet50 \
            --weights random:0 --size "${side}x${side}" --name "deeplabv3-resnet50-$side" --out "$out"
    done

# Run the benchmarks: the protocol core (criterion), the worker's CPU path against ONNX Runtime from Python, the edge sender against GStreamer.
bench:
    {{ just_executable() }} bench-models
    cargo bench -p flowcloud-core --locked
    cargo bench -p flowcloud-worker --locked --bench pipeline
    cargo bench -p flowcloud-edge --locked --bench sender

# V4L2 capture and the M2M encoder against the kernel's vivid and vicodec drivers in a qemu guest (downloads and caches under target/v4l2-vm).
v4l2-vm:
    tests/v4l2-vm/run.sh

# Regenerate the edge SDK's C header (edge-sdk/capi/include/flowcloud_edge.h) with the pinned cbindgen.
capi-header:
    edge-sdk/capi/scripts/cbindgen.sh generate edge-sdk/capi/include/flowcloud_edge.h

# Fail if the committed C header differs from what cbindgen makes of the source now.
capi-header-check:
    #!/usr/bin/env bash
    set -euo pipefail
    tmp="$(mktemp --suffix=.h)"
    trap 'rm -f "$tmp"' EXIT
    edge-sdk/capi/scripts/cbindgen.sh generate "$tmp"
    header=edge-sdk/capi/include/flowcloud_edge.h
    if ! diff -u --label "$header (committed)" --label "$header (generated)" "$header" "$tmp"; then
        echo "capi-header-check: $header is stale: run 'just capi-header' and commit it" >&2
        exit 1
    fi
    echo "capi-header-check: $header is up to date"

# The C library from C: firmware.c and the edge cases against a stand-in worker, plain, under ASan/LSan and valgrind.
capi-test:
    edge-sdk/capi/tests/capi.sh

# The C library cross-built for aarch64 (Jetson), C linked against it, and both run under qemu-user.
capi-aarch64:
    edge-sdk/capi/tests/aarch64.sh

# The edge crates (SDK, CLIs, C library) cross-built for aarch64 (Jetson) with Debian's cross gcc, and their tests run under qemu-user.
edge-aarch64:
    cross/check-aarch64.sh

# Cross-build the edge crates for Jetson in cross's container (cross/aarch64-jetson.Dockerfile, JetPack from Cross.toml); needs cross and Docker or Podman. Extra arguments go to cargo, e.g. `just cross --features argus`.
cross *args:
    #!/usr/bin/env bash
    set -euo pipefail
    command -v cross >/dev/null || { echo "cross: not installed: cargo install cross --locked (see cross/README.md)" >&2; exit 1; }
    docker info >/dev/null 2>&1 || podman info >/dev/null 2>&1 ||
        { echo "cross: needs a running container engine (Docker or Podman); without one use 'just edge-aarch64' (Debian's cross gcc)" >&2; exit 1; }
    cross build --target aarch64-unknown-linux-gnu -p flowcloud-edge -p flowcloud-edge-capi --release --locked "$@"

# Lint the cross-build image's Dockerfile with hadolint (installed into .venv by setup).
cross-lint:
    .ci/python-env.sh
    .venv/bin/hadolint cross/*.Dockerfile
    @echo "cross-lint: hadolint $(.venv/bin/hadolint --version | grep -o '[0-9.]*$') found nothing in" cross/*.Dockerfile

# Build the API documentation of the workspace.
doc:
    cargo doc --workspace --no-deps

[private]
_fuzz-crate:
    @test -f {{ fuzz_dir }}/Cargo.toml || { echo "error: no fuzz crate at {{ fuzz_dir }}" >&2; exit 1; }

# Regenerate the raw NVENC and NVDEC bindings (sys/src/nvenc.rs, sys/src/nvdec.rs) from Debian's libffmpeg-nvenc-dev (NVENC and NVDEC API 11.1); installs libclang and bindgen-cli first.
bindings:
    #!/usr/bin/env bash
    set -euo pipefail
    header=/usr/include/ffnvcodec/nvEncodeAPI.h
    bindgen_version=0.72.1
    # The same header, libclang and bindgen give the same file byte for byte.
    missing=()
    for pkg in libffmpeg-nvenc-dev libclang-dev; do
        dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null | grep -q '^ii' || missing+=("$pkg")
    done
    if ((${#missing[@]})); then
        sudo=(); [[ $(id -u) -eq 0 ]] || sudo=(sudo -n)
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
    if [[ "$(bindgen --version 2>/dev/null)" != "bindgen $bindgen_version" ]]; then
        cargo install --locked bindgen-cli --version "$bindgen_version"
    fi
    grep -q '^#define NVENCAPI_MAJOR_VERSION 11$' "$header" && grep -q '^#define NVENCAPI_MINOR_VERSION 1$' "$header" \
        || { echo "bindings: $header is not NVENC API 11.1" >&2; exit 1; }
    out=sys/src/nvenc.rs
    # Next to the output, so rustfmt reads the same configuration as `cargo fmt`.
    tmp="$(mktemp sys/src/.nvenc.rs.XXXXXX)"
    trap 'rm -f "$tmp"' EXIT
    # Enums stay integer constants: a status or picture type the driver adds later must not be
    # undefined behaviour. The function-like version macros are evaluated by clang
    # (--clang-macro-fallback); the exports are looked up at run time, so no extern functions.
    bindgen sys/nvenc.h --use-core --with-derive-default --no-prepend-enum-name \
        --clang-macro-fallback --wrap-unsafe-ops \
        --allowlist-item 'NV_ENC.*|NVENC.*|Nv.*|_NV.*|tNvEncodeAPI.*|tcu(Init|DeviceGet|CtxCreate_v2|CtxDestroy_v2)|CUDA_SUCCESS' \
        --blocklist-function '.*' --blocklist-var '.*_GUID' \
        --raw-line '// Generated by `just bindings` from sys/nvenc.h; do not edit.' \
        -o "$tmp"
    # The GUIDs are `static const` structs, which bindgen cannot express: copied from the header.
    awk '
        /^\/\/ \{[0-9A-Fa-f-]+\}[ \t]*$/ { uuid = $2; next }
        /^static const GUID/ {
            name = $0; sub(/^static const GUID[ \t]+/, "", name); sub(/[ \t]*=.*$/, "", name)
            if ((getline value) <= 0) { bad = name; exit }
            n = 0; split(value, parts, /[^0-9A-Fa-fx]+/)
            for (i = 1; i in parts; i++) if (parts[i] ~ /^0x/) hex[n++] = parts[i]
            if (n != 11) { bad = name; exit }
            printf "/// `%s` %s from nvEncodeAPI.h.\n", name, uuid
            printf "pub const %s: GUID = GUID { Data1: %s, Data2: %s, Data3: %s, Data4: [%s, %s, %s, %s, %s, %s, %s, %s] };\n", \
                name, hex[0], hex[1], hex[2], hex[3], hex[4], hex[5], hex[6], hex[7], hex[8], hex[9], hex[10]
            count++; uuid = ""
        }
        END {
            if (bad != "") { print "bindings: cannot read GUID " bad > "/dev/stderr"; exit 1 }
            if (count == 0) { print "bindings: no GUIDs in header" > "/dev/stderr"; exit 1 }
        }
    ' "$header" >> "$tmp"
    rustfmt --edition 2024 "$tmp"
    cat "$tmp" > "$out"
    echo "bindings: wrote $out"
    # NVDEC: FFmpeg's dynlink_cuviddec.h / dynlink_nvcuvid.h, which declare the library's entry
    # points as function types (tcuvid*), plus the CUDA driver calls the decoder needs.
    nvdec_header=/usr/include/ffnvcodec/dynlink_cuviddec.h
    grep -q '^#define NVDECAPI_MAJOR_VERSION 11$' "$nvdec_header" && grep -q '^#define NVDECAPI_MINOR_VERSION 1$' "$nvdec_header" \
        || { echo "bindings: $nvdec_header is not NVDEC API 11.1" >&2; exit 1; }
    out=sys/src/nvdec.rs
    tmp_nvdec="$(mktemp sys/src/.nvdec.rs.XXXXXX)"
    trap 'rm -f "$tmp" "$tmp_nvdec"' EXIT
    bindgen sys/nvdec.h --use-core --with-derive-default --no-prepend-enum-name \
        --clang-macro-fallback --wrap-unsafe-ops \
        --allowlist-item 'CUVID.*|_CUVID.*|CUvideo.*|cudaVideo.*|PFNVID.*|NVDECAPI.*|CUDA_MEMCPY2D|CU_MEMORYTYPE_.*|CUDA_SUCCESS' \
        --allowlist-item 'tcuvid(CreateVideoParser|ParseVideoData|DestroyVideoParser|GetDecoderCaps|CreateDecoder|DestroyDecoder|DecodePicture|GetDecodeStatus|ReconfigureDecoder|MapVideoFrame64|UnmapVideoFrame64|CtxLockCreate|CtxLockDestroy)' \
        --allowlist-item 'tcu(Init|DeviceGet|DeviceGetCount|DevicePrimaryCtxRetain|DevicePrimaryCtxRelease|CtxPushCurrent_v2|CtxPopCurrent_v2|Memcpy2D_v2|GetErrorName)' \
        --blocklist-function '.*' \
        --raw-line '// Generated by `just bindings` from sys/nvdec.h; do not edit.' \
        -o "$tmp_nvdec"
    rustfmt --edition 2024 "$tmp_nvdec"
    cat "$tmp_nvdec" > "$out"
    echo "bindings: wrote $out"
