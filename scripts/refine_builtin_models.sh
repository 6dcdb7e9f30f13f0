#!/usr/bin/env bash
# Stage 3 of the shipped style models (after scripts/train_builtin_models.sh): each model in
# neuralens/fast/models/ trains further with the perceptual objective, starting from its own weights
# (`train-style --init`), with a higher style weight and a total-variation term, and replaces the shipped file.
#
#   bash scripts/refine_builtin_models.sh [MINUTES_PER_MODEL]     (default 15)
#
# Why: the distilled students keep the photo but paint only the painting's palette (benchmarks/README.md §6).
# A 4-minute pilot from the shipped Starry Night (docs/fast.md, "Refined on the CPU") showed style weight 20 gives
# the painting's texture with the photo's shapes still there; without a TV term that texture is a regular 2-px
# grid, which --tv-weight 1e7 smooths. The previous model and its report are kept in data/models/previous/ and the
# previous report is embedded in the new one (key "init").
set -euo pipefail
MINUTES="${1:-15}"
source "$(dirname "$0")/builtin_models.sh"
mkdir -p data/models/previous data/models/refined
for pair in "${BUILTIN_MODELS[@]}"; do
  name="${pair%%:*}"; painting="$STYLES/${pair#*:}"
  [ -f "data/models/previous/$name.pt" ] || cp "neuralens/fast/models/$name.pt" "neuralens/fast/models/$name.json" \
    data/models/previous/
  "$PY" -m neuralens train-style "$painting" --photos data/photos -o "data/models/refined/$name.pt" \
    --init "data/models/previous/$name.pt" --size 128 --style-size 384 --style-weight 20 --tv-weight 1e7 \
    --batch-size 4 --seed 0 --minutes "$MINUTES" --checkpoint-every 200 --preview-every 300
  "$PY" scripts/embed_teacher_report.py "data/models/refined/$name.json" "data/models/previous/$name.json" init
  cp "data/models/refined/$name.pt" "data/models/refined/$name.json" neuralens/fast/models/
done
ls -l neuralens/fast/models/
