#!/usr/bin/env python3
"""Writes tiny-seg.onnx, tiny-seg-b1.onnx, their manifests and tiny-seg.expected.bin.

tiny-seg is a test fixture shaped like DeepLabV3 (NCHW float input, Cityscapes train-class logits
at output stride 8), not a trained model: its weights are seeded random numbers. It is built with
the `onnx` helper API and numpy only (no PyTorch), opset 17:

    input  "input"  float32 N x 3 x 128 x 128   (N dynamic)
    Conv 3->16  3x3 stride 2 + ReLU             -> 64 x 64
    Conv 16->24 3x3 stride 2 + ReLU             -> 32 x 32
    Conv 24->32 3x3 stride 2 + ReLU             -> 16 x 16
    Conv 32->32 3x3 dilation 2 + ReLU           (an atrous layer, as in DeepLabV3's head)
    Conv 32->19 1x1                             -> "logits" float32 N x 19 x 16 x 16

tiny-seg-b1.onnx is the same network with a fixed batch of 1 (input 1 x 3 x 128 x 128), as a
static-shape export gives; the worker runs such models one image at a time.

tiny-seg.expected.bin holds the logits that ONNX Runtime computes for `formula_input(2)` (the Rust
tests build the same input), as little-endian float32 in NCHW order, 2 x 19 x 16 x 16 values.

Regenerate (from the repository root, after .ci/python-env.sh):

    .venv/bin/python engines/tiny/make_tiny_model.py

`--size S` builds the same network and weights for an S x S input instead (logits ceil(S/8)
square) and writes only tiny-seg-S.onnx and tiny-seg-S.toml, e.g. `--size 520` for the
benchmark's DeepLabV3-sized input (cloud-worker/benches/pipeline.rs).
"""

import argparse
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

NAME = "tiny-seg"
SIZE = 128  # input height and width
NUM_CLASSES = 19  # Cityscapes train ids
OPSET = 17
IR_VERSION = 8  # the IR of opset 17; readable by every ONNX Runtime from 1.11 on
EXPECTED_BATCH = 2


def formula_input(n: int, size: int = SIZE) -> np.ndarray:
    """The fixed test input, exactly representable in float32.

    x[b, c, h, w] = ((h * w + 3c + 11b + 5h) mod 23) / 11 - 1
    """
    b, c, h, w = np.meshgrid(
        np.arange(n), np.arange(3), np.arange(size), np.arange(size), indexing="ij"
    )
    return (((h * w + 3 * c + 11 * b + 5 * h) % 23).astype(np.float32) / 11.0 - 1.0).astype(
        np.float32
    )


def build_model(batch, size: int = SIZE, graph_name: str = NAME) -> onnx.ModelProto:
    """The network for a `size` x `size` input; `batch` is the batch dimension: "N" (dynamic) or 1."""
    rng = np.random.default_rng(42)
    # (in, out, kernel, stride, dilation, relu)
    layers = [
        (3, 16, 3, 2, 1, True),
        (16, 24, 3, 2, 1, True),
        (24, 32, 3, 2, 1, True),
        (32, 32, 3, 1, 2, True),
        (32, NUM_CLASSES, 1, 1, 1, False),
    ]
    nodes, inits = [], []
    x = "input"
    for i, (cin, cout, k, stride, dil, relu) in enumerate(layers):
        fan_in = cin * k * k
        w = (rng.standard_normal((cout, cin, k, k)) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        b = (rng.standard_normal(cout) * 0.1).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"conv{i}.weight"),
                  numpy_helper.from_array(b, f"conv{i}.bias")]
        pad = dil * (k - 1) // 2
        last = i == len(layers) - 1
        y = "logits" if last else f"conv{i}"
        nodes.append(helper.make_node(
            "Conv", [x, f"conv{i}.weight", f"conv{i}.bias"], [y], name=f"conv{i}",
            kernel_shape=[k, k], strides=[stride, stride], dilations=[dil, dil],
            pads=[pad, pad, pad, pad]))
        if relu:
            nodes.append(helper.make_node("Relu", [y], [f"relu{i}"], name=f"relu{i}"))
            y = f"relu{i}"
        x = y

    out = -(-size // 8)
    graph = helper.make_graph(
        nodes, graph_name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, NUM_CLASSES, out, out])],
        initializer=inits)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="make_tiny_model.py",
        doc_string="FlowCloud test fixture: DeepLabV3-shaped, seeded random weights, not trained.")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def manifest(name: str, size: int = SIZE) -> str:
    return f"""\
# Manifest of {name}.onnx, written by make_tiny_model.py (a test fixture with random weights).
name = "{name}"
input_name = "input"
output_name = "logits"
input_width = {size}
input_height = {size}
channel_order = "rgb"
mean = [0.485, 0.456, 0.406]
std = [0.229, 0.224, 0.225]
classes = "cityscapes-train"
output_stride = 8
precision = "fp32"
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--size", type=int, default=SIZE,
                        help=f"input side in pixels (default {SIZE}); other sizes write only "
                             "tiny-seg-SIZE.onnx and tiny-seg-SIZE.toml")
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)

    import onnxruntime as ort

    if args.size != SIZE:
        write_sized(args.out_dir, args.size, ort)
        return

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    x = formula_input(EXPECTED_BATCH)
    results = {}
    for name, batch in [(NAME, "N"), (f"{NAME}-b1", 1)]:
        onnx_path = args.out_dir / f"{name}.onnx"
        onnx_path.write_bytes(build_model(batch).SerializeToString())
        (args.out_dir / f"{name}.toml").write_text(manifest(name))
        sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        if batch == "N":
            (logits,) = sess.run(["logits"], {"input": x})
        else:
            logits = np.concatenate([sess.run(["logits"], {"input": x[i:i + 1]})[0]
                                     for i in range(EXPECTED_BATCH)])
        assert logits.shape == (EXPECTED_BATCH, NUM_CLASSES, SIZE // 8, SIZE // 8), logits.shape
        results[name] = logits
        print(f"wrote {onnx_path} ({onnx_path.stat().st_size} bytes) and {name}.toml")
    # Batched or one at a time, the same logits.
    np.testing.assert_allclose(results[NAME], results[f"{NAME}-b1"], rtol=0, atol=1e-5)
    logits = results[NAME]
    logits.astype("<f4").tofile(args.out_dir / f"{NAME}.expected.bin")
    print(f"wrote {NAME}.expected.bin (onnxruntime {ort.__version__}; logits mean "
          f"{logits.mean():.4f}, std {logits.std():.4f})")


def write_sized(out_dir: Path, size: int, ort) -> None:
    """tiny-seg-SIZE.onnx (dynamic batch) and its manifest: the same weights at another size."""
    if not 8 <= size <= 8192:
        raise SystemExit(f"--size {size}: must be 8..8192")
    name = f"{NAME}-{size}"
    onnx_path = out_dir / f"{name}.onnx"
    onnx_path.write_bytes(build_model("N", size, name).SerializeToString())
    (out_dir / f"{name}.toml").write_text(manifest(name, size))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    (logits,) = sess.run(["logits"], {"input": formula_input(1, size)})
    out = -(-size // 8)
    assert logits.shape == (1, NUM_CLASSES, out, out), logits.shape
    print(f"wrote {onnx_path} ({onnx_path.stat().st_size} bytes) and {name}.toml "
          f"(logits 1 x {NUM_CLASSES} x {out} x {out})")


if __name__ == "__main__":
    main()
