#!/usr/bin/env bash
# Trains the demo model from scratch on synthetic street scenes and exports it next to this
# script (street-demo.onnx + street-demo.toml). Deterministic data; training runs on the CPU
# (PyTorch's CPU kernels are not bit-reproducible across machines, so a retrain is close to,
# not identical with, the committed model).
#
# Three phases, each seeded from the one before:
#   1. `demo` (backbone, ASPP, logits at 1/8) on rendered frames;
#   2. `demo_plus` (the same plus a DeepLabV3+-style decoder at 1/4) on the same frames;
#   3. `demo_plus` on those frames plus frames of the same streets as the worker receives them
#      from a camera (openh264 at the SDK's default bitrate, street after street), so that the
#      codec's artefacts cost little accuracy end to end.
#
#   engines/demo/train.sh            # or: just train-demo
#   STEPS=500 engines/demo/train.sh  # a shorter first phase
#
# Work files go to engines/build/demo/ (data sets, checkpoints; resumable: run it again).
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

train() {
    PYTHONPATH=engines .venv/bin/python -m flowcloud_engines.finetune \
        --batch 8 --crop 384x256 --scale 0.8 1.25 --optimizer adamw --weight-decay 1e-4 \
        --seed "$SEED" --checkpoint-every 100 --cache "$@"
}

train --data "$DATA" --arch demo --weights "random:$SEED" --run-dir "$BUILD/run" \
    --steps "$STEPS" --lr 2e-3 --val-every 500 --val-limit 40

train --data "$DATA" --arch demo_plus --weights "partial:$BUILD/run/best.pt" \
    --run-dir "$BUILD/run-plus" --steps 1500 --lr 1e-3 --val-every 250 --val-limit 40

# Phase 3's data set: the rendered frames (linked) and the camera's frames, 3 consecutive frames
# per street at the demo's 10 fps.
CODEC_DATA="$BUILD/data-codec"
for split in train val; do
    for tree in leftImg8bit gtFine; do
        mkdir -p "$CODEC_DATA/$tree/$split"
        ln -sfn "$(realpath "$DATA/$tree/$split/synth")" "$CODEC_DATA/$tree/$split/synth"
    done
done
"$scenes" --out "$CODEC_DATA" --split train --seed "$TRAIN_WORLD" --sequences 600 \
    --frames-per-sequence 3 --frame-step 1 --fps 10 --through-camera-codec --city h264
"$scenes" --out "$CODEC_DATA" --split val --seed "$VAL_WORLD" --sequences 40 \
    --frames-per-sequence 3 --frame-step 1 --fps 10 --through-camera-codec --city h264

# Validation: the 120 camera frames and the first 40 rendered ones.
train --data "$CODEC_DATA" --arch demo_plus --weights "checkpoint:$BUILD/run-plus/best.pt" \
    --run-dir "$BUILD/run-plus-codec" --steps 1000 --lr 5e-4 --val-every 250 --val-limit 160

PYTHONPATH=engines .venv/bin/python -m flowcloud_engines.export \
    --arch demo_plus --weights "checkpoint:$BUILD/run-plus-codec/best.pt" --size "$SIZE" \
    --name street-demo --out engines/demo/street-demo.onnx
