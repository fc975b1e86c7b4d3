# FlowCloud recipes. `just --list` shows them; `just test` is what CI runs.

set shell := ["bash", "-euo", "pipefail", "-c"]
# Recipe arguments reach the shell as "$@", so arguments with spaces survive.
set positional-arguments

fuzz_dir := "edge-sdk/core/fuzz"

# Show the recipes.
default:
    @{{ just_executable() }} --list

# Install everything the project needs (apt packages, Rust targets and tools); fast when done.
setup:
    .ci/setup.sh

# The main job: simulated cameras stream H.264 to a real flowcloud-worker (decode, segment) and get a result per frame back.
demo *args: setup
    cargo build --release --locked -p flowcloud-worker -p flowcloud-tests
    "${CARGO_TARGET_DIR:-target}/release/flowcloud-demo" "$@"

# The protocol-only demo: a test-pattern stream packetized, framed, sent over loopback TCP, depacketized and checked.
demo-loopback *args: setup
    cargo run --release --locked -p flowcloud-tests --bin flowcloud-loopback -- "$@"

# The whole test suite, what CI runs: lints, no_std build, tests, fuzzing, benchmark smoke test.
test: setup
    cargo fmt --all --check
    cargo clippy --workspace --all-targets --locked -- -D warnings
    cargo clippy -p flowcloud-core --no-default-features --locked -- -D warnings
    cargo build -p flowcloud-core --no-default-features --target thumbv7em-none-eabihf --locked
    cargo test --workspace --locked
    cargo test -p flowcloud-core --no-default-features --locked --lib
    {{ just_executable() }} fuzz-check
    {{ just_executable() }} fuzz 60
    cargo bench -p flowcloud-core --locked -- --test
    cargo bench -p flowcloud-worker --locked --bench pipeline -- --test

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

# Run the benchmarks: the protocol core (criterion) and the worker's CPU path against ONNX Runtime from Python.
bench:
    cargo bench -p flowcloud-core --locked
    cargo bench -p flowcloud-worker --locked --bench pipeline

# Build the API documentation of the workspace.
doc:
    cargo doc --workspace --no-deps

[private]
_fuzz-crate:
    @test -f {{ fuzz_dir }}/Cargo.toml || { echo "error: no fuzz crate at {{ fuzz_dir }}" >&2; exit 1; }
