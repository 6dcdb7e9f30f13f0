#!/usr/bin/env bash
# Trains the AdaIN decoder shipped in neuralens/fast/models/decoder/ with `neuralens train-decoder` itself, on the
# photos of scripts/gather_photos.py and the paintings of scripts/gather_paintings.py (their holdout/ folders make
# the preview sheet and stay out of training), and copies the decoder (adain.pt, fp16) with its training report
# (adain.json) into the package. Checkpoints, previews and the loss plot stay in data/decoder/.
#
#   bash scripts/train_decoder.sh [MINUTES [MORE]]   (default 45: the CPU budget, see docs/arbitrary.md)
#
# With MORE, the run then goes on from its checkpoint for MORE minutes (`--resume`): the shipped decoder is
# `bash scripts/train_decoder.sh 45 55` (45 minutes, then 55 more, 2026-12-07).
#
# The settings are the CPU recipe: 128-px crops (random scale up to 2x, flips), four crops a step, a half-width
# decoder, statistics of 128 painting crops computed once. On a GPU use the paper's: --size 256 --batch-size 8
# --width 64 --learning-rate 1e-4 --style-pool 0 --iterations 160000.
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES="${1:-45}"
MORE="${2:-}"
PY="${PYTHON:-.venv/bin/python}"
[ -d data/photos ] || "$PY" scripts/gather_photos.py -o data/photos --holdout 4
[ -d data/paintings ] || "$PY" scripts/gather_paintings.py -o data/paintings
mkdir -p data/decoder neuralens/fast/models/decoder
# What both parts share (a resumed run takes its training settings from the checkpoint).
TRAIN=("$PY" -m neuralens train-decoder --photos data/photos --styles data/paintings -o data/decoder/adain.pt
       --checkpoint-every 200 --preview-every 600)
"${TRAIN[@]}" --size 128 --zoom 2 --batch-size 4 --width 32 --style-weight 10 --learning-rate 5e-4 --style-pool 128 \
  --seed 0 --minutes "$MINUTES"
if [ -n "$MORE" ]; then
  "${TRAIN[@]}" --resume data/decoder/adain.checkpoint.pt --minutes "$MORE"
fi
cp data/decoder/adain.pt data/decoder/adain.json neuralens/fast/models/decoder/
ls -l neuralens/fast/models/decoder/
