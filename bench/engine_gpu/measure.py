"""Clocks, FLOP counts, memory and the device's measured matmul rate.

Every figure here comes from this process: stage times from synchronised clocks around the modules
that run (hooks, not estimates), FLOPs from torch's FlopCounterMode on the exact inputs a recipe
fed its UNet and prior, and the matmul rate from timing a large matmul on the same device.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import torch

GIB = 1024**3

CUDA_MATMUL_SIDE = 8192
"""8192³ bf16: large enough to reach the tensor cores' sustained rate, ~1 ms per call on an H100."""
CPU_MATMUL_SIDE = 256
"""On the CPU the rate only proves the code path; a small fp32 matmul keeps the test fast."""
MATMUL_WARMUP = 3
"""cuBLAS picks its kernel and the clocks ramp up in the first calls."""
CUDA_MATMUL_ITERATIONS = 50
CPU_MATMUL_ITERATIONS = 5


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


@dataclass
class StageTimes:
    """Seconds of one job, by stage. ``decoder_steps``/``movq_decode`` are None when the hooks saw no
    UNet call or no MoVQ decode (a compiled module that bypasses hooks): never a guessed split."""

    prior: float
    decoder_steps: float | None
    movq_decode: float | None
    depth: float
    rembg: float
    total: float

    @staticmethod
    def median_of(runs: list[StageTimes]) -> StageTimes:
        def med(name: str) -> float | None:
            values = [getattr(r, name) for r in runs]
            return None if any(v is None for v in values) else statistics.median(values)

        fields = ("prior", "decoder_steps", "movq_decode", "depth", "rembg", "total")
        values = {f: med(f) for f in fields}
        return StageTimes(**values)  # type: ignore[arg-type]

    def as_dict(self) -> dict[str, float | None]:
        return asdict(self)


