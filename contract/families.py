"""Model families, each described once: title, modes, size buckets, defaults, prompt limit, memory.

Both sides import this (it imports neither torch nor aiogram) and derive the rest from it: the job
spec checks a job against its family (mode, size, defaults), the bot offers a family's modes and
refuses the others before anything is queued, the queues are per family (contract/queue.py), a
worker decides which families fit its device from the memory written here, and the engine has one
module per family (worker/engine/families/<value>.py) registered under the same name.

Which modes a family serves is written on the modes (``ModeDescription.families`` in
contract/modes.py); :attr:`FamilyDescription.modes` reads it from there.

How to add a family (SDXL, say):

1. a member of :class:`Family` and a :class:`FamilyDescription` in :data:`FAMILIES`;
2. the family in ``families`` of each mode it serves (contract/modes.py);
3. its engine: ``worker/engine/families/<value>.py``, a ``FamilyEngine`` subclass with one
   ``@recipe`` method per mode, listed in ``worker/engine/families/__init__.py``, and its own
   settings there (a ``FamilyOptions`` subclass read from ``KANDINSKY_<FAMILY>_*``, in the README's table);
4. its tiny random-weight folder in ``devkit/tiny_models.py``;
5. its ``model-<value>`` text in both bot/locales/*/messages.ftl.

tests/contract/test_families.py fails until every piece is there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class Family(StrEnum):
    """The value travels in job specs, queue names, callback data and user settings: never rename one."""

    KANDINSKY22 = "kandinsky22"
    KANDINSKY3 = "kandinsky3"
    SDXL = "sdxl"
    KANDINSKY5 = "kandinsky5"
    KANDINSKY5_IMAGE = "kandinsky5_image"


class Placement(StrEnum):
    """Where a family's models live on a worker (``KANDINSKY_*_PLACEMENT``)."""

    GPU = "gpu"
    """Every model resident on the device: the fastest, and the most device memory."""
    MODEL_OFFLOAD = "model_offload"
    """accelerate's model offload: each model moves to the GPU only while it runs (the largest one
    sets the peak); each job pays the host-to-device copies."""
    TEXT_ENCODER_CPU = "text_encoder_cpu"
    """The text encoder runs on the CPU (once per job), everything else stays resident on the GPU."""


BYTES_PER_PARAM_FP16 = 2
"""Public checkpoints are served in float16 (bfloat16 is the same size)."""
GIB = 2**30
RUNTIME_ALLOWANCE_GIB = 4.0
"""Device memory beyond the weights: CUDA context, activations of a 1024² batch of four with
classifier-free guidance, allocator slack. An estimate (no GPU was at hand to measure it);
bench/bench_engine_gpu.py reports the measured peak per family on its next GPU run."""


@dataclass(frozen=True)
class Component:
    """One model of a family's checkpoints."""

    name: str
    params: int
    """Parameters, counted on the public config (meta device: bench/bench_fullsize.py counts them)."""
    text_encoder: bool = False
    """Stays on the CPU under ``Placement.TEXT_ENCODER_CPU``."""

    @property
    def gib(self) -> float:
        """Size of its float16 weights."""
        return self.params * BYTES_PER_PARAM_FP16 / GIB


