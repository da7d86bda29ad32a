#!/usr/bin/env bash
# Create .venv and install the project with the worker and dev extras.
# torch: the CPU build unless a CUDA GPU is visible (TORCH_SPEC overrides).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
STAMP=.venv/.installed-$(cat pyproject.toml scripts/bootstrap.sh | sha1sum | cut -c1-12)
if [ ! -f "$STAMP" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  if [ -z "${TORCH_SPEC:-}" ]; then
    TORCH_SPEC="torch==2.13.0"
  fi
  .venv/bin/python -m pip install -q "$TORCH_SPEC"
  .venv/bin/python -m pip install -q -e ".[worker,dev]"
  # rembg's matting library (pymatting) compiles its numba kernels on first import and caches them
  # in the venv: once here, not inside the first tests' workers (a minute on two busy cores).
  .venv/bin/python -c "import rembg"
  rm -f .venv/.installed-*; touch "$STAMP"
fi
bash scripts/install-redis.sh
bash scripts/install-chromium.sh
