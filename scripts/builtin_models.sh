# Sourced by scripts/train_builtin_models.sh and scripts/refine_builtin_models.sh: the built-in models and the
# painting each learns (NAME:FILE in $STYLES, default ../shared/data/style), the Python to run ($PYTHON, default the
# project's .venv), and the training photos (gathered by scripts/gather_photos.py when data/photos is missing).
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PYTHON:-.venv/bin/python}"
STYLES="${STYLES:-../shared/data/style}"
BUILTIN_MODELS=(starry-night:starry_night.jpg the-scream:the_scream.jpg woman-with-hat:woman-with-hat-matisse.jpg
                shipwreck:shipwreck.jpg)
[ -d data/photos ] || "$PY" scripts/gather_photos.py -o data/photos --holdout 4
