#!/usr/bin/env bash
# The GPU run of bench/bench_engine_gpu.py, as one command for a lent GPU machine (device tool).
#
# Prepare here (network to the package registries): `bash scripts/gpu_wheels.sh` → .whl/.
# Then one device call, carrying the wheels:
#   run(command="bash bench/gpu_check.sh", carry=[".whl"], timeout_s=600)
# Everything it measures lands in $OUT (the JSON results, rewritten after every cell, and the log),
# so a run stopped at its limit still returns what it finished. BUDGET_S bounds the bench itself;
# the rest of the limit is the bundle build (full-size random weights, written once per machine).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT="${OUT:-bench/results}"
BUDGET_S="${BUDGET_S:-420}"
BUNDLE_DIR="${BUNDLE_DIR:-/tmp/k22-bundle}"
mkdir -p "$OUT"

if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site"
fi
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD"  # the checkout's packages (bench, contract, worker…)
export PYTHONUNBUFFERED=1

{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv || echo "no nvidia-smi"; } | tee "$OUT/gpu.txt"
python3 -c "import torch, diffusers, transformers; print('torch', torch.__version__, 'diffusers', diffusers.__version__, 'transformers', transformers.__version__)" | tee -a "$OUT/gpu.txt"
python3 bench/bench_engine_gpu.py --bundle-dir "$BUNDLE_DIR" --budget-s "$BUDGET_S" --out-dir "$OUT" "$@" \
  2>&1 | tee "$OUT/bench_engine_gpu.log"
# Live previews next to full-size decoder steps (issue 16's goal: < 3 % of a 1024² job).
python3 bench/bench_preview.py --bundle-dir "$BUNDLE_DIR" --scale public --device cuda --sizes 1024x1024 \
  --steps 50 --repeats 2 --out-dir "$OUT" 2>&1 | tee "$OUT/bench_preview.log"
# Animation frames next to plain KandinskyV22Img2ImgPipeline per frame (issue 14's goal: encoding < 5 % at 768 px).
python3 bench/bench_animation.py --bundle-dir "$BUNDLE_DIR" --scale public --device cuda \
  --sizes 512x512 768x768 --frames 12 --steps 20 --out-dir "$OUT" 2>&1 | tee "$OUT/bench_animation.log"
# Kandinsky 5.0 Video Lite at public size (random weights, built here: nothing downloads): the family
# through bench_fullsize (memory per component, one short clip), then 5 s at 768x512 and 24 fps with
# the distilled checkpoint's 16 steps next to plain Kandinsky5T2VPipeline (issue 26's goal: under 25 s).
K5_WORK="${K5_WORK:-/tmp/k5-work}"
mkdir -p "$K5_WORK"
python3 bench/bench_fullsize.py --families kandinsky5 --device cuda --work-dir "$K5_WORK" --keep-bundle \
  --out-dir "$OUT" 2>&1 | tee "$OUT/bench_fullsize_k5.log"
K5_BUNDLE="$(ls -d "$K5_WORK"/bench-fullsize-*/bundle | tail -1)"
python3 bench/bench_video.py --bundle-dir "$K5_BUNDLE" --device cuda --dtype bfloat16 --sizes 768x512 \
  --fps 24 --repeats 2 --out-dir "$OUT" 2>&1 | tee "$OUT/bench_video.log"
# SDXL at public size (random weights, built here): memory per component through bench_fullsize, then
# 1024² at the model card's 40 steps, base + refiner, next to plain diffusers' ensemble, and what LoRA
# styles cost (two random rank-32 adapters: loaded and off, one on, a switch between them).
SDXL_WORK="${SDXL_WORK:-/tmp/sdxl-work}"
mkdir -p "$SDXL_WORK"
python3 bench/bench_fullsize.py --families sdxl --device cuda --dtype float16 --work-dir "$SDXL_WORK" \
  --keep-bundle --out-dir "$OUT" 2>&1 | tee "$OUT/bench_fullsize_sdxl.log"
SDXL_BUNDLE="$(ls -d "$SDXL_WORK"/bench-fullsize-*/bundle | tail -1)"
python3 bench/bench_sdxl.py --bundle-dir "$SDXL_BUNDLE" --device cuda --dtype float16 --sizes 1024x1024 \
  --repeats 2 --out-dir "$OUT" 2>&1 | tee "$OUT/bench_sdxl.log"
# Kandinsky 5.0 Image Lite at public size (6B DiT, FLUX.1's VAE, the Video's text encoders): memory per
# component and one text → image job at the trained size nearest the bucket's ratio. Last, so a run that
# reaches its limit here has kept everything above.
python3 bench/bench_fullsize.py --families kandinsky5_image --device cuda --size 1024x1024 --steps 50 \
  --work-dir "$K5_WORK" --out-dir "$OUT" 2>&1 | tee "$OUT/bench_fullsize_k5_image.log"
# The DiT's speed settings against the same plain pipeline: cuDNN's attention and regionally compiled
# blocks (the first job, not measured, pays the compile). Keep as defaults only what wins here.
python3 bench/bench_video.py --bundle-dir "$K5_BUNDLE" --device cuda --dtype bfloat16 --sizes 768x512 \
  --fps 24 --repeats 1 --attention-backend _native_cudnn --compile --out-dir "$OUT" 2>&1 \
  | tee "$OUT/bench_video_speed.log"
