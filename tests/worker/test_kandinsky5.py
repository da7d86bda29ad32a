"""Kandinsky 5.0 Video through the engine, on the tiny bundle: the same frames as plain diffusers'
Kandinsky5T2VPipeline for the same seed, cut to the exact ratio and encoded as an MP4."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import Kandinsky5I2VPipeline, Kandinsky5T2VPipeline
from PIL import Image

from contract.families import Family, Placement
from contract.spec import JobSpec, Mode, bucket_size, crop_box
from contract.video import IMAGE_TO_VIDEO, VIDEO_STAGE, VideoKind, video_checkpoint
from tests.worker.test_cli import run_cli
from worker.engine import Engine, EngineSettings, InputRejected, JobCancelled, ModelFolderError
from worker.engine.animation.encode import VideoTooLarge, encode_frames, probe
from worker.engine.families import Kandinsky5Engine, kandinsky5
from worker.engine.families.kandinsky5 import MOTION_PROMPT
from worker.engine.images import fit_to_size

FPS = 1
"""The tests' frame rate: 5 s are 5 frames (the checkpoints' 24 make 121); a tiny VAE still takes
about a third of a second per 512 px frame on one CPU thread."""
SIZE = bucket_size("16:9", 512)


def settings(bundle: Path, **options: object) -> EngineSettings:
    return EngineSettings(model_dir=bundle, device="cpu", dtype="float32", preload=False,
                          family_options={Family.KANDINSKY5: {"video_fps": FPS, **options}})


@pytest.fixture(scope="module")
def k5(tiny_bundle: Path) -> Kandinsky5Engine:
    engine = Engine(settings(tiny_bundle, video_seconds=[5, 10]), families=[Family.KANDINSKY5])
    part = engine[Family.KANDINSKY5]
    assert isinstance(part, Kandinsky5Engine)
    return part


def video_spec(seed: int = 7, seconds: int = 5, **fields: object) -> JobSpec:
    return JobSpec(**{"model": Family.KANDINSKY5, "mode": Mode.VIDEO, "prompt": "a cat dancing in the rain",
                      "width": SIZE[0], "height": SIZE[1], "aspect": "16:9", "seed": seed, "seconds": seconds,
                      **fields})


def plain_frames(folder: Path, spec: JobSpec, frames: int) -> np.ndarray:
    """The model card's recipe with plain diffusers, uint8 and cut to the exact ratio as the engine does."""
    pipe = Kandinsky5T2VPipeline.from_pretrained(folder, dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    checkpoint = video_checkpoint(VideoKind.DISTILLED, spec.seconds)
    out = pipe(prompt=spec.prompt, height=spec.height, width=spec.width, num_frames=frames,
               num_inference_steps=checkpoint.steps, guidance_scale=checkpoint.guidance, output_type="np",
               generator=torch.Generator("cpu").manual_seed(spec.seed), max_sequence_length=512)
    clip = np.clip(np.rint(np.asarray(out.frames[0]) * 255.0), 0, 255).astype(np.uint8)
    left, top, right, bottom = crop_box(clip.shape[2], clip.shape[1], *spec.output_size(even=True))
    return clip[:, top:bottom, left:right]


def test_a_video_is_plain_diffusers_frames_cut_to_the_ratio_in_an_mp4(k5: Kandinsky5Engine,
                                                                       tiny_bundle: Path) -> None:
    spec = video_spec()
    seen: list[tuple[str, int, int]] = []
    out = k5.generate(spec, on_progress=lambda *event: seen.append(event))
    video = out.video
    assert video is not None and out.images == []
    frames = video_checkpoint(VideoKind.DISTILLED, 5).frames(FPS)
    assert frames == 5 and video.frames == frames and video.fps == FPS
    assert (video.width, video.height) == spec.output_size(even=True) == (512, 288)
    expected = plain_frames(tiny_bundle / "kandinsky5_video_5s", spec, frames)
    assert video.frame_hashes == [hashlib.sha256(np.ascontiguousarray(f).tobytes()).hexdigest()
                                  for f in expected]
    info = probe(video.data)
    assert (info.codec, info.width, info.height, info.frames) == ("h264", 512, 288, frames)
    steps = video_checkpoint(VideoKind.DISTILLED, 5).steps
    assert [e for e in seen if e[0] == VIDEO_STAGE] == [(VIDEO_STAGE, i, steps) for i in range(1, steps + 1)]
    assert out.timings[VIDEO_STAGE] > 0 and out.timings["mp4"] > 0


def test_each_length_runs_its_own_checkpoint(k5: Kandinsky5Engine) -> None:
    ten = k5.generate(video_spec(seed=3, seconds=10)).video
    assert ten is not None
    assert ten.frames == video_checkpoint(VideoKind.DISTILLED, 10).frames(FPS) == 9
    assert k5.model_ids["video_10s"].endswith("kandinsky5_video_10s")


def test_text_encoders_on_the_cpu_give_the_same_frames(k5: Kandinsky5Engine, tiny_bundle: Path) -> None:
    split = Engine(settings(tiny_bundle, placement=Placement.TEXT_ENCODER_CPU),
                   families=[Family.KANDINSKY5])[Family.KANDINSKY5]
    assert isinstance(split, Kandinsky5Engine)
    assert split.video_pipeline(5).text_encoder is None
    ours, theirs = split.generate(video_spec(seed=5)).video, k5.generate(video_spec(seed=5)).video
    assert ours is not None and theirs is not None and ours.frame_hashes == theirs.frame_hashes


def test_a_prompt_past_qwen_s_512_tokens_is_reported_cut(k5: Kandinsky5Engine) -> None:
    """The pipelines read 512 Qwen tokens of the prompt: past them the caption says it was cut."""
    assert not k5.prompt_truncated(video_spec())
    long = "Ω" * 900  # within the 1000 characters a prompt may have; bytes its tokenizer never merged
    assert k5.count_tokens(long) > 512 and k5.prompt_truncated(video_spec(prompt=long))


def test_a_length_the_worker_does_not_hold_is_refused_and_cancel_stops_the_steps(tiny_bundle: Path) -> None:
    only_five = Engine(settings(tiny_bundle), families=[Family.KANDINSKY5])[Family.KANDINSKY5]
    with pytest.raises(InputRejected, match="not 10 s"):
        only_five.generate(video_spec(seconds=10))
    seen: list[tuple[str, int, int]] = []
    with pytest.raises(JobCancelled):
        only_five.generate(video_spec(), on_progress=lambda *e: seen.append(e),
                           should_cancel=lambda: len(seen) >= 2)
    assert len(seen) == 2


def test_a_bundle_without_a_length_s_folder_names_it(tiny_bundle: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle / "kandinsky5_video_5s", bundle / "kandinsky5_video_5s")
    shutil.copytree(tiny_bundle / IMAGE_TO_VIDEO.folder, bundle / IMAGE_TO_VIDEO.folder)
    with pytest.raises(ModelFolderError, match="kandinsky5_video_10s/"):
        Engine(settings(bundle, video_seconds=[5, 10]), families=[Family.KANDINSKY5])


def test_a_clip_over_the_limit_is_encoded_again_smaller_never_dropped() -> None:
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, size=(8, 128, 128, 3), dtype=np.uint8)  # incompressible
    full = encode_frames(noise, 4)
    smaller = encode_frames(noise, 4, max_bytes=len(full.data) - 1)
    assert len(smaller.data) < len(full.data) and smaller.frames == 8
    with pytest.raises(VideoTooLarge):
        encode_frames(noise, 4, max_bytes=1000)