class Probe:
    """Hooks on one recipe's UNet, MoVQ decoder and prior for one job.

    * the first UNet call opens the step loop (synchronised stamp); the recipe's step callback calls
      ``tick`` and the last expected step closes it — the split between decoder steps and decode;
    * the MoVQ decoder's forward is clocked (synchronised before and after);
    * UNet and prior calls are counted, and the first call's inputs kept (by reference: only their
      shapes matter) so their FLOPs can be counted afterwards.
    """

    def __init__(self, device: str, unet: Any, movq_decoder: Any, prior: Any, expected_steps: int) -> None:
        self.device = device
        self.modules = {"unet": unet, "movq": movq_decoder, "prior": prior}
        self.expected_steps = expected_steps
        self.steps_seen = 0
        self.unet_start: float | None = None
        self.last_step: float | None = None
        self.movq_s = 0.0
        self.movq_calls = 0
        self._movq_started = 0.0
        self.calls = {"unet": 0, "prior": 0}
        self.first_inputs: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {}
        self._handles: list[Any] = []

    def tick(self) -> None:
        """One denoising step finished (the recipe's step callback)."""
        self.steps_seen += 1
        if self.steps_seen == self.expected_steps:
            sync(self.device)
            self.last_step = time.perf_counter()

    def _counting(self, name: str) -> Any:
        def hook(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            if self.calls[name] == 0:
                self.first_inputs[name] = (args, kwargs)
                if name == "unet":
                    sync(self.device)
                    self.unet_start = time.perf_counter()
            self.calls[name] += 1

        return hook

    def _movq_pre(self, module: Any, args: tuple[Any, ...]) -> None:
        sync(self.device)
        self._movq_started = time.perf_counter()

    def _movq_post(self, module: Any, args: tuple[Any, ...], output: Any) -> None:
        sync(self.device)
        self.movq_s += time.perf_counter() - self._movq_started
        self.movq_calls += 1

    @contextmanager
    def attached(self) -> Iterator[Probe]:
        unet, movq, prior = self.modules["unet"], self.modules["movq"], self.modules["prior"]
        try:
            if unet is not None:
                self._handles.append(unet.register_forward_pre_hook(self._counting("unet"), with_kwargs=True))
            if prior is not None:
                self._handles.append(
                    prior.register_forward_pre_hook(self._counting("prior"), with_kwargs=True)
                )
            if movq is not None:
                self._handles.append(movq.register_forward_pre_hook(self._movq_pre))
                self._handles.append(movq.register_forward_hook(self._movq_post))
            yield self
        finally:
            for handle in self._handles:
                handle.remove()
            self._handles.clear()

    def decoder_steps(self) -> float | None:
        if self.unet_start is None or self.last_step is None:
            return None
        return self.last_step - self.unet_start

    def movq_decode(self) -> float | None:
        return self.movq_s if self.movq_calls else None


def forward_flops(module: Any, inputs: tuple[tuple[Any, ...], dict[str, Any]]) -> int | None:
    """FLOPs of one forward of ``module`` on ``inputs`` (FlopCounterMode); None if it cannot run
    under the counter (e.g. a compiled module): then nothing is reported rather than a guess."""
    from torch.utils.flop_counter import FlopCounterMode

    args, kwargs = inputs
    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter:
            module(*args, **kwargs)
    except Exception:  # any failure means "not counted", never a made-up number
        return None
    return int(counter.get_total_flops())


def matmul_rate(device: str) -> dict[str, Any]:
    """Measured dense matmul TFLOP/s: bf16 (and fp16) 8192³ on CUDA; fp32 256³ on the CPU."""
    dtypes: tuple[torch.dtype, ...]
    if device.startswith("cuda"):
        side, iterations, dtypes = CUDA_MATMUL_SIDE, CUDA_MATMUL_ITERATIONS, (torch.bfloat16, torch.float16)
    else:
        side, iterations, dtypes = CPU_MATMUL_SIDE, CPU_MATMUL_ITERATIONS, (torch.float32,)
    rates: dict[str, float] = {}
    for dtype in dtypes:
        a = torch.randn(side, side, device=device, dtype=dtype)
        b = torch.randn(side, side, device=device, dtype=dtype)
        for _ in range(MATMUL_WARMUP):
            torch.matmul(a, b)
        sync(device)
        started = time.perf_counter()
        for _ in range(iterations):
            torch.matmul(a, b)
        sync(device)
        elapsed = time.perf_counter() - started
        rates[str(dtype).removeprefix("torch.")] = 2 * side**3 * iterations / elapsed / 1e12
        del a, b
    primary = "bfloat16" if "bfloat16" in rates else "float32"
    return {
        "side": side,
        "iterations": iterations,
        "tflops_by_dtype": rates,
        "dtype": primary,
        "tflops": rates[primary],
    }


def resident_bytes(modules: list[Any]) -> int:
    """Bytes of the parameters and buffers of ``modules`` on a CUDA device, each tensor once
    (pipelines share modules, so the same storage must not count twice)."""
    seen: set[int] = set()
    total = 0
    for module in modules:
        if module is None or not hasattr(module, "parameters"):
            continue
        for tensor in (*module.parameters(), *module.buffers()):
            if tensor.device.type != "cuda" or tensor.data_ptr() in seen:
                continue
            seen.add(tensor.data_ptr())
            total += tensor.numel() * tensor.element_size()
    return total


class MemoryWatch:
    """Peak GPU memory of one run: the weights the recipe uses for this mode, plus the most the run
    allocated above what was allocated when it started (other recipes' resident copies excluded)."""

    def __init__(self, device: str) -> None:
        self.cuda = device.startswith("cuda")
        self.start = 0

    def begin(self) -> None:
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
            self.start = torch.cuda.memory_allocated()

    def peaks(self, own_weights: int) -> tuple[float | None, float | None]:
        """(peak GiB for this recipe, device-wide peak GiB); both None on the CPU."""
        if not self.cuda:
            return None, None
        device_peak = torch.cuda.max_memory_allocated()
        return (own_weights + device_peak - self.start) / GIB, device_peak / GIB


def is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def free_device_memory(device: str) -> None:
    import gc

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
