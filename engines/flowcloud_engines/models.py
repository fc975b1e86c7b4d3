"""The networks: torchvision's DeepLabV3-ResNet50 and the small demo networks. They return
logits at 1/8 of the input size (``demo_plus``: 1/4), which the worker upsamples bilinearly, as
the final step of torchvision's model does."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torchvision.models.segmentation.deeplabv3 import ASPP

ARCHS = ("deeplabv3_resnet50", "demo", "demo_plus")
OUTPUT_STRIDE = 8


def output_stride(arch: str) -> int:
    """Input size over logits size for ``arch``."""
    return 4 if arch == "demo_plus" else OUTPUT_STRIDE


class DeepLabV3Logits(nn.Module):
    """torchvision's DeepLabV3-ResNet50 (dilated ResNet-50, output stride 8, ASPP head) without
    the auxiliary FCN head and without the final upsample."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        from torchvision.models.segmentation import deeplabv3_resnet50

        model = deeplabv3_resnet50(
            weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=False
        )
        self.backbone = model.backbone
        self.classifier = model.classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.backbone(x)["out"])


def _conv_bn_relu(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class _Residual(nn.Module):
    """Two dilated 3×3 convolutions with an identity shortcut."""

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv_bn_relu(channels, channels, dilation=dilation),
            nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(channels),
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(x + self.body(x))


class DemoNet(nn.Module):
    """A small DeepLabV3-style network with the same operator set: strided and dilated
    convolutions to output stride 8, then torchvision's ASPP (parallel dilated branches and
    image pooling with a bilinear upsample) and a classifier."""

    def __init__(self, num_classes: int, width: int = 64) -> None:
        super().__init__()
        self.backbone = nn.Sequential(
            _conv_bn_relu(3, 24, stride=2),
            _conv_bn_relu(24, 32, stride=2),
            _Residual(32, 1),
            _conv_bn_relu(32, width, stride=2),
            _Residual(width, 1),
            _Residual(width, 2),
            _Residual(width, 4),
        )
        self.classifier = nn.Sequential(
            ASPP(width, [2, 4, 6], out_channels=width),
            _conv_bn_relu(width, width),
            nn.Conv2d(width, num_classes, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.backbone(x))


class DemoNetPlus(nn.Module):
    """``DemoNet`` with a DeepLabV3+-style decoder: the ASPP output, upsampled to 1/4, joins the
    backbone's 1/4 features, so thin objects (poles, signs, people) keep their edges. Logits at
    1/4. Module names match ``DemoNet`` where the layers are the same, so a trained ``DemoNet``
    can seed it (``partial:PATH`` weights)."""

    LOW_LEVEL = 3  # backbone modules that run at 1/4 (the decoder's skip input)

    def __init__(self, num_classes: int, width: int = 64, low_channels: int = 24, decoder: int = 48) -> None:
        super().__init__()
        self.backbone = DemoNet(num_classes, width).backbone
        self.classifier = nn.Sequential(ASPP(width, [2, 4, 6], out_channels=width), _conv_bn_relu(width, width))
        self.low = nn.Sequential(nn.Conv2d(32, low_channels, 1, bias=False), nn.BatchNorm2d(low_channels), nn.ReLU(inplace=True))
        self.decoder = nn.Sequential(
            _conv_bn_relu(width + low_channels, decoder),
            _conv_bn_relu(decoder, decoder),
            nn.Conv2d(decoder, num_classes, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = self.backbone[: self.LOW_LEVEL](x)
        high = self.classifier(self.backbone[self.LOW_LEVEL :](low))
        high = nn.functional.interpolate(high, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.decoder(torch.cat([high, self.low(low)], dim=1))


def build(arch: str, num_classes: int) -> nn.Module:
    if arch == "deeplabv3_resnet50":
        return DeepLabV3Logits(num_classes)
    if arch == "demo":
        return DemoNet(num_classes)
    if arch == "demo_plus":
        return DemoNetPlus(num_classes)
    raise ValueError(f"unknown architecture {arch!r} (expected one of {', '.join(ARCHS)})")


@dataclass(frozen=True)
class Weights:
    """Where a model's weights come from, as given on the command line:

    - ``random:SEED``: seeded random initialisation (tests, parity checks);
    - ``torchvision``: torchvision's pretrained DeepLabV3-ResNet50 (COCO with VOC labels;
      downloaded, so online only), with a new randomly initialised last layer for our classes;
    - ``checkpoint:PATH``: a checkpoint written by ``flowcloud_engines.finetune`` or a plain
      state dict of the same architecture;
    - ``partial:PATH``: such a checkpoint of a related architecture: every layer whose name and
      shape match is loaded, the rest starts from seeded random values (``demo`` → ``demo_plus``).
    """

    kind: str
    value: str

    @staticmethod
    def parse(text: str) -> "Weights":
        kind, _, value = text.partition(":")
        if kind == "random":
            int(value or "0")
            return Weights("random", value or "0")
        if kind == "torchvision" and not value:
            return Weights("torchvision", "")
        if kind in ("checkpoint", "partial") and value:
            return Weights(kind, value)
        raise ValueError(
            f"weights {text!r}: expected 'random:SEED', 'torchvision', 'checkpoint:PATH' or 'partial:PATH'"
        )

    def describe(self) -> str:
        """A line for the manifest: where the weights came from (with a checksum for files)."""
        if self.kind == "random":
            return f"random (seed {self.value})"
        if self.kind == "torchvision":
            return "torchvision DeepLabV3_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1, new last layer"
        digest = hashlib.sha256(Path(self.value).read_bytes()).hexdigest()[:16]
        kind = "layers that fit from checkpoint" if self.kind == "partial" else "checkpoint"
        return f"{kind} {Path(self.value).name} (sha256 {digest}…)"


def load(arch: str, num_classes: int, weights: Weights) -> nn.Module:
    """The network with its weights, in eval mode."""
    if weights.kind == "random":
        torch.manual_seed(int(weights.value))
        model = build(arch, num_classes)
    elif weights.kind == "torchvision":
        if arch != "deeplabv3_resnet50":
            raise ValueError("torchvision weights exist only for deeplabv3_resnet50")
        from torchvision.models.segmentation import (
            DeepLabV3_ResNet50_Weights,
            deeplabv3_resnet50,
        )

        pretrained = deeplabv3_resnet50(weights=DeepLabV3_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1)
        model = DeepLabV3Logits(num_classes)
        state = {
            k: v
            for k, v in pretrained.state_dict().items()
            if not k.startswith("aux_classifier") and not k.startswith("classifier.4")
        }
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or any(not k.startswith("classifier.4") for k in missing):
            raise RuntimeError(f"torchvision weights do not fit: missing {missing}, unexpected {unexpected}")
    else:
        if weights.kind == "partial":
            torch.manual_seed(0)
        model = build(arch, num_classes)
        state = torch.load(weights.value, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "model" in state:
            state = state["model"]
        if weights.kind == "partial":
            own = model.state_dict()
            fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
            if not fitting:
                raise RuntimeError(f"partial weights {weights.value}: no layer fits {arch}")
            model.load_state_dict(fitting, strict=False)
        else:
            model.load_state_dict(state)
    return model.eval()


__all__ = ["ARCHS", "OUTPUT_STRIDE", "DeepLabV3Logits", "DemoNet", "DemoNetPlus", "Weights", "build", "load", "output_stride"]
