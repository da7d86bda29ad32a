"""A tiny random-weight CLIPSeg (the text-prompted mask of edits by words), written with no network.

The folder is what ``CLIPSegForImageSegmentation.save_pretrained`` plus ``CLIPSegProcessor
.save_pretrained`` write for CIDAS/clipseg-rd64-refined: config.json, the weights, the tokenizer (the
tiny bundle's byte-level CLIP BPE) and the ViT image processor with CLIP's mean and std. Only the
sizes are tiny: a 64 px input (the public model reads 352), three 32-wide layers per tower. Its
masks are noise (random blocks of the picture, one per patch); every shape and call is real.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from transformers import (
    CLIPSegConfig,
    CLIPSegForImageSegmentation,
    CLIPSegProcessor,
    CLIPTokenizer,
    ViTImageProcessorPil,
)

FOLDER = "segment"
"""Where the model lives in the tiny bundle (and in any KANDINSKY_MODEL_DIR)."""
IMAGE_SIDE = 64
"""The tiny model's input side (patch 16: a 4×4 grid); the public model's is 352."""
FLAT_KERNEL_GAIN = 10.0
"""Random weights give logits of a few tenths; this makes them a few units, so the map has blocks
clearly in and clearly out of the region (probabilities near 0 and 1, not all near 0.5)."""
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def write_tiny_segmenter(directory: Path, seed: int = 0) -> Path:
    """Write the tiny CLIPSeg model and processor into ``directory``; deterministic for a seed."""
    from devkit.tiny_models import TEXT_MAX_LENGTH, build_tokenizer_files

    directory = Path(directory)
    with tempfile.TemporaryDirectory() as tmp:
        build_tokenizer_files(Path(tmp))
        tokenizer = CLIPTokenizer.from_pretrained(tmp, model_max_length=TEXT_MAX_LENGTH)
    torch.manual_seed(seed)
    config = CLIPSegConfig(
        text_config={
            "vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 37,
            "num_hidden_layers": 3, "num_attention_heads": 4, "max_position_embeddings": TEXT_MAX_LENGTH,
            "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={
            "hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 3, "num_attention_heads": 4,
            "image_size": IMAGE_SIDE, "patch_size": 16,
        },
        projection_dim=32,
        extract_layers=(1, 2),  # hidden states 2 and 3 of 3 (CLIPSeg reads hidden_states[i + 1])
        reduce_dim=16,
        decoder_num_attention_heads=2,
        decoder_intermediate_size=37,
    )
    model = CLIPSegForImageSegmentation(config).eval()
    # A flat kernel: each of the 4×4 patches paints one uniform block. Random 16 px kernels would
    # speckle the map, and grown by a few pixels a speckled region covers the whole picture.
    transposed = model.decoder.transposed_convolution
    with torch.no_grad():
        flat = transposed.weight.mean(dim=(2, 3), keepdim=True) * FLAT_KERNEL_GAIN
        transposed.weight.copy_(flat.expand_as(transposed.weight))
    images = ViTImageProcessorPil(size={"height": IMAGE_SIDE, "width": IMAGE_SIDE}, resample=2,
                                  image_mean=CLIP_MEAN, image_std=CLIP_STD)
    processor = CLIPSegProcessor(image_processor=images, tokenizer=tokenizer)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory
