#!/usr/bin/env python3
"""Times ONNX Runtime's own Python API on one model: the baseline the worker's Rust engine is held to.

DESIGN.md, "Performance targets": the worker's ONNX Runtime inference must be within 1.1x of
ONNX Runtime's own Python time on the same model and machine. cloud-worker/benches/pipeline.rs
runs this script as a subprocess (with the repository's .venv) next to its own measurement and
prints the two side by side; it can also be run by hand:

    .venv/bin/python engines/bench_onnxruntime.py --model engines/tiny/tiny-seg.onnx \\
        --iterations 300 --threads 2

The session is set up as the worker's OnnxRuntimeEngine sets up its own (cloud-worker/src/engine/
onnxruntime.rs): CPU execution provider, `--threads` intra-op threads, the intra-op spinning
setting left at ONNX Runtime's default unless `--spinning on|off` is given, and the graph
optimization level and execution mode the engine leaves at their C API defaults, set here
explicitly to the same values (ORT_ENABLE_ALL, ORT_SEQUENTIAL). The input is batch 1 of the
formula input of engines/tiny (x[b,c,h,w] = ((h*w + 3c + 11b + 5h) mod 23) / 11 - 1), at the
model's input size; the Rust benchmark feeds the same values.

Each timed iteration is one `session.run([output], {input: x})`, measured with
time.perf_counter_ns. Prints one JSON object on stdout:

    {"median_ms": .., "p90_ms": .., "min_ms": .., "mean_ms": .., "iterations": N, "warmup": W,
     "threads": T, "spinning": "default", "graph_optimization_level": "ORT_ENABLE_ALL",
     "execution_mode": "ORT_SEQUENTIAL", "onnxruntime": "1.31.1", "samples_ms": [...]}

Quantiles are linear interpolation between order statistics (numpy's default), as the Rust side
computes them.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort


def formula_input(n: int, height: int, width: int) -> np.ndarray:
    """engines/tiny's fixed input at any size, exactly representable in float32."""
    b, c, h, w = np.meshgrid(
        np.arange(n), np.arange(3), np.arange(height), np.arange(width), indexing="ij"
    )
    return (((h * w + 3 * c + 11 * b + 5 * h) % 23).astype(np.float32) / 11.0 - 1.0).astype(
        np.float32
    )


def quantile(sorted_values: list, q: float) -> float:
    """Linear interpolation between order statistics of a sorted, non-empty list."""
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="the .onnx file")
    parser.add_argument("--iterations", type=int, default=100, help="timed runs (default 100)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed runs first (default 10)")
    parser.add_argument("--threads", type=int, required=True, help="intra-op threads")
    parser.add_argument("--spinning", choices=["default", "on", "off"], default="default",
                        help="intra-op spinning (default: ONNX Runtime's default, on)")
    parser.add_argument("--input-name", default="input")
    parser.add_argument("--output-name", default="logits")
    args = parser.parse_args()
    if args.iterations < 1 or args.warmup < 0 or args.threads < 1:
        parser.error("--iterations and --threads must be >= 1, --warmup >= 0")

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if args.spinning != "default":
        opts.add_session_config_entry(
            "session.intra_op.allow_spinning", "1" if args.spinning == "on" else "0"
        )
    sess = ort.InferenceSession(str(args.model), opts, providers=["CPUExecutionProvider"])

    (inp,) = [i for i in sess.get_inputs() if i.name == args.input_name]
    height, width = inp.shape[2], inp.shape[3]
    if not (isinstance(height, int) and isinstance(width, int)):
        print(f"{args.model}: input size is dynamic ({inp.shape}); need a fixed H and W",
              file=sys.stderr)
        return 2
    x = formula_input(1, height, width)
    feeds = {args.input_name: x}
    outputs = [args.output_name]

    for _ in range(args.warmup):
        sess.run(outputs, feeds)
    samples = []
    for _ in range(args.iterations):
        start = time.perf_counter_ns()
        sess.run(outputs, feeds)
        samples.append((time.perf_counter_ns() - start) / 1e6)

    ordered = sorted(samples)
    print(json.dumps({
        "median_ms": quantile(ordered, 0.5),
        "p90_ms": quantile(ordered, 0.9),
        "min_ms": ordered[0],
        "mean_ms": sum(samples) / len(samples),
        "iterations": args.iterations,
        "warmup": args.warmup,
        "threads": args.threads,
        "spinning": args.spinning,
        "graph_optimization_level": opts.graph_optimization_level.name,
        "execution_mode": opts.execution_mode.name,
        "onnxruntime": ort.__version__,
        "samples_ms": samples,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
