"""FlowCloud's model tooling: DeepLabV3 export to ONNX, fine-tuning and evaluation on
Cityscapes-format data, model and parity reports, and the demo model.

Run the tools as modules from the repository root, e.g.
``PYTHONPATH=engines .venv/bin/python -m flowcloud_engines.export --help``
(the ``just`` recipes do this for you).
"""
