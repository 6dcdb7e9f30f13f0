#!/usr/bin/env bash
# Trains the style models shipped in neuralens/fast/models/ with `neuralens train-style` itself, on the photos
# gathered by scripts/gather_photos.py (their held-out photos make the preview sheets), and copies each model
# (NAME.pt, fp16) with its training report (NAME.json) into the package. Intermediate files (checkpoints,
# previews, loss plots) stay in data/models/.
#
#   bash scripts/train_builtin_models.sh [MINUTES_PER_MODEL]     (default 9: a CPU budget, see docs/fast.md)
#
# The settings are the CPU recipe: 128-px crops, a half-width network, painting at 384 px. On a GPU, use
# --size 256 --width 32 --style-size 512 and --iterations 40000 for the full recipe of Johnson et al.
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES="${1:-9}"
PY="${PYTHON:-.venv/bin/python}"
STYLES="${STYLES:-../shared/data/style}"
[ -d data/photos ] || "$PY" scripts/gather_photos.py -o data/photos --holdout 4
mkdir -p data/models neuralens/fast/models
for pair in starry-night:starry_night.jpg the-scream:the_scream.jpg woman-with-hat:woman-with-hat-matisse.jpg \
            shipwreck:shipwreck.jpg; do
  name="${pair%%:*}"; painting="$STYLES/${pair#*:}"
  "$PY" -m neuralens train-style "$painting" --photos data/photos -o "data/models/$name.pt" \
    --size 128 --width 16 --style-size 384 --style-weight 10 --batch-size 4 --seed 0 \
    --minutes "$MINUTES" --checkpoint-every 200 --preview-every 120
  cp "data/models/$name.pt" "data/models/$name.json" neuralens/fast/models/
done
ls -l neuralens/fast/models/
