# A GPU worker: PyTorch (the CUDA build that PyPI serves for Linux), diffusers, rembg.
# Models are downloaded on first start into the mounted cache volume (/models), or baked into
# the image with `--build-arg PREFETCH_MODELS=1`.
FROM python:3.11-slim

ARG TORCH_VERSION=2.13.0
# Kandinsky 5.0's public tokenizer folder is a Qwen2VLProcessor, whose video processor needs
# torchvision: the one built for this torch (the CPU dev install has none that loads beside its torch,
# so the tiny test bundle holds the tokenizer alone).
ARG TORCHVISION_VERSION=0.28.0
ARG PREFETCH_MODELS=0
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/models/huggingface U2NET_HOME=/models/rembg
WORKDIR /app
RUN pip install "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}"
COPY pyproject.toml README.md ./
COPY contract ./contract
COPY worker ./worker
# rembg's matting library compiles its numba kernels on first import; cached here, at build time,
# they are not compiled again on every worker start (the worker's user cannot write site-packages).
RUN pip install ".[worker]" \
 && python -c "import rembg" \
 && useradd --create-home --uid 10001 kbot \
 && mkdir -p /models && chown kbot /models
USER kbot
RUN if [ "$PREFETCH_MODELS" = "1" ]; then python -m worker prefetch; fi

ENV HEALTH_PORT=8082
EXPOSE 8082
HEALTHCHECK --interval=30s --timeout=5s --start-period=600s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"HEALTH_PORT\"]}/healthz', timeout=4)"]
ENTRYPOINT ["python", "-m", "worker"]