@dataclass(frozen=True, kw_only=True)
class FamilyDescription:
    """One model family: what the bot, the spec and the worker need to know about it."""

    family: Family
    title: str
    """Shown in captions, /settings, /model, /stats and /workers (a proper name: not translated)."""
    default_steps: int
    """Denoising steps of its decoder / UNet (the model card's)."""
    default_guidance: float
    prompt_tokens: int
    """What its text encoder reads; a longer prompt is cut there (and the user told so)."""
    components: tuple[Component, ...]
    placements: tuple[Placement, ...]
    """The placements its engine supports; the first is the default."""
    default_prior_steps: int | None = None
    """Steps of an image prior, for families that have one."""
    default_prior_guidance: float | None = None
    weighted_prompts: bool = False
    """Its prompts may weight words (``(fog:0.6)``, contract.weighting): a malformed weighting is
    refused before queueing instead of drawn as text."""
    lora_styles: bool = False
    """It takes LoRA styles from the operator's catalogue (contract.loras): /settings offers them and
    a job may name them."""
    reads_languages: frozenset[str] = frozenset()
    """Languages besides English its text encoder reads well (ISO 639-1): prompts in them reach it
    untranslated (worker.language), and the caption says so."""
    long_sides: tuple[int, ...] | None = None
    """Resolution tiers it renders; None: every tier of contract.spec (``SIZE_BUCKETS``)."""
    notes: Mapping[str, str] = field(default_factory=dict)
    """Where the figures come from (the README's memory table prints them)."""

    @property
    def modes(self) -> tuple[str, ...]:
        """The modes it serves, from the modes' own descriptions (contract/modes.py)."""
        from contract.modes import served_by

        return tuple(mode.value for mode in served_by(self.family))

    def serves(self, mode: str) -> bool:
        return mode in self.modes

    def device_weights_gib(self, placement: Placement) -> float:
        """Float16 weights on the device at ``placement``: all of them, the largest model alone under
        offload, or all but the text encoder."""
        if placement not in self.placements:
            raise ValueError(f"{self.title} cannot be placed as {placement!r}; "
                             f"expected one of {', '.join(self.placements)}")
        placement = Placement(placement)  # a plain "model_offload" from a setting reads the same
        if placement is Placement.MODEL_OFFLOAD:
            return max(c.gib for c in self.components)
        if placement is Placement.TEXT_ENCODER_CPU:
            return sum(c.gib for c in self.components if not c.text_encoder)
        return sum(c.gib for c in self.components)

    def memory_gib(self, placement: Placement) -> float:
        """Device memory this family needs at ``placement``: its weights there plus the runtime allowance."""
        return round(self.device_weights_gib(placement) + RUNTIME_ALLOWANCE_GIB, 1)

    @property
    def weights_gib(self) -> float:
        """All its float16 weights (what a model folder or cache holds, about)."""
        return round(sum(c.gib for c in self.components), 1)


# Parameter counts: each model built from its public config on torch's meta device (no weights),
# see bench/bench_fullsize.py (tests/bench/test_bench_fullsize.py holds them equal).
FAMILIES: tuple[FamilyDescription, ...] = (
    FamilyDescription(
        family=Family.KANDINSKY22,
        title="Kandinsky 2.2",
        default_steps=50,
        default_guidance=4.0,
        default_prior_steps=25,
        default_prior_guidance=4.0,
        prompt_tokens=77,
        components=(
            Component("prior", 1_026_225_920),
            Component("text_encoder", 694_659_840, text_encoder=True),
            Component("image_encoder", 1_844_907_264),
            Component("decoder", 1_253_057_288),
            Component("decoder_inpaint", 1_253_074_568),
            Component("controlnet_depth", 1_253_429_212),
            Component("movq", 67_832_495),
            Component("depth", 122_377_985),
        ),
        placements=(Placement.GPU, Placement.MODEL_OFFLOAD),
        notes={"checkpoints": "kandinsky-community/kandinsky-2-2-{prior,decoder,decoder-inpaint,"
                              "controlnet-depth}, Intel/dpt-hybrid-midas"},
    ),
    FamilyDescription(
        family=Family.KANDINSKY3,
        title="Kandinsky 3.0",
        default_steps=25,
        default_guidance=3.0,
        prompt_tokens=128,
        components=(
            Component("text_encoder", 8_721_797_632, text_encoder=True),  # Flan-UL2's encoder
            Component("unet", 3_055_348_228),
            Component("movq", 270_669_103),
        ),
        placements=(Placement.GPU, Placement.TEXT_ENCODER_CPU, Placement.MODEL_OFFLOAD),
        notes={"checkpoints": "kandinsky-community/kandinsky-3 (fp16 variant)"},
    ),
    FamilyDescription(
        family=Family.SDXL,
        title="SDXL",
        default_steps=40,
        default_guidance=5.0,
        prompt_tokens=77,
        weighted_prompts=True,
        lora_styles=True,
        components=(
            Component("text_encoder", 123_060_480, text_encoder=True),  # CLIP ViT-L
            Component("text_encoder_2", 694_659_840, text_encoder=True),  # OpenCLIP bigG, shared
            Component("unet", 2_567_463_684),
            Component("refiner_unet", 2_259_526_660),
            Component("vae", 83_653_863),  # shared by base and refiner
        ),
        placements=(Placement.GPU, Placement.MODEL_OFFLOAD),
        notes={"checkpoints": "stabilityai/stable-diffusion-xl-base-1.0 + stable-diffusion-xl-refiner-1.0 "
                              "(fp16 variant; the refiner's second text encoder and VAE are the base's)"},
    ),
    FamilyDescription(
        family=Family.KANDINSKY5,
        title="Kandinsky 5.0 Video",
        default_steps=16,  # the distilled Video Lite checkpoint's; each checkpoint's own recipe rules
        default_guidance=1.0,
        prompt_tokens=512,  # Qwen2.5-VL's tokens the pipelines read (max_sequence_length)
        components=(
            Component("text_encoder", 8_292_166_656, text_encoder=True),  # Qwen2.5-VL 7B, vision tower too
            Component("text_encoder_2", 123_060_480, text_encoder=True),  # CLIP ViT-L's text model
            Component("video_transformer", 2_007_702_848),  # Video Lite's DiT
            Component("image_to_video_transformer", 2_007_702_848),  # I2V Lite's: the same DiT config
            Component("video_vae", 246_478_803),  # HunyuanVideo's 3D VAE
        ),
        placements=(Placement.GPU, Placement.TEXT_ENCODER_CPU, Placement.MODEL_OFFLOAD),
        long_sides=(512, 768),
        reads_languages=frozenset({"ru"}),  # Qwen2.5-VL, and the Kandinsky team trained on Russian captions
        notes={"checkpoints": "kandinskylab/Kandinsky-5.0-T2V-Lite-{distilled16steps,sft,nocfg}-{5s,10s}-"
                              "Diffusers (bfloat16; the kind is KANDINSKY_K5_VIDEO_KIND, the length the "
                              "bot's)"},
    ),
    FamilyDescription(
        family=Family.KANDINSKY5_IMAGE,
        title="Kandinsky 5.0 Image",
        default_steps=50,  # the SFT checkpoints' model card
        default_guidance=3.5,
        prompt_tokens=512,  # Qwen2.5-VL's tokens text → image reads (max_sequence_length)
        components=(
            Component("text_encoder", 8_292_166_656, text_encoder=True),  # Qwen2.5-VL 7B: reads the photo too
            Component("text_encoder_2", 123_060_480, text_encoder=True),  # CLIP ViT-L's text model
            Component("transformer", 6_022_080_576),  # Image Lite's 6B DiT
            Component("edit_transformer", 6_022_254_656),  # I2I Lite's: the photo's latents as extra channels
            Component("vae", 83_819_683),  # FLUX.1's VAE
        ),
        placements=(Placement.GPU, Placement.TEXT_ENCODER_CPU, Placement.MODEL_OFFLOAD),
        reads_languages=frozenset({"ru"}),
        notes={"checkpoints": "kandinskylab/Kandinsky-5.0-{T2I,I2I}-Lite-sft-Diffusers (bfloat16; drawn "
                              "at its 1K sizes, cut to the exact ratio and scaled to the tier)"},
    ),
)
"""Every family, in the order a worker considers them for its device (and /model lists them)."""


