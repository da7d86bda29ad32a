#!/usr/bin/env bash
# Wheels a bare GPU bench machine lacks, for its Python (3.12 by default), into .whl/.
#
# The lent GPU machines have torch, transformers, onnx(runtime), numpy, Pillow, scikit-image and
# numba but no network and none of diffusers, pydantic(-settings) or rembg. This downloads exactly
# the versions installed in this checkout's .venv (so the GPU run uses the code the tests ran),
# pure-Python or manylinux x86-64 builds, without dependencies: the list below is complete for
# `bench/bench_engine_gpu.py` (checked with scripts/gpu_wheels.sh --check, which installs them
# next to torch alone and runs the bench's --small mode).
#
#   bash scripts/gpu_wheels.sh               # → .whl/*.whl (ignored by git; carry it: carry=[".whl"])
#   PY_VERSION=3.11 bash scripts/gpu_wheels.sh --check
set -euo pipefail
cd "$(dirname "$0")/.."

PY_VERSION="${PY_VERSION:-3.12}"
DEST="${DEST:-.whl}"
VENV_PY=".venv/bin/python"
PACKAGES=(
  diffusers importlib-metadata lazy-importer transformers regex
  pydantic pydantic-core pydantic-settings annotated-types typing-inspection python-dotenv
  rembg pymatting pooch platformdirs jsonschema jsonschema-specifications referencing rpds-py
)
# transformers travels although the machine has it (5.17 there): the engine was tested with this
# checkout's version, and that one needs a newer regex. The machine's huggingface-hub (1.33),
# tokenizers and safetensors satisfy both diffusers and transformers, so they stay.

[ -x "$VENV_PY" ] || { echo "no $VENV_PY: run scripts/bootstrap.sh first" >&2; exit 1; }
pins=()
for package in "${PACKAGES[@]}"; do
  pins+=("$package==$("$VENV_PY" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$package")")
done

rm -rf "$DEST" && mkdir -p "$DEST"
"$VENV_PY" -m pip download -q --no-deps --only-binary=:all: --dest "$DEST" \
  --python-version "$PY_VERSION" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 "${pins[@]}"
echo "$(ls "$DEST" | wc -l) wheels, $(du -sh "$DEST" | cut -f1) in $DEST (the device carries 64 MiB at most)"

if [ "${1:-}" = "--check" ]; then
  # A stand-in for the GPU machine: a venv with only what that machine has preinstalled (the
  # subset the engine touches), then these wheels on PYTHONPATH exactly as bench/gpu_check.sh does.
  check=$(mktemp -d)
  trap 'rm -rf "$check"' EXIT
  python3 -m venv "$check/venv"
  "$check/venv/bin/pip" install -q torch==2.13.0 numpy pillow onnx onnxruntime scikit-image scipy \
    numba opencv-python-headless requests filelock "regex<2025" tqdm pyyaml packaging fsspec httpx \
    typing-extensions huggingface-hub==1.33.0 tokenizers==0.23.2 safetensors==0.8.0 typer click \
    hf-xet zipp attrs
  "$check/venv/bin/pip" install -q --no-index --no-deps --no-compile --target "$check/site" "$DEST"/*.whl
  PYTHONPATH="$check/site:$PWD" "$check/venv/bin/python" bench/bench_engine_gpu.py --small \
    --out-dir "$check/out" --budget-s 120
fi
