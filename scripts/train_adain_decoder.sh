#!/bin/sh
# The recipe of the bundled AdaIN decoder (src/impasto/models/adain_decoder.safetensors, step 9600), as phases of one
# resumable run; docs/MODELS.md has the record. Run it from the repository root; run it again after an interruption
# and each phase continues from the last checkpoint (every 100 steps). About 2 s per step on 2 CPU cores (bf16).
#
#   OUT=runs/adain/decoder.safetensors THREADS=2 sh scripts/train_adain_decoder.sh
#
# Phase 1 differs slightly from what produced the bundled file: its first 1880 steps drew crops from images rescaled to
# 1-2 x the crop size (before --image-size existed); today's closest setting is --image-size 256 (1.5-2 x).
set -eu
OUT=${OUT:-runs/adain/decoder.safetensors}
DATA=${DATA:-../shared/data/train}
IMPASTO=${IMPASTO:-.venv/bin/impasto}
mkdir -p "$(dirname "$OUT")"

phase() {  # phase STEPS FLAGS...: train up to STEPS total; a finished phase returns at once
    steps=$1
    shift
    resume=""
    [ -f "$OUT.ckpt" ] && resume="--resume"
    env OMP_NUM_THREADS="${THREADS:-2}" "$IMPASTO" train adain --content-dir "$DATA/content" --style-dir "$DATA/style" \
        -o "$OUT" --size 128 --batch 8 --lr 2e-4 --lr-decay 5e-5 --seed 0 \
        --checkpoint-every 100 --preview-every 500 --log-every 25 -q --steps "$steps" $resume "$@"
}

phase 1880 --image-size 256 --style-weight 10
phase 2350 --image-size 512 --style-weight 10
phase 4300 --image-size 512 --style-weight 10 --identity-weight 100
phase 5375 --image-size 512 --style-weight 5 --identity-weight 100
phase 9600 --image-size 512 --style-weight 3 --identity-weight 100
