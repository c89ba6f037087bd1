#!/bin/sh
# On a lent GPU machine (see scripts/gpu_bundle.py): continue the built-in styles (from the shipped file, with the
# recipe of runs/alias2: docs/MODELS.md, "Strokes off the grid") and the compact AdaIN model (from training/) for about
# SECONDS each (default 200), with the data carried in .gpu/, and put the files in $OUT.
set -eu
SECONDS_EACH=${1:-200}
export IMPASTO_CACHE=/tmp/impasto-cache PYTHONPATH="$PWD/src:$PWD/.gpu/site" PYTHONUNBUFFERED=1
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-out}
mkdir -p "$OUT" runs/gpu
nvidia-smi -L || true
B=.gpu/builtin
timeout "$SECONDS_EACH" python3 -m impasto train fast \
  --style $B/starry_night.jpg $B/the_scream.jpg $B/great_wave.jpg $B/shipwreck.jpg $B/composition_vii.jpg \
          $B/udnie.jpg $B/woman_with_hat.jpg $B/street_scene.jpg \
  --names starry_night,the_scream,great_wave,shipwreck,composition_vii,udnie,woman_with_hat,street_scene \
  --content-dir .gpu/content -o runs/gpu/fast_styles.safetensors --steps 60000 --batch 16 --size 256 \
  --image-size 512 --style-size 512 --style-weight 14 --stability-weight 400 --lr 4e-4 --tv-weight 10 --adjustable 0.5 \
  --width 12 --blocks 3 --decoder 12,8 --checkpoint-every 200 --preview-every 0 --log-every 200 --device "$DEVICE" \
  --workers 8 --init src/impasto/models/fast_styles.safetensors -q || true
timeout "$SECONDS_EACH" python3 -m impasto train distill --content-dir .gpu/content --style-dir .gpu/style \
  -o runs/gpu/compact_adain.safetensors --size 256 --image-size 384 --identity-weight 100 --style-weight 3 \
  --content-weight 2 --teacher-weight 5 --batch 16 --steps 80000 --lr 1.5e-4 --lr-decay 5e-5 --checkpoint-every 200 --preview-every 0 --log-every 200 \
  --device "$DEVICE" --workers 8 --init training/compact_adain.safetensors -q || true
cp runs/gpu/*.safetensors "$OUT"/ 2>/dev/null || true
ls -la "$OUT"
