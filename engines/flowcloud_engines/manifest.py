"""The model manifest: the TOML file next to a ``.onnx`` that tells the worker how to feed the
model and read its output (``cloud-worker/src/engine/manifest.rs`` reads and checks it)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLASS_SETS = {"train": "cityscapes-train", "labels": "cityscapes-labels"}


@dataclass(frozen=True)
class Manifest:
    name: str
    input_width: int
    input_height: int
    classes: str  # "train" or "labels"
    source: str
    output_stride: int = 8
    channel_order: str = "rgb"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    precision: str = "fp32"
    input_name: str = "input"
    output_name: str = "logits"

    @staticmethod
    def path_for(model: Path) -> Path:
        return model.with_suffix(".toml")

    def to_toml(self, header: str) -> str:
        def floats(values: tuple[float, ...]) -> str:
            return "[" + ", ".join(repr(float(v)) for v in values) + "]"

        lines = [f"# {line}" if line else "#" for line in header.splitlines()]
        lines += [
            f'name = "{self.name}"',
            f'input_name = "{self.input_name}"',
            f'output_name = "{self.output_name}"',
            f"input_width = {self.input_width}",
            f"input_height = {self.input_height}",
            f'channel_order = "{self.channel_order}"',
            f"mean = {floats(self.mean)}",
            f"std = {floats(self.std)}",
            f'classes = "{CLASS_SETS[self.classes]}"',
            f"output_stride = {self.output_stride}",
            f'precision = "{self.precision}"',
            f"source = {_toml_string(self.source)}",
        ]
        return "\n".join(lines) + "\n"

    def write(self, model: Path, header: str) -> Path:
        path = self.path_for(model)
        path.write_text(self.to_toml(header))
        return path

    @staticmethod
    def read(model: Path) -> "Manifest":
        path = Manifest.path_for(model)
        data = tomllib.loads(path.read_text())
        classes = {v: k for k, v in CLASS_SETS.items()}[data["classes"]]
        return Manifest(
            name=data["name"],
            input_width=data["input_width"],
            input_height=data["input_height"],
            classes=classes,
            source=data.get("source", ""),
            output_stride=data["output_stride"],
            channel_order=data["channel_order"],
            mean=tuple(data["mean"]),
            std=tuple(data["std"]),
            precision=data["precision"],
            input_name=data["input_name"],
            output_name=data["output_name"],
        )


def _toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