def test_a_picture_is_the_first_frame_of_the_image_to_video_checkpoint_s_clip(
        k5: Kandinsky5Engine, tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """"Make it move": the picture fitted to the bucket, I2V Lite's own recipe, plain diffusers' frames.
    The recipe is the checkpoint's (50 guided steps) with its steps cut to 3 here, on both sides: a
    recipe the engine did not read from the checkpoint would not match, and the run costs 6 DiT calls a
    side instead of 100."""
    assert (IMAGE_TO_VIDEO.steps, IMAGE_TO_VIDEO.guidance) == (50, 5.0)  # I2V Lite's model card
    checkpoint = dataclasses.replace(IMAGE_TO_VIDEO, steps=3)
    monkeypatch.setattr(kandinsky5, "IMAGE_TO_VIDEO", checkpoint)
    picture = Image.new("RGB", (600, 400), (200, 80, 40))
    spec = JobSpec(model=Family.KANDINSKY5, mode=Mode.IMAGE2VIDEO, inputs=("a",), width=SIZE[0],
                   height=SIZE[1], aspect="16:9", seed=9, seconds=5)
    seen: list[tuple[str, int, int]] = []
    out = k5.generate(spec, [picture], on_progress=lambda *event: seen.append(event))
    assert out.video is not None and out.video.frames == IMAGE_TO_VIDEO.frames(FPS)
    assert seen[-1] == (VIDEO_STAGE, 3, 3)
    pipe = Kandinsky5I2VPipeline.from_pretrained(tiny_bundle / IMAGE_TO_VIDEO.folder, dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    plain = pipe(image=fit_to_size(picture, *SIZE), prompt=MOTION_PROMPT, height=SIZE[1], width=SIZE[0],
                 num_frames=IMAGE_TO_VIDEO.frames(FPS), num_inference_steps=checkpoint.steps,
                 guidance_scale=checkpoint.guidance, output_type="np", max_sequence_length=512,
                 generator=torch.Generator("cpu").manual_seed(9))
    assert np.isfinite(plain.frames[0]).all()  # 17 frames at least: fewer make the pipeline's NaN
    clip = np.clip(np.rint(np.asarray(plain.frames[0]) * 255.0), 0, 255).astype(np.uint8)
    left, top, right, bottom = crop_box(clip.shape[2], clip.shape[1], *spec.output_size(even=True))
    assert out.video.frame_hashes == [hashlib.sha256(np.ascontiguousarray(f).tobytes()).hexdigest()
                                      for f in clip[:, top:bottom, left:right]]
    with pytest.raises(ValueError, match="5 seconds long, not 10"):
        JobSpec(**{**spec.model_dump(), "seconds": 10})


def test_the_cli_writes_a_video_and_refuses_a_length_there_is_none_of(
        tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KANDINSKY_K5_VIDEO_FPS", str(FPS))
    out = tmp_path / "cat.mp4"
    common = ("--model", "kandinsky5", "--mode", "video", "--prompt", "a cat dancing", "--aspect", "16:9",
              "--long-side", "512", "--model-dir", str(tiny_bundle), "--device", "cpu", "--dtype", "float32")
    done = run_cli(*common, "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    info = probe(out.read_bytes())
    assert (info.codec, info.width, info.height, info.frames) == ("h264", 512, 288, 5)
    refused = run_cli(*common, "--seconds", "7", "--out", str(tmp_path / "no.mp4"))
    assert refused.returncode != 0 and "5 or 10 seconds long, not 7" in refused.stderr
    assert not (tmp_path / "no.mp4").exists()


def test_the_status_gets_a_picture_of_the_first_frame_while_the_steps_run(k5: Kandinsky5Engine) -> None:
    shown: list[tuple[int, np.ndarray]] = []
    k5.generate(video_spec(seed=4), preview_every=4,
                on_preview=lambda _stage, step, _total, render: shown.append((step, render())))
    steps = video_checkpoint(VideoKind.DISTILLED, 5).steps
    assert [step for step, _ in shown] == list(range(4, steps, 4))  # never at the last: the video follows
    for _, pixels in shown:  # one pixel per latent cell of the bucket (8× smaller each side)
        assert pixels.dtype == np.uint8 and pixels.shape == (SIZE[1] // 8, SIZE[0] // 8, 3)
    assert not np.array_equal(shown[0][1], shown[-1][1])  # the frame forms as the steps go


def test_an_attention_backend_reaches_every_dit(tiny_bundle: Path) -> None:
    engine = Engine(settings(tiny_bundle, attention_backend="_native_math"), families=[Family.KANDINSKY5])
    part = engine[Family.KANDINSKY5]
    assert isinstance(part, Kandinsky5Engine)
    for pipe in (part.video_pipeline(5), part.image_to_video_pipeline()):
        backends = {m.processor._attention_backend.value for m in pipe.transformer.modules()
                    if hasattr(m, "processor") and hasattr(m.processor, "_attention_backend")}
        assert backends == {"_native_math"}, backends
