"""Model report: parameters, size at FP32/FP16/INT8, multiply-accumulates per frame computed
from the ONNX graph, and measured latency and peak memory per backend.

    python -m flowcloud_engines.report MODEL.onnx [--backend onnxruntime --backend torch:ARCH]
        [--runs 10] [--json report.json]

MACs are counted from the graph after ONNX shape inference: a convolution costs
``output elements × (input channels / groups) × kernel area``, a Gemm/MatMul ``output elements
× inner dimension``; element-wise operators, pooling and resizes are not counted (the
convention behind torchvision's published figures). GFLOP = 2 × GMAC.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class GraphCost:
    parameters: int
    macs: int
    macs_by_op: dict[str, int] = field(default_factory=dict)


def _shape(value_info) -> list[int] | None:
    dims = value_info.type.tensor_type.shape.dim
    if not dims or any(not d.HasField("dim_value") for d in dims):
        return None
    return [d.dim_value for d in dims]


def graph_cost(model_path: Path) -> GraphCost:
    """Parameters and MACs of one inference, from the ONNX graph (static shapes needed)."""
    import onnx
    from onnx import numpy_helper, shape_inference

    model = shape_inference.infer_shapes(onnx.load(str(model_path)), strict_mode=True)
    graph = model.graph
    shapes: dict[str, list[int]] = {}
    for vi in list(graph.input) + list(graph.output) + list(graph.value_info):
        s = _shape(vi)
        if s is not None:
            shapes[vi.name] = s
    initializers = {init.name: init for init in graph.initializer}
    for name, init in initializers.items():
        shapes[name] = list(init.dims)
    # Constant nodes can hold weights too (some exporters fold them that way).
    parameters = sum(int(np.prod(init.dims)) for init in graph.initializer)
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    arr = numpy_helper.to_array(attr.t)
                    shapes[node.output[0]] = list(arr.shape)
                    if arr.size > 1:
                        parameters += arr.size

    macs_by_op: dict[str, int] = {}

    def need(name: str) -> list[int]:
        if name not in shapes:
            raise ValueError(f"{model_path}: no static shape for tensor {name!r}; export with a fixed input size")
        return shapes[name]

    for node in graph.node:
        if node.op_type in ("Conv", "ConvTranspose"):
            w = need(node.input[1])
            out = need(node.output[0])
            kernel_area = int(np.prod(w[2:]))
            # The weight shape already carries the grouping: Conv w is [M, C/group, kh, kw],
            # ConvTranspose w is [C, M/group, kh, kw] (each input element meets M/group × area).
            if node.op_type == "Conv":
                macs = int(np.prod(out)) * w[1] * kernel_area
            else:
                macs = int(np.prod(need(node.input[0]))) * w[1] * kernel_area
        elif node.op_type == "Gemm":
            a = need(node.input[0])
            out = need(node.output[0])
            trans_a = next((at.i for at in node.attribute if at.name == "transA"), 0)
            inner = a[0] if trans_a else a[1]
            macs = int(np.prod(out)) * inner
        elif node.op_type == "MatMul":
            a = need(node.input[0])
            out = need(node.output[0])
            macs = int(np.prod(out)) * a[-1]
        else:
            continue
        macs_by_op[node.op_type] = macs_by_op.get(node.op_type, 0) + macs
    return GraphCost(parameters=parameters, macs=sum(macs_by_op.values()), macs_by_op=macs_by_op)


@dataclass
class BackendMeasurement:
    backend: str
    runs: int
    threads: int
    latency_ms_p50: float
    latency_ms_min: float
    latency_ms_max: float
    peak_rss_mb: float


# Measured in a child process so each backend's peak resident memory is its own.
_MEASURE = r"""
import json, resource, statistics, sys, time
import numpy as np
backend, model, runs, threads, arch, classes = sys.argv[1:7]
runs, threads = int(runs), int(threads)
sys.path.insert(0, sys.argv[7])
from flowcloud_engines.manifest import Manifest
from pathlib import Path
m = Manifest.read(Path(model))
x = np.random.default_rng(0).standard_normal((1, 3, m.input_height, m.input_width)).astype(np.float32)
if backend == "onnxruntime":
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    run = lambda: sess.run(None, {m.input_name: x})
else:
    import torch
    torch.set_num_threads(threads)
    from flowcloud_engines import cityscapes, models
    net = models.load(arch, len(cityscapes.class_table(classes)), models.Weights("random", "0"))
    t = torch.from_numpy(x)
    def run():
        with torch.inference_mode():
            return net(t)
