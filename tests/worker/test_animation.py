"""Animation on the tiny bundle, on the CPU: the MP4, its frames, seeds, the exact warp, progress and
cancelling between frames; and the warp, colour match and encoder on their own. Eight frames at
512×256, two steps (a strength of 0.5 leaves one img2img step a frame)."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pytest
import torch

from contract.animation import FRAME_STAGE, Animation
from contract.spec import JobSpec, Mode
from worker.engine import Engine, GenerationOutput, JobCancelled
from worker.engine.animation.color import ColorReference
from worker.engine.animation.encode import EncodedVideo, Mp4Writer, VideoTooLarge, decode_frames, probe
from worker.engine.animation.warp import Motion, warp

WIDTH, HEIGHT = 512, 256
FRAMES, FPS = 8, 8
STEPS = 2
TWO_PROMPTS = "0: a quiet forest | 0.5: the forest on fire"


def animate_spec(seed: int = 7, prompt: str = TWO_PROMPTS, **animation: Any) -> JobSpec:
    return JobSpec(mode=Mode.ANIMATE, prompt=prompt, width=WIDTH, height=HEIGHT, steps=STEPS,
                   prior_steps=STEPS, seed=seed, animation=Animation(frames=FRAMES, fps=FPS, **animation))


MOVING = {"zoom": "0:(1.05), 7:(1.0)", "angle": "0:(2)", "strength": "0:(0.5)", "cadence": 2}
"""A zoom easing out while turning; repainted at frames 2, 4, 6 and 7, blended in between."""
STILL = {"zoom": "0:(1)", "strength": "0:(0)"}
"""Nothing moves and nothing is repainted: every frame must be the first."""


class Runs:
    """Each animation generated once per module, with its progress events."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._cache: dict[str, tuple[GenerationOutput, list[tuple[str, int, int]]]] = {}

    def get(self, spec: JobSpec) -> tuple[GenerationOutput, list[tuple[str, int, int]]]:
        key = spec.model_dump_json(exclude={"job_id", "created_at"})
        if key not in self._cache:
            events: list[tuple[str, int, int]] = []
            out = self.engine.generate(spec, on_progress=lambda *event: events.append(event))
            self._cache[key] = (out, events)
        return self._cache[key]

    def video(self, spec: JobSpec) -> EncodedVideo:
        video = self.get(spec)[0].video
        assert video is not None
        return video


@pytest.fixture(scope="module")
def runs(engine: Engine) -> Runs:
    return Runs(engine)


def test_an_8_frame_animation_is_an_mp4_with_its_frames_size_and_rate(runs: Runs) -> None:
    out, _ = runs.get(animate_spec(**MOVING))
    assert out.images == [] and out.video is not None
    info = probe(out.video.data)
    assert (info.codec, info.pix_fmt, info.has_audio) == ("h264", "yuv420p", False)
    assert (info.width, info.height, info.fps, info.frames) == (WIDTH, HEIGHT, float(FPS), FRAMES)
    assert out.video.frames == FRAMES == len(out.video.frame_hashes)
    assert len(set(out.video.frame_hashes)) == FRAMES, "a moving camera makes a new picture every frame"
    assert out.video.data[4:8] == b"ftyp"
    # Where the time went: the stages the bench reports.
    assert {"prior", "decoder", "img2img", "movq", "warp", "color", "mp4", "total"} <= set(out.timings)
    assert out.seeds == [7]


def test_the_same_seed_gives_the_same_frames(runs: Runs, engine: Engine) -> None:
    first = runs.video(animate_spec(**MOVING))
    again = engine.generate(animate_spec(**MOVING).model_copy(update={"job_id": "again"})).video
    assert again is not None and again.frame_hashes == first.frame_hashes
    other = runs.video(animate_spec(seed=8, **STILL))
    assert other.frame_hashes[0] != runs.video(animate_spec(seed=7, **STILL)).frame_hashes[0]


def test_zoom_1_and_strength_0_keep_every_frame_equal_to_the_first(runs: Runs) -> None:
    video = runs.video(animate_spec(**STILL))
    assert video.frames == FRAMES and len(set(video.frame_hashes)) == 1
    decoded = decode_frames(video.data)
    assert len(decoded) == FRAMES
    # H.264 is lossy: the decoder gives the same picture back, to within its quantisation.
    assert all(np.abs(frame.astype(np.int16) - decoded[0]).mean() < 1.0 for frame in decoded)


def test_frame_0_is_the_text_to_image_picture_of_the_prompt(runs: Runs, engine: Engine) -> None:
    video = runs.video(animate_spec(prompt="a quiet forest", **STILL))
    still = engine.generate(JobSpec(mode=Mode.TEXT2IMAGE, prompt="a quiet forest", width=WIDTH, height=HEIGHT,
                                    steps=STEPS, prior_steps=STEPS, seed=7))
    pixels = np.ascontiguousarray(np.asarray(still.images[0], dtype=np.uint8))
    assert hashlib.sha256(pixels.tobytes()).hexdigest() == video.frame_hashes[0]


def test_progress_counts_frames_after_the_prior_of_each_prompt(runs: Runs) -> None:
    _, events = runs.get(animate_spec(**MOVING))
    prior = [e for e in events if e[0] == "prior"]
    frames = [e for e in events if e[0] == FRAME_STAGE]
    assert prior == [("prior", i, STEPS) for i in range(1, STEPS + 1)] * 2  # one prior run per prompt
    assert frames == [(FRAME_STAGE, i, FRAMES) for i in range(1, FRAMES + 1)]
    assert events == prior + frames


