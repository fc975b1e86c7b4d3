"""Export parity (PyTorch vs ONNX Runtime on a random-weight DeepLabV3-ResNet50) and the model
report's compute figure against torchvision's published one."""

from pathlib import Path

import numpy as np
import pytest

from flowcloud_engines import cityscapes, export, models, parity, report
from flowcloud_engines.manifest import Manifest


@pytest.fixture(scope="module")
def deeplab_96(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "deeplabv3-96.onnx"
    assert export.main(["--arch", "deeplabv3_resnet50", "--weights", "random:3", "--size", "96x96", "--out", str(out)]) == 0
    return out


def test_manifest_is_written_and_describes_the_graph(deeplab_96: Path) -> None:
    m = Manifest.read(deeplab_96)
    assert (m.input_width, m.input_height, m.output_stride, m.classes) == (96, 96, 8, "train")
    assert m.source == "deeplabv3_resnet50, weights: random (seed 3)"
    import onnx

    graph = onnx.load(str(deeplab_96)).graph
    assert [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim] == [1, 3, 96, 96]
    assert [d.dim_value for d in graph.output[0].type.tensor_type.shape.dim] == [1, 19, 12, 12]
    assert onnx.load(str(deeplab_96)).opset_import[0].version == export.OPSET


def test_pytorch_and_onnxruntime_logits_agree(deeplab_96: Path) -> None:
    m = Manifest.read(deeplab_96)
    x = parity.inputs(m, None, 3, seed=11)
    results = parity.report(
        parity.make_backend("torch:deeplabv3_resnet50:random:3", deeplab_96, m),
        {"onnxruntime": parity.make_backend("onnxruntime", deeplab_96, m)},
        x,
    )
    (r,) = results
    assert r.straight.max_abs_diff <= 1e-3, r
    assert r.straight.argmax_agreement_pct >= 99.9, r
    assert r.channel_order_ok, r


def test_channel_order_check_catches_a_swapped_pipeline(deeplab_96: Path) -> None:
    m = Manifest.read(deeplab_96)
    ort = parity.make_backend("onnxruntime", deeplab_96, m)
    bgr_pipeline = lambda x: ort(np.ascontiguousarray(x[:, ::-1]))  # noqa: E731 — feeds BGR by mistake
    (r,) = parity.report(ort, {"bgr": bgr_pipeline}, parity.inputs(m, None, 2, seed=5))
    assert r.channel_order_ok is False
    assert r.channels_swapped.max_abs_diff < 1e-6


def test_deeplabv3_resnet50_at_520_costs_the_published_gmac(tmp_path: Path) -> None:
    # torchvision publishes 178.72 GFLOPS (multiply-accumulates) with the auxiliary FCN head;
    # the deployed graph has none, which leaves ≈168.7.
    out = tmp_path / "deeplabv3-520.onnx"
    export.main(["--size", "520x520", "--out", str(out)])
    cost = report.graph_cost(out)
    assert cost.macs / 1e9 == pytest.approx(168.7, abs=0.1)
    assert cost.parameters == pytest.approx(39.6e6, rel=0.01)
    assert set(cost.macs_by_op) == {"Conv"}


def test_demo_architecture_exports(tmp_path: Path) -> None:
    out = tmp_path / "demo.onnx"
    assert export.main(["--arch", "demo", "--weights", "random:0", "--size", "64x32", "--out", str(out)]) == 0
    m = Manifest.read(out)
    x = parity.inputs(m, None, 2, seed=1)
    (r,) = parity.report(parity.make_backend("torch:demo:random:0", out, m),
                         {"onnxruntime": parity.make_backend("onnxruntime", out, m)}, x)
    assert r.straight.max_abs_diff <= 1e-4, r
    assert len(cityscapes.TRAIN_CLASSES) == 19


def test_demo_plus_has_logits_at_a_quarter_and_takes_a_demo_checkpoint(tmp_path: Path) -> None:
    import torch

    demo = models.load("demo", 19, models.Weights.parse("random:3"))
    checkpoint = tmp_path / "demo.pt"
    torch.save(demo.state_dict(), checkpoint)
    plus = models.load("demo_plus", 19, models.Weights.parse(f"partial:{checkpoint}"))
    # Every layer the two share comes from the checkpoint; the decoder is new.
    shared = {k: v for k, v in demo.state_dict().items() if not k.startswith("classifier.2")}
    own = plus.state_dict()
    assert shared and all(torch.equal(own[k], v) for k, v in shared.items())
    torch.save({"unrelated.weight": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(RuntimeError, match="no layer fits"):
        models.load("demo_plus", 19, models.Weights.parse(f"partial:{tmp_path / 'other.pt'}"))
    out = tmp_path / "plus.onnx"
    assert export.main(["--arch", "demo_plus", "--weights", "random:0", "--size", "64x32", "--out", str(out)]) == 0
    m = Manifest.read(out)
    assert m.output_stride == 4
    x = parity.inputs(m, None, 2, seed=1)
    logits = parity.make_backend("onnxruntime", out, m)(x)
    assert logits[0].shape == (19, 8, 16)
    (r,) = parity.report(parity.make_backend("torch:demo_plus:random:0", out, m),
                         {"onnxruntime": parity.make_backend("onnxruntime", out, m)}, x)
    assert r.straight.max_abs_diff <= 1e-4, r


def test_weights_spec_is_checked() -> None:
    assert models.Weights.parse("random:7") == models.Weights("random", "7")
    assert models.Weights.parse("checkpoint:a.pt") == models.Weights("checkpoint", "a.pt")
    assert models.Weights.parse("partial:a.pt") == models.Weights("partial", "a.pt")
    for bad in ("random:x", "checkpoint:", "partial:", "imagenet", "torchvision:foo"):
        with pytest.raises(ValueError):
            models.Weights.parse(bad)


def test_saved_logits_are_compared_without_an_order_check(deeplab_96: Path, tmp_path: Path) -> None:
    m = Manifest.read(deeplab_96)
    ort = parity.make_backend("onnxruntime", deeplab_96, m)
    x = parity.inputs(m, None, 2, seed=9)
    for i, logits in enumerate(ort(x)):
        np.save(tmp_path / f"{i}.npy", logits)
    (same,) = parity.report(ort, {f"logits:{tmp_path}": parity.make_backend(f"logits:{tmp_path}", deeplab_96, m)}, x)
    assert same.straight.max_abs_diff == 0.0 and same.straight.argmax_agreement_pct == 100.0
    assert same.channels_swapped is None and same.channel_order_ok is None
    np.save(tmp_path / "1.npy", -np.load(tmp_path / "1.npy"))  # a backend that got input 1 wrong
    (wrong,) = parity.report(ort, {"saved": parity.make_backend(f"logits:{tmp_path}", deeplab_96, m)}, x)
    assert wrong.straight.argmax_agreement_pct < 60
