"""The tiny bundle has the public repos' layout and classes, loads with from_pretrained offline,
and its pieces (tokenizer, ONNX segmenter) work on their own."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from diffusers import UNet2DConditionModel
from transformers import CLIPTokenizer, DPTForDepthEstimation

from contract.spec import JobSpec, Mode, Style
from devkit.tiny_models import REMBG_ONNX_NAME, SUBFOLDERS, main, write_tiny_bundle

# model_index.json class names of the public kandinsky-community repos.
PUBLIC_PIPELINES = {
    "prior": (
        "KandinskyV22PriorPipeline",
        {
            "prior": ["diffusers", "PriorTransformer"],
            "image_encoder": ["transformers", "CLIPVisionModelWithProjection"],
            "text_encoder": ["transformers", "CLIPTextModelWithProjection"],
            "tokenizer": ["transformers", "CLIPTokenizer"],
            "scheduler": ["diffusers", "UnCLIPScheduler"],
            "image_processor": ["transformers", "CLIPImageProcessor"],
        },
    ),
    "decoder": ("KandinskyV22Pipeline", None),
    "decoder_inpaint": ("KandinskyV22InpaintPipeline", None),
    "controlnet_depth": ("KandinskyV22ControlnetPipeline", None),
}
DECODER_COMPONENTS = {
    "unet": ["diffusers", "UNet2DConditionModel"],
    "scheduler": ["diffusers", "DDPMScheduler"],
    "movq": ["diffusers", "VQModel"],
}


def test_bundle_has_every_subfolder(tiny_bundle: Path) -> None:
    # Beside them, the marker of a complete bundle (devkit.stack.ensure_tiny_bundle).
    assert sorted(p.name for p in tiny_bundle.iterdir()) == sorted([*SUBFOLDERS, ".complete"])


@pytest.mark.parametrize("folder", list(PUBLIC_PIPELINES))
def test_model_index_names_the_public_classes(tiny_bundle: Path, folder: str) -> None:
    class_name, components = PUBLIC_PIPELINES[folder]
    index = json.loads((tiny_bundle / folder / "model_index.json").read_text())
    assert index["_class_name"] == class_name
    expected = components or DECODER_COMPONENTS
    assert {k: v for k, v in index.items() if not k.startswith("_")} == expected
    for component in expected:
        assert (tiny_bundle / folder / component).is_dir()


def test_unets_have_the_public_input_layout(tiny_bundle: Path) -> None:
    decoder = UNet2DConditionModel.load_config(tiny_bundle / "decoder", subfolder="unet")
    inpaint = UNet2DConditionModel.load_config(tiny_bundle / "decoder_inpaint", subfolder="unet")
    controlnet = UNet2DConditionModel.load_config(tiny_bundle / "controlnet_depth", subfolder="unet")
    assert (decoder["in_channels"], decoder["addition_embed_type"]) == (4, "image")
    assert (inpaint["in_channels"], inpaint["addition_embed_type"]) == (9, "image")
    assert controlnet["addition_embed_type"] == "image_hint"
    for config in (decoder, inpaint, controlnet):
        assert config["out_channels"] == 8 and config["encoder_hid_dim_type"] == "image_proj"


def test_tokenizer_is_a_local_byte_level_clip_bpe(tiny_bundle: Path) -> None:
    folder = tiny_bundle / "prior" / "tokenizer"
    assert (folder / "merges.txt").read_text().startswith("#version: 0.2\n")
    vocab = json.loads((folder / "vocab.json").read_text())
    assert {"<|startoftext|>", "<|endoftext|>", "a</w>", "!"} <= set(vocab)
    tokenizer = CLIPTokenizer.from_pretrained(folder)
    assert tokenizer.model_max_length == 77
    ids = tokenizer("Привет, a cat!").input_ids
    assert ids[0] == vocab["<|startoftext|>"] and ids[-1] == vocab["<|endoftext|>"]
    assert tokenizer.unk_token_id not in ids[1:-1], "byte-level: every character has a token"
    # Style and sticker suffixes stay within CLIP's 77 tokens, as with the real vocabulary.
    spec = JobSpec(mode=Mode.STICKER, prompt="a cute red cat", style=Style.ARTSTATION, width=512, height=512)
    assert len(tokenizer(spec.effective_prompt).input_ids) <= 77


def test_depth_model_loads_and_predicts(tiny_bundle: Path) -> None:
    config = json.loads((tiny_bundle / "depth" / "config.json").read_text())
    assert config["model_type"] == "dpt" and config["architectures"] == ["DPTForDepthEstimation"]
    assert (tiny_bundle / "depth" / "preprocessor_config.json").is_file()
    model = DPTForDepthEstimation.from_pretrained(tiny_bundle / "depth")
    assert model.config.image_size == 32


def test_segmentation_onnx_maps_images_to_a_unit_mask(tiny_bundle: Path) -> None:
    onnx_path = str(tiny_bundle / "rembg" / REMBG_ONNX_NAME)
    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(1, 3, 48, 80)).astype(np.float32)
    (mask,) = session.run(None, {session.get_inputs()[0].name: x})
    assert mask.shape == (1, 1, 48, 80)
    assert 0.0 <= mask.min() < mask.max() <= 1.0


def test_bundle_is_deterministic_for_a_seed(tiny_bundle: Path, tmp_path: Path) -> None:
    again = write_tiny_bundle(tmp_path / "again")

    def digest(root: Path) -> dict[str, str]:
        return {
            str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.suffix in (".safetensors", ".onnx", ".json", ".txt")
        }

    assert digest(again) == digest(tiny_bundle)


def test_command_line_usage_error() -> None:
    assert main([]) == 2
    assert main(["--help"]) == 2