def test_a_cancel_stops_between_frames(engine: Engine) -> None:
    seen: list[tuple[str, int, int]] = []

    def cancel_after_three() -> bool:
        return sum(1 for stage, _, _ in seen if stage == FRAME_STAGE) >= 3

    # The flag is seen when the next frame is done: frames 1-3 were reported, the 4th never is.
    with pytest.raises(JobCancelled, match="cancelled during frame at step 4/8"):
        engine.generate(animate_spec(**STILL), on_progress=lambda *event: seen.append(event),
                        should_cancel=cancel_after_three)
    assert [e for e in seen if e[0] == FRAME_STAGE] == [(FRAME_STAGE, i, FRAMES) for i in (1, 2, 3)]


def test_a_3d_flight_uses_the_depth_model(runs: Runs) -> None:
    out, _ = runs.get(animate_spec(translation_z="0:(40)", strength="0:(0)", cadence=4))
    assert out.video is not None and out.video.frames == FRAMES
    assert out.timings["depth"] > 0
    assert len(set(out.video.frame_hashes)) == FRAMES


# --- the pieces on their own ----------------------------------------------------------------------


def gradient(height: int = 48, width: int = 64) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    return torch.stack((xs, ys, (xs + ys) / 2)).unsqueeze(0)


def test_a_still_move_returns_the_frame_itself() -> None:
    frame = gradient()
    assert warp(frame, Motion()) is frame
    assert warp(frame, Motion(zoom=1.0, translation_z=0.0), depth=None) is frame


def test_a_pan_moves_the_picture_by_whole_pixels() -> None:
    frame = gradient()
    moved = warp(frame, Motion(translation_x=4.0))  # the camera moves right: the picture slides left
    assert torch.allclose(moved[..., :, :-4], frame[..., :, 4:], atol=1e-5)
    down = warp(frame, Motion(translation_y=3.0))
    assert torch.allclose(down[..., :-3, :], frame[..., 3:, :], atol=1e-5)


def test_zoom_and_rotation_turn_about_the_centre() -> None:
    frame = gradient(64, 64)
    zoomed = warp(frame, Motion(zoom=2.0))
    # Zoomed in ×2: the middle half now fills the frame; the centre stays where it was.
    assert torch.allclose(zoomed[..., 31:33, 31:33], frame[..., 31:33, 31:33], atol=0.02)
    assert zoomed[0, 0, 32, 0] == pytest.approx(frame[0, 0, 32, 16].item(), abs=0.02)
    turned = warp(warp(frame, Motion(angle=20.0)), Motion(angle=-20.0))
    assert torch.allclose(turned[..., 16:48, 16:48], frame[..., 16:48, 16:48], atol=0.02)


def test_a_flight_grows_near_things_more_and_needs_the_depth() -> None:
    frame = gradient(64, 64)
    with pytest.raises(ValueError, match="needs the depth"):
        warp(frame, Motion(translation_z=10.0))
    near = torch.ones(1, 1, 64, 64)
    assert torch.allclose(warp(frame, Motion(translation_z=100.0), near), warp(frame, Motion(zoom=1.1)),
                          atol=1e-5)
    far = torch.zeros(1, 1, 64, 64)
    assert torch.allclose(warp(frame, Motion(translation_z=100.0), far), warp(frame, Motion(zoom=1.02)),
                          atol=1e-5)
    with pytest.raises(ValueError, match="1×3×H×W"):
        warp(frame[0], Motion(zoom=1.1))


def test_the_colour_match_keeps_the_first_frame_s_palette() -> None:
    rng = np.random.default_rng(0)
    first = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    reference = ColorReference(first)
    assert np.array_equal(reference.match(first), first)
    drifted = (first * 0.6 + 60).astype(np.uint8)
    matched = reference.match(drifted)
    assert np.abs(matched.mean(axis=(0, 1)) - first.mean(axis=(0, 1))).max() < 2.0
    assert np.abs(drifted.mean(axis=(0, 1)) - first.mean(axis=(0, 1))).max() > 5.0
    with pytest.raises(ValueError, match="H×W×3 uint8"):
        reference.match(first.astype(np.float32))


def test_the_writer_makes_even_sides_and_refuses_what_telegram_would() -> None:
    writer = Mp4Writer(33, 21, 12)
    for value in (0, 128):
        writer.add(np.full((21, 33, 3), value, dtype=np.uint8))
    video = writer.close()
    info = probe(video.data)
    assert (info.width, info.height, info.frames, info.fps) == (32, 20, 2, 12.0)
    assert video.frames == 2 and (video.width, video.height) == (32, 20)
    with pytest.raises(RuntimeError, match="already closed"):
        writer.add(np.zeros((21, 33, 3), dtype=np.uint8))
    small = Mp4Writer(64, 64, 12, max_bytes=100)
    small.add(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    with pytest.raises(VideoTooLarge, match="over the 100 bytes"):
        small.close()
    with pytest.raises(ValueError, match="is 32×32, the video 64×64"):
        Mp4Writer(64, 64, 12).add(np.zeros((32, 32, 3), dtype=np.uint8))