run()
times = []
for _ in range(runs):
    t0 = time.perf_counter(); run(); times.append((time.perf_counter() - t0) * 1e3)
print(json.dumps({"times": times, "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def measure(backend: str, model: Path, runs: int, threads: int, arch: str, classes: str) -> BackendMeasurement:
    engines_dir = str(Path(__file__).resolve().parent.parent)
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, backend, str(model), str(runs), str(threads), arch, classes, engines_dir],
        check=True, capture_output=True, text=True,
    )
    data = json.loads(out.stdout.strip().splitlines()[-1])
    times = data["times"]
    return BackendMeasurement(
        backend=backend if backend == "onnxruntime" else f"torch ({arch})",
        runs=runs,
        threads=threads,
        latency_ms_p50=statistics.median(times),
        latency_ms_min=min(times),
        latency_ms_max=max(times),
        peak_rss_mb=data["peak_rss_kb"] / 1024,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="flowcloud_engines.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="an .onnx file with its manifest next to it")
    parser.add_argument("--backend", action="append", default=[],
                        help="measure latency and memory on 'onnxruntime' or 'torch:ARCH' (PyTorch, "
                             "random weights of that architecture); repeatable; none: graph figures only")
    parser.add_argument("--runs", type=int, default=10, help="timed inferences per backend (after one warm-up)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="intra-op threads")
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")
    args = parser.parse_args(argv)

    from .manifest import Manifest

    manifest = Manifest.read(args.model)
    cost = graph_cost(args.model)
    report: dict = {
        "model": str(args.model),
        "input": f"{manifest.input_width}x{manifest.input_height}",
        "parameters": cost.parameters,
        "size_mb": {p: cost.parameters * b / 1e6 for p, b in (("fp32", 4), ("fp16", 2), ("int8", 1))},
        "gmac": cost.macs / 1e9,
        "gflop": 2 * cost.macs / 1e9,
        "gmac_by_op": {k: v / 1e9 for k, v in cost.macs_by_op.items()},
        "backends": [],
    }
    for spec in args.backend:
        kind, _, arch = spec.partition(":")
        if kind not in ("onnxruntime", "torch") or (kind == "torch" and not arch):
            parser.error(f"--backend {spec!r}: expected 'onnxruntime' or 'torch:ARCH'")
        report["backends"].append(asdict(measure(kind, args.model, args.runs, args.threads, arch, manifest.classes)))

    print(f"model      {args.model} ({report['input']}, {manifest.classes} classes)")
    print(f"parameters {cost.parameters:,} ({cost.parameters / 1e6:.2f} M)")
    print("size       " + ", ".join(f"{p.upper()} {mb:.1f} MB" for p, mb in report["size_mb"].items()))
    print(f"compute    {report['gmac']:.2f} GMAC = {report['gflop']:.2f} GFLOP per frame")
    if report["backends"]:
        print(f"{'backend':<24} {'threads':>7} {'p50 ms':>9} {'min ms':>9} {'max ms':>9} {'peak RSS MB':>12}")
        for b in report["backends"]:
            print(f"{b['backend']:<24} {b['threads']:>7} {b['latency_ms_p50']:>9.2f} {b['latency_ms_min']:>9.2f} "
                  f"{b['latency_ms_max']:>9.2f} {b['peak_rss_mb']:>12.0f}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
