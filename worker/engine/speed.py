"""Opt-in speed settings for the resident models: memory format, torch.compile, the decoder scheduler,
a DiT's attention backend.

Each one is an ``EngineSettings`` field, off by default until a GPU run of
``bench/bench_engine_gpu.py`` (which times each as a variant next to the default engine) shows
that it helps; ``bench/NOTES.md`` has the prediction and, once it exists, the measurement.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler

from worker.engine.settings import EngineSettings, SchedulerName

SCHEDULERS: dict[SchedulerName, type[Any]] = {
    "ddpm": DDPMScheduler,
    "ddim": DDIMScheduler,
    "dpmpp-2m": DPMSolverMultistepScheduler,
}
"""The decoders' scheduler by name. ``ddpm`` is the model card's (identical to plain diffusers);
DDIM and DPM-Solver++ (2M) reach similar images in about half the steps (operators pair them with
a lower ``BOT_STEPS``), at the price of images that differ from the model card's for the same
seed. Only schedulers whose ``step`` takes a ``generator`` fit the Kandinsky pipelines (UniPC does not)."""

RECOMPILE_LIMIT = 128
"""Compiled graphs kept per function. Shapes are fixed per bucket (9 aspects × 3 sides) and per
batch (1-4 images, doubled by CFG): torch's default of 8 would drop the rest back to eager."""

PRIOR_COMPILE_MODE_CUDA = "reduce-overhead"
"""The prior's steps are small (a 20-layer transformer on 81 tokens) and bound by kernel launches:
CUDA graphs replay a whole step in one launch."""


def decoder_scheduler(name: SchedulerName, config: Any) -> Any:
    """A fresh scheduler of kind ``name`` built from the decoder's own scheduler config."""
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; expected one of {', '.join(SCHEDULERS)}")
    return SCHEDULERS[name].from_config(config)


def to_channels_last(*modules: Any) -> None:
    """NHWC weights for convolution-heavy models: cuDNN's tensor-core kernels read it without
    transposing. Numerically the same computation, so images match the default format."""
    for module in modules:
        module.to(memory_format=torch.channels_last)  # Module.to's stubs omit this documented form


def allow_recompiles() -> None:
    """One graph per bucket and batch must fit in dynamo's cache (see ``RECOMPILE_LIMIT``)."""
    config: Any = torch._dynamo.config
    config.recompile_limit = max(config.recompile_limit, RECOMPILE_LIMIT)
    config.accumulated_recompile_limit = max(config.accumulated_recompile_limit, RECOMPILE_LIMIT * 8)


def _compile_method(module: torch.nn.Module, name: str, flag: str, mode: str, backend: str) -> None:
    """Replace ``module.<name>`` by its compiled version, once (``flag`` marks it: shared modules
    get here twice)."""
    if getattr(module, flag, False):
        return
    compiled = torch.compile(getattr(module, name), mode=mode, backend=backend, dynamic=False)
    # object.__setattr__: nn.Module.__setattr__ would treat the compiled callable as an attribute
    # to register; the instance attribute shadows the class method.
    object.__setattr__(module, name, compiled)
    object.__setattr__(module, flag, True)


def compile_forward(module: torch.nn.Module, mode: str, backend: str) -> None:
    """Compile ``module.forward`` in place for fixed shapes.

    The bound method is replaced rather than the module wrapped: pipelines keep their own module
    type, and forward hooks (the engine counts prior steps with one) still run, eagerly, around
    the compiled code.
    """
    _compile_method(module, "forward", "_kandinsky_compiled", mode, backend)


def compile_movq_decode(movq: torch.nn.Module, mode: str, backend: str) -> None:
    """The pipelines call ``movq.decode`` (not forward) once per job: that is what gets compiled."""
    _compile_method(movq, "decode", "_kandinsky_decode_compiled", mode, backend)


def speed_up_dit(transformer: Any, attention_backend: str | None, settings: EngineSettings) -> None:
    """A DiT's speed settings: diffusers' attention backend, and with ``compile`` regional compilation
    of its repeated blocks (each block class compiled once and reused, instead of the whole model: a
    fraction of the compile time for about the same speed). Once per model (shared ones come twice)."""
    if attention_backend is not None:
        transformer.set_attention_backend(attention_backend)
    if settings.compile and not getattr(transformer, "_kandinsky_blocks_compiled", False):
        allow_recompiles()
        transformer.compile_repeated_blocks(fullgraph=True, dynamic=False, mode=settings.compile_mode,
                                            backend=settings.compile_backend)
        object.__setattr__(transformer, "_kandinsky_blocks_compiled", True)


def prior_compile_mode(mode: str, device: str) -> str:
    """CUDA graphs for the prior on a GPU unless the operator chose a mode explicitly."""
    if mode == "default" and device.startswith("cuda"):
        return PRIOR_COMPILE_MODE_CUDA
    return mode