def index_families(families: tuple[FamilyDescription, ...]) -> dict[Family, FamilyDescription]:
    """Refuse at import a family described twice or not at all."""
    by_family: dict[Family, FamilyDescription] = {}
    for description in families:
        if description.family in by_family:
            raise ValueError(f"family {description.family} is described twice")
        if not description.placements:
            raise ValueError(f"family {description.family} has no placement")
        by_family[description.family] = description
    missing = [f.value for f in Family if f not in by_family]
    if missing:
        raise ValueError(f"families without a description: {', '.join(missing)}")
    return by_family


_BY_FAMILY: dict[Family, FamilyDescription] = index_families(FAMILIES)

DEFAULT_FAMILY = Family.KANDINSKY22
"""What a spec, a user or a worker gets when it names none (every spec written before families)."""


def describe_family(family: Family | str) -> FamilyDescription:
    """The description of ``family``; ValueError naming the known ones for anything else."""
    return _BY_FAMILY[parse_family(family)]


def parse_family(name: Family | str) -> Family:
    """A family from its value; ValueError with the known names for an unknown one (settings, CLI)."""
    try:
        return Family(name)
    except ValueError:
        known = ", ".join(f.value for f in Family)
        raise ValueError(f"unknown model family {name!r}; expected one of {known}") from None


def families_serving(mode: str) -> tuple[Family, ...]:
    """The families that run ``mode``, in :data:`FAMILIES` order (the bot offers the first)."""
    return tuple(d.family for d in FAMILIES if d.serves(mode))


def picture_families() -> tuple[FamilyDescription, ...]:
    """The families a user may pick to draw their pictures (/model): those that draw from text; a
    family of videos alone runs its own mode without being picked."""
    return tuple(d for d in FAMILIES if d.serves("text2image"))
