#!/usr/bin/env bash
# Trains the demo model from scratch on synthetic street scenes and exports it next to this
# script (street-demo.onnx + street-demo.toml). Deterministic data; training runs on the CPU
# (PyTorch's CPU kernels are not bit-reproducible across machines, so a retrain is close to,
# not identical with, the committed model).
#
#   engines/demo/train.sh            # or: just train-demo
#   STEPS=500 engines/demo/train.sh  # a shorter run
#
# Work files go to engines/build/demo/ (data set, checkpoints; resumable: run it again).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

SEED="${SEED:-1}"             # network initialisation and sampling
TRAIN_WORLD=101               # scene seeds: the training streets ...
VAL_WORLD=202                 # ... the validation streets (the tests use others)
STEPS="${STEPS:-2000}"
SIZE=640x320                  # camera frames and model input
BUILD=engines/build/demo
DATA="$BUILD/data"

.ci/python-env.sh --torch
cargo build --release --locked -p flowcloud-edge --bin flowcloud-scenes
scenes="${CARGO_TARGET_DIR:-target}/release/flowcloud-scenes"
"$scenes" --out "$DATA" --split train --seed "$TRAIN_WORLD" --sequences 300 --frames-per-sequence 6 --frame-step 45
"$scenes" --out "$DATA" --split val --seed "$VAL_WORLD" --sequences 40 --frames-per-sequence 1

PYTHONPATH=engines .venv/bin/python -m flowcloud_engines.finetune \
    --data "$DATA" --arch demo --weights "random:$SEED" --seed "$SEED" --run-dir "$BUILD/run" \
    --steps "$STEPS" --batch 8 --crop 384x256 --scale 0.8 1.25 \
    --optimizer adamw --lr 2e-3 --weight-decay 1e-4 \
    --val-every 500 --val-limit 40 --checkpoint-every 100 --cache

PYTHONPATH=engines .venv/bin/python -m flowcloud_engines.export \
    --arch demo --weights "checkpoint:$BUILD/run/best.pt" --size "$SIZE" \
    --name street-demo --out engines/demo/street-demo.onnx
