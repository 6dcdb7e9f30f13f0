#!/usr/bin/env bash
# Trains the style models shipped in neuralens/fast/models/ with `neuralens train-style` itself, on the photos
# gathered by scripts/gather_photos.py (their held-out photos make the preview sheets), and copies each model
# (NAME.pt, fp16) with its training report (NAME.json) into the package. Intermediate files (checkpoints,
# previews, loss plots) stay in data/models/.
#
#   bash scripts/train_builtin_models.sh [MINUTES_PER_TEACHER] [STEPS_PER_STUDENT]     (defaults 7 and 1500)
#
# Two stages, because on a CPU the perceptual objective is what costs (VGG19 three times a step):
# 1. teachers: a half-width Johnson network per painting learns the painting with the perceptual objective
#    (128-px crops, painting at 384 px) for MINUTES_PER_TEACHER minutes -> data/models/teachers/NAME.pt;
# 2. students: a ShuffleNet (the shipped design: 2-3x faster to apply) learns to reproduce its teacher's outputs
#    (`--teacher`, distillation: no VGG19) for STEPS_PER_STUDENT steps -> data/models/NAME.pt, shipped.
# Each student's report embeds its teacher's (report "teacher"), so the whole lineage ships with the model.
# TEACHERS=DIR skips stage 1 and takes DIR/NAME.pt (with DIR/NAME.json) as the teachers.
# On a GPU, skip the students and train the ShuffleNet directly with the full recipe:
#   --size 256 --style-size 512 --iterations 40000 (style weight to be re-tuned upwards).
set -euo pipefail
MINUTES="${1:-7}"
STEPS="${2:-1500}"
TEACHERS="${TEACHERS:-}"
source "$(dirname "$0")/builtin_models.sh"
mkdir -p data/models/teachers neuralens/fast/models
for pair in "${BUILTIN_MODELS[@]}"; do
  name="${pair%%:*}"; painting="$STYLES/${pair#*:}"
  teacher="${TEACHERS:-data/models/teachers}/$name.pt"
  if [ -z "$TEACHERS" ]; then
    "$PY" -m neuralens train-style "$painting" --photos data/photos -o "$teacher" \
      --architecture johnson --size 128 --width 16 --style-size 384 --style-weight 10 --batch-size 4 --seed 0 \
      --minutes "$MINUTES" --checkpoint-every 200 --preview-every 120
  fi
  "$PY" -m neuralens train-style "$painting" --photos data/photos -o "data/models/$name.pt" \
    --teacher "$teacher" --size 128 --batch-size 4 --seed 0 --iterations "$STEPS" --checkpoint-every 250 \
    --preview-every 300
  "$PY" scripts/embed_teacher_report.py "data/models/$name.json" "${teacher%.pt}.json"
  cp "data/models/$name.pt" "data/models/$name.json" neuralens/fast/models/
done
ls -l neuralens/fast/models/
