"""Pieces of ``bench/bench_engine_gpu.py``: model configs and bundle, recipes, and measurements."""
