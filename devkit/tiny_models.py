"""A tiny random-weight Kandinsky 2.2 bundle, written locally with no network.

Machines without the public checkpoints (CI, laptops, this repo's tests) run the very same
``from_pretrained`` code on this bundle: same folder layout, same classes and config keys as
the public repos, only the sizes are tiny. Images from it are noise; every shape is real.

Layout (each folder is what ``save_pretrained`` writes for the matching public repo)::

    prior/            kandinsky-community/kandinsky-2-2-prior         (KandinskyV22PriorPipeline)
    decoder/          kandinsky-community/kandinsky-2-2-decoder       (KandinskyV22Pipeline)
    decoder_inpaint/  kandinsky-community/kandinsky-2-2-decoder-inpaint (KandinskyV22InpaintPipeline)
    controlnet_depth/ kandinsky-community/kandinsky-2-2-controlnet-depth (KandinskyV22ControlnetPipeline)
    depth/            Intel/dpt-hybrid-midas                          (DPTForDepthEstimation + processor)
    rembg/tiny-seg.onnx  a conv + sigmoid segmentation net for rembg's "u2net_custom" session
    segment/          CIDAS/clipseg-rd64-refined (CLIPSeg: the mask of edits by words; devkit.tiny_segment)
    kandinsky3/       kandinsky-community/kandinsky-3 (Kandinsky3Pipeline, fp16 files; devkit.tiny_kandinsky3)
    sdxl/ sdxl_refiner/  stabilityai/stable-diffusion-xl-{base,refiner}-1.0 (fp16 files; devkit.tiny_sdxl)
    translate/ transcribe/  the worker's language models (devkit.tiny_language: Marian, Whisper)

Configs follow diffusers' own fast tests for Kandinsky 2.2 and transformers' DPT tests.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from diffusers import (
    DDPMScheduler,
    KandinskyV22ControlnetPipeline,
    KandinskyV22InpaintPipeline,
    KandinskyV22Pipeline,
    KandinskyV22PriorPipeline,
    PriorTransformer,
    UnCLIPScheduler,
    UNet2DConditionModel,
    VQModel,
)
from onnx import TensorProto, helper, numpy_helper
from transformers import (
    CLIPImageProcessorPil,
    CLIPTextConfig,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
    DPTConfig,
    DPTForDepthEstimation,
    DPTImageProcessorPil,
)

from contract.spec import STICKER_SUFFIX, STYLE_SUFFIXES
from devkit.tiny_kandinsky3 import FOLDER as KANDINSKY3_FOLDER
from devkit.tiny_kandinsky3 import write_tiny_kandinsky3
from devkit.tiny_kandinsky5 import EDIT_FOLDER as KANDINSKY5_EDIT_FOLDER
from devkit.tiny_kandinsky5 import FOLDERS as KANDINSKY5_FOLDERS
from devkit.tiny_kandinsky5 import IMAGE_FOLDER as KANDINSKY5_IMAGE_FOLDER
from devkit.tiny_kandinsky5 import write_tiny_kandinsky5
from devkit.tiny_language import TRANSCRIBE_FOLDER, TRANSLATE_FOLDER, write_tiny_language_models
from devkit.tiny_lora import FOLDER as LORA_FOLDER
from devkit.tiny_lora import write_tiny_loras
from devkit.tiny_sdxl import FOLDER as SDXL_FOLDER
from devkit.tiny_sdxl import REFINER_FOLDER as SDXL_REFINER_FOLDER
from devkit.tiny_sdxl import write_tiny_sdxl
from devkit.tiny_segment import FOLDER as SEGMENT_FOLDER
from devkit.tiny_segment import write_tiny_segmenter

EMBED_DIM = 32
"""CLIP image-embedding width shared by prior, text/image encoders and every decoder UNet (1280 in public)."""

TEXT_MAX_LENGTH = 77
"""CLIP's context length; the prior's positional table (num_embeddings) must match it."""

CLIP_IMAGE_SIZE = 224
"""The public CLIP image size; kept so the image processor config is the public one."""

DEPTH_IMAGE_SIZE = 32
"""Tiny DPT input side; the depth map is upsampled to the job size anyway."""

REMBG_ONNX_NAME = "tiny-seg.onnx"

SUBFOLDERS = ("prior", "decoder", "decoder_inpaint", "controlnet_depth", "depth", "rembg", TRANSLATE_FOLDER,
              TRANSCRIBE_FOLDER, KANDINSKY3_FOLDER, SEGMENT_FOLDER, SDXL_FOLDER, SDXL_REFINER_FOLDER,
              *KANDINSKY5_FOLDERS, KANDINSKY5_IMAGE_FOLDER, KANDINSKY5_EDIT_FOLDER, LORA_FOLDER)

# Scheduler configs as in the public repos (prior: UnCLIP; decoders: DDPM).
PRIOR_SCHEDULER_CONFIG: dict[str, object] = {
    "variance_type": "fixed_small_log",
    "prediction_type": "sample",
    "num_train_timesteps": 1000,
    "clip_sample": True,
    "clip_sample_range": 10.0,
}
DECODER_SCHEDULER_CONFIG: dict[str, object] = {
    "num_train_timesteps": 1000,
    "beta_schedule": "linear",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "clip_sample": False,
    "steps_offset": 1,
    "prediction_type": "epsilon",
    "thresholding": False,
    "timestep_spacing": "leading",
    "variance_type": "fixed_small",
}


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte-level alphabet: every byte maps to one printable character."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs, strict=True)}


_COMMON_WORDS = (
    "a an the of and in on with at to for by from cat dog red blue green portrait photo painting "
    "landscape city forest sea sky sun night cute robot house tree flower girl boy man woman"
)


def _word_merges() -> list[tuple[str, str]]:
    """Merges that spell whole words left to right, so style and sticker suffixes stay well under
    77 tokens as with the real vocabulary (a bare byte vocabulary would truncate them)."""
    words = set(_COMMON_WORDS.split())
    for text in (*STYLE_SUFFIXES.values(), STICKER_SUFFIX):
        words.update(w for w in re.findall(r"[a-z]+", text.lower()) if len(w) > 1)
    merges: dict[tuple[str, str], None] = {}
    for word in sorted(words):
        if len(word) < 2:
            continue
        pieces = [*word[:-1], word[-1] + "</w>"]
        prefix = pieces[0]
        for piece in pieces[1:]:
            merges[(prefix, piece)] = None
            prefix += piece
    return list(merges)


def build_tokenizer_files(directory: Path) -> None:
    """Write vocab.json and merges.txt of a byte-level CLIP BPE tokenizer (no download)."""
    chars = list(_bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars]
    word_merges = _word_merges()
    tokens += ["".join(pair) for pair in word_merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(tokens))}
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    merges = "#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in word_merges) + "\n"
    (directory / "merges.txt").write_text(merges, encoding="utf-8")


def _tokenizer() -> CLIPTokenizer:
    with tempfile.TemporaryDirectory() as tmp:
        build_tokenizer_files(Path(tmp))
        tok = CLIPTokenizer.from_pretrained(tmp, model_max_length=TEXT_MAX_LENGTH)
    return tok


def _prior_pipeline() -> Any:
    tokenizer = _tokenizer()
    torch.manual_seed(0)
    text_encoder = CLIPTextModelWithProjection(
        CLIPTextConfig(
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            hidden_size=EMBED_DIM,
            projection_dim=EMBED_DIM,
            intermediate_size=37,
            layer_norm_eps=1e-05,
            num_attention_heads=4,
            num_hidden_layers=2,
            max_position_embeddings=TEXT_MAX_LENGTH,
            vocab_size=len(tokenizer),
        )
    )
    torch.manual_seed(0)
    prior: Any = PriorTransformer(
        num_attention_heads=2,
        attention_head_dim=12,
        embedding_dim=EMBED_DIM,
        num_layers=1,
        num_embeddings=TEXT_MAX_LENGTH,
    )
    # Zero clip_std would make post_process_latents return zeros; the public weights have real stats.
    prior.clip_std = torch.nn.Parameter(torch.ones(prior.clip_std.shape))
    torch.manual_seed(0)
    image_encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=EMBED_DIM,
            image_size=CLIP_IMAGE_SIZE,
            projection_dim=EMBED_DIM,
            intermediate_size=37,
            num_attention_heads=4,
            num_channels=3,
            num_hidden_layers=2,
            patch_size=14,
        )
    )
    # The PIL processors save the same config as the public repos' (image_processor_type
    # CLIPImageProcessor / DPTImageProcessor) without transformers' torchvision notice.
    image_processor = CLIPImageProcessorPil(
        crop_size=CLIP_IMAGE_SIZE,
        do_center_crop=True,
        do_normalize=True,
        do_resize=True,
        image_mean=[0.48145466, 0.4578275, 0.40821073],
        image_std=[0.26862954, 0.26130258, 0.27577711],
        resample=3,
        size=CLIP_IMAGE_SIZE,
    )
    return KandinskyV22PriorPipeline(
        prior=prior,
        image_encoder=image_encoder,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=UnCLIPScheduler(**PRIOR_SCHEDULER_CONFIG),  # type: ignore[arg-type]
        image_processor=image_processor,
    )


def _public_image_processor_name(model_index: Path) -> None:
    """Without torchvision transformers saves its PIL fallback class; the public repo names the base one."""
    index = json.loads(model_index.read_text(encoding="utf-8"))
    index["image_processor"] = ["transformers", "CLIPImageProcessor"]
    model_index.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _unet(in_channels: int, addition_embed_type: str) -> UNet2DConditionModel:
    torch.manual_seed(0)
    return UNet2DConditionModel(
        in_channels=in_channels,
        out_channels=8,  # mean and learned variance, as in the public decoders
        addition_embed_type=addition_embed_type,
        down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
        up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
        mid_block_type="UNetMidBlock2DSimpleCrossAttn",
        block_out_channels=(32, 64),
        layers_per_block=1,
        encoder_hid_dim=EMBED_DIM,
        encoder_hid_dim_type="image_proj",
        cross_attention_dim=64,
        attention_head_dim=4,
        resnet_time_scale_shift="scale_shift",
        class_embed_type=None,
    )


def _movq() -> VQModel:
    torch.manual_seed(0)
    return VQModel(
        # SpatialNorm's GroupNorm(32) needs >= 32 channels; no extra resnets: the full-resolution
        # decoder blocks dominate CPU time (20 GFLOP instead of 46 for a 512² decode).
        block_out_channels=(32, 32, 32, 32),
        down_block_types=(
            "DownEncoderBlock2D",
            "DownEncoderBlock2D",
            "DownEncoderBlock2D",
            "AttnDownEncoderBlock2D",
        ),
        in_channels=3,
        latent_channels=4,
        layers_per_block=0,
        norm_num_groups=8,
        norm_type="spatial",
        num_vq_embeddings=12,
        out_channels=3,
        up_block_types=("AttnUpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"),
        vq_embed_dim=4,
    )


def _decoder_scheduler() -> DDPMScheduler:
    return DDPMScheduler(**DECODER_SCHEDULER_CONFIG)  # type: ignore[arg-type]


def _write_depth(directory: Path) -> None:
    torch.manual_seed(0)
    config = DPTConfig(
        image_size=DEPTH_IMAGE_SIZE,
        patch_size=16,
        num_channels=3,
        hidden_size=32,
        num_hidden_layers=2,
        backbone_out_indices=[0, 1],
        num_attention_heads=4,
        intermediate_size=37,
        neck_hidden_sizes=[16, 32],
        fusion_hidden_size=16,
        reassemble_factors=[4, 2],
        is_hybrid=False,
        head_in_index=-1,
    )
    model = DPTForDepthEstimation(config).eval()
    model.save_pretrained(directory)
    depth_processor(DEPTH_IMAGE_SIZE).save_pretrained(directory)


def depth_processor(side: int) -> DPTImageProcessorPil:
    """The DPT-hybrid-MiDaS preprocessing (bicubic to ``side``², normalised to [-1, 1])."""
    return DPTImageProcessorPil(
        do_resize=True,
        size={"height": side, "width": side},
        keep_aspect_ratio=False,
        ensure_multiple_of=1,
        resample=3,
        do_normalize=True,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )


def build_segmentation_onnx(seed: int = 0) -> onnx.ModelProto:
    """A 1×3×H×W → 1×1×H×W net (two 3×3 convs, sigmoid) that rembg's custom session can run."""
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 0.5, size=(4, 3, 3, 3)).astype(np.float32)
    b1 = np.zeros(4, dtype=np.float32)
    w2 = rng.normal(0, 0.5, size=(1, 4, 3, 3)).astype(np.float32)
    b2 = np.zeros(1, dtype=np.float32)
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["h1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["h1"], ["h2"]),
        helper.make_node("Conv", ["h2", "w2", "b2"], ["logits"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["logits"], ["mask"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_seg",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, "height", "width"])],
        [helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 1, "height", "width"])],
        initializer=[
            numpy_helper.from_array(w1, "w1"),
            numpy_helper.from_array(b1, "b1"),
            numpy_helper.from_array(w2, "w2"),
            numpy_helper.from_array(b2, "b2"),
        ],
    )
    opset = [helper.make_opsetid("", 13)]
    model = helper.make_model(graph, opset_imports=opset, producer_name="kandinsky-bot")
    model.ir_version = 8  # readable by every onnxruntime the project supports
    onnx.checker.check_model(model)
    return model


def write_tiny_bundle(path: Path, seed: int = 0) -> Path:
    """Write the whole bundle under ``path`` and return it; deterministic for a given seed."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    prior = _prior_pipeline()
    prior.save_pretrained(path / "prior")
    # The public repo ships the slow-tokenizer files too; keep the layout identical.
    build_tokenizer_files(path / "prior" / "tokenizer")
    _public_image_processor_name(path / "prior" / "model_index.json")

    movq = _movq()
    decoders: dict[str, tuple[Any, int, str]] = {
        "decoder": (KandinskyV22Pipeline, 4, "image"),
        "decoder_inpaint": (KandinskyV22InpaintPipeline, 9, "image"),  # latents + masked image + mask
        # The hint's 3 channels are encoded to 4 latent channels and concatenated: 4 + 4 in.
        "controlnet_depth": (KandinskyV22ControlnetPipeline, 8, "image_hint"),
    }
    for folder, (pipeline_class, in_channels, embed_type) in decoders.items():
        unet = _unet(in_channels, embed_type)
        pipe: Any = pipeline_class(unet=unet, scheduler=_decoder_scheduler(), movq=movq)
        pipe.save_pretrained(path / folder)

    _write_depth(path / "depth")
    (path / "rembg").mkdir(exist_ok=True)
    onnx.save(build_segmentation_onnx(seed), str(path / "rembg" / REMBG_ONNX_NAME))
    write_tiny_segmenter(path / SEGMENT_FOLDER, seed)
    write_tiny_kandinsky3(path / KANDINSKY3_FOLDER, seed)
    write_tiny_sdxl(path, seed)
    write_tiny_loras(path, seed)
    write_tiny_kandinsky5(path, seed)
    write_tiny_language_models(path, seed)
    return path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python -m devkit.tiny_models DIR", file=sys.stderr)
        return 2
    out = write_tiny_bundle(Path(args[0]))
    print(f"tiny Kandinsky 2.2 + 3.0 + SDXL + 5.0 Video and Image bundle written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
