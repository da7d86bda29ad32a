"""Animation jobs in the contract: keyframe schedules, prompts by second, camera presets, the spec."""

from __future__ import annotations

from typing import Any

import pytest

from contract.animation import (
    ANIMATION_FPS,
    CAMERA_PRESETS,
    FRAME_TIMEOUT_S,
    MAX_FRAMES,
    MAX_KEYFRAMES,
    MAX_SCENES,
    MAX_SCHEDULE_CHARS,
    PARAMETERS,
    Animation,
    Camera,
    Scene,
    ScheduleError,
    job_timeout_s,
    max_job_timeout_s,
    parse_prompts,
    parse_schedule,
    preset,
    quota_weight,
    scene_weights,
)
from contract.modes import Mode, ModeDescription, describe
from contract.spec import JobSpec, SpecError, Style

# --- schedules: what reads -----------------------------------------------------------------------


@pytest.mark.parametrize(("text", "keyframes"), [
    ("0:(1.02), 24:(1.0)", ((0, 1.02), (24, 1.0))),
    ("0:(1.02)", ((0, 1.02),)),
    ("0: 1.02, 24: 1", ((0, 1.02), (24, 1.0))),  # parentheses may be left out
    ("  0 : ( 1.02 ) ,24:(1)  ", ((0, 1.02), (24, 1.0))),  # spaces anywhere
    ("24:(1), 0:(1.5)", ((0, 1.5), (24, 1.0))),  # any order, sorted
    ("0:(1e0), 3:(+1.25), 5:(1.)", ((0, 1.0), (3, 1.25), (5, 1.0))),
    ("10:(1.1)", ((10, 1.1),)),  # no keyframe at 0: the first value holds before it
])
def test_a_zoom_schedule_reads(text: str, keyframes: tuple[tuple[int, float], ...]) -> None:
    assert parse_schedule(text, "zoom").keyframes == keyframes


def test_signed_and_bare_decimal_values_read_where_the_range_allows() -> None:
    assert parse_schedule("0:(-1.5), 12:(.5)", "angle").keyframes == ((0, -1.5), (12, 0.5))
    assert parse_schedule("0:(0), 6:(1)", "strength").keyframes == ((0, 0.0), (6, 1.0))
    assert parse_schedule("0:(-100), 1:(100)", "translation_x").keyframes == ((0, -100.0), (1, 100.0))


def test_values_are_linear_between_keyframes_and_held_outside() -> None:
    schedule = parse_schedule("4:(1.0), 8:(2.0), 12:(1.0)", "zoom")
    assert schedule.values(15) == [1.0] * 5 + [1.25, 1.5, 1.75, 2.0, 1.75, 1.5, 1.25, 1.0, 1.0, 1.0]
    assert schedule.constant is None and schedule.last_keyframe == 12
    assert parse_schedule("0:(1), 9:(1)", "zoom").constant == 1.0


def test_the_canonical_text_is_short_and_reads_back_the_same() -> None:
    schedule = parse_schedule(" 24:(1.000), 0:( 1.020 )", "zoom")
    assert str(schedule) == "0:(1.02), 24:(1)"
    assert parse_schedule(str(schedule), "zoom") == schedule
    assert str(parse_schedule("0:(-0.0)", "angle")) == "0:(0)"


# --- schedules: what is refused, and what the error says -----------------------------------------


@pytest.mark.parametrize(("text", "says"), [
    ("", "is empty; write keyframes like"),
    ("   ", "is empty"),
    ("1.02", "is not FRAME:(VALUE)"),
    ("0:(1.02), 1.0", "'1.0' is not FRAME:(VALUE)"),
    ("1.5:(1)", "the frame '1.5' must be a whole number"),
    ("-1:(1)", "the frame '-1' must be a whole number"),
    (":(1)", "the frame '' must be a whole number"),
    ("a:(1)", "the frame 'a' must be a whole number"),
    ("0:()", "has no value"),
    ("0:", "has no value"),
    ("0:(1+0.002*t)", "math expressions are not supported"),
    ("0:(abc)", "'abc' is not a number"),
    ("0:(nan)", "'nan' is not a number"),
    ("0:(inf)", "'inf' is not a number"),
    ("0:(1e999)", "not a finite number"),
    ("0:(3)", "3 at frame 0 is outside 0.5…2"),
    ("0:(0.1)", "outside 0.5…2"),
    ("0:(1), 0:(1.1)", "frame 0 has two keyframes"),
    ("0:(1.02", "a '(' is never closed"),
    ("0:1.02)", "a ')' without its '('"),
    ("0:((1))", "stray parentheses"),
    ("0:(1) 5", "separate keyframes with commas"),
    ("0:(1) 5:(2)", "separate keyframes with commas"),
    ("0:(1),", "an empty keyframe"),
    ("0:(1),,5:(1)", "an empty keyframe"),
])
def test_a_bad_zoom_schedule_says_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(ScheduleError, match="schedule zoom") as err:
        parse_schedule(text, "zoom")
    assert says in str(err.value)


def test_ranges_are_each_parameter_s() -> None:
    for name, parameter in PARAMETERS.items():
        parse_schedule(f"0:({parameter.low}), 1:({parameter.high})", name)
        with pytest.raises(ScheduleError, match=rf"schedule {name}: .* outside"):
            parse_schedule(f"0:({parameter.high + 1})", name)
        with pytest.raises(ScheduleError, match="outside"):
            parse_schedule(f"0:({parameter.low - 1})", name)


def test_sizes_and_names_are_bounded() -> None:
    many = ", ".join(f"{i}:(1)" for i in range(MAX_KEYFRAMES + 1))
    with pytest.raises(ScheduleError, match=f"at most {MAX_KEYFRAMES}"):
        parse_schedule(many, "zoom")
    with pytest.raises(ScheduleError, match=f"at most {MAX_SCHEDULE_CHARS}"):
        parse_schedule("0:(1)" + " " * MAX_SCHEDULE_CHARS, "zoom")
    with pytest.raises(ScheduleError, match="unknown schedule 'speed'"):
        parse_schedule("0:(1)", "speed")
    with pytest.raises(ScheduleError, match="must be text"):
        parse_schedule(1.02, "zoom")  # type: ignore[arg-type]


# --- prompts by second ----------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "scenes"), [
    ("a quiet forest", ((0.0, "a quiet forest"),)),
    ("  a clock at 10:30  ", ((0.0, "a clock at 10:30"),)),  # a time inside a prompt is the prompt's
    ("0: a quiet forest | 3: the forest on fire", ((0.0, "a quiet forest"), (3.0, "the forest on fire"))),
    ("0:a|1.5:b|2: c", ((0.0, "a"), (1.5, "b"), (2.0, "c"))),
    ("0： лес | 2： пожар", ((0.0, "лес"), (2.0, "пожар"))),  # the full-width colon of some keyboards
])
def test_prompts_read(text: str, scenes: tuple[tuple[float, str], ...]) -> None:
    assert parse_prompts(text) == tuple(Scene(second, prompt) for second, prompt in scenes)


@pytest.mark.parametrize(("text", "code", "says"), [
    ("", "no-prompt", "needs a prompt"),
    ("   ", "no-prompt", "needs a prompt"),
    ("0: a | | 3: b", "empty-part", "an empty prompt between two '|'"),
    ("0: a |", "empty-part", "an empty prompt"),
    ("0: a | the fire", "no-second", "'the fire' has no second"),
    ("a forest | 3: fire", "no-second", "'a forest' has no second"),
    ("0: a | 3:", "empty-prompt", "the prompt at 3 s is empty"),
    ("0: a | 3: b | 2: c", "order", "the prompt at 2 s comes after the one at 3 s"),
    ("0: a | 0: b", "order", "comes after"),
    ("1: a | 3: b", "first-not-zero", "the first prompt starts at 1 s; it must start at 0"),
    ("2: a", "first-not-zero", "must start at 0"),
    (" | ".join(f"{i}: p" for i in range(MAX_SCENES + 1)), "too-many", f"at most {MAX_SCENES}"),
])
def test_bad_prompts_say_what_to_write(text: str, code: str, says: str) -> None:
    with pytest.raises(ScheduleError) as err:
        parse_prompts(text)
    assert says in str(err.value) and err.value.code == code


def test_prompts_blend_into_the_next_over_the_second_before_it() -> None:
    scenes = parse_prompts("0: a | 3: b | 3.5: c")
    fps = 12
    assert scene_weights(scenes, 0, fps) == [(0, 1.0)]
    assert scene_weights(scenes, 24, fps) == [(0, 1.0)]  # 2.0 s: the blend starts
    assert scene_weights(scenes, 30, fps) == [(0, 0.5), (1, 0.5)]  # 2.5 s: halfway
    assert scene_weights(scenes, 36, fps) == [(1, 1.0)]  # 3.0 s: b alone
    # b lasts half a second: it blends into c over its last quarter second.
    assert scene_weights(scenes, 39, fps) == [(1, 1.0)]
    weights = scene_weights(scenes, 40, fps)
    assert [i for i, _ in weights] == [1, 2] and sum(w for _, w in weights) == pytest.approx(1.0)
    assert scene_weights(scenes, 47, fps) == [(2, 1.0)]


# --- the job's animation ---------------------------------------------------------------------------


@pytest.mark.parametrize("camera", [c for c in Camera if c is not Camera.CUSTOM])
def test_every_camera_button_makes_a_valid_animation_that_moves(camera: Camera) -> None:
    animation = Animation.for_camera(camera, seconds=4)
    assert animation.frames == 4 * ANIMATION_FPS and animation.fps == ANIMATION_FPS
    assert animation.camera is camera
    moved = {name for name in PARAMETERS if name != "strength"
             and animation.schedule(name).constant != PARAMETERS[name].still}
    assert moved == set(CAMERA_PRESETS[camera])
    assert animation.uses_depth is (camera is Camera.FLIGHT_3D)
    assert set(preset(camera)) == set(PARAMETERS) - {"strength"}


def test_an_animation_is_bounded_in_frames_and_seconds() -> None:
    Animation(frames=MAX_FRAMES)
    with pytest.raises(ValueError, match="less than or equal"):
        Animation(frames=MAX_FRAMES + 1)
    with pytest.raises(ValueError, match="greater than or equal"):
        Animation(frames=1)
    with pytest.raises(ValueError, match=r"last 12\.0 s; an animation lasts at most 8 s"):
        Animation(frames=96, fps=8)
    with pytest.raises(ValueError, match=r"keyframe 9 is past the last frame \(7\) of 8 frames"):
        Animation(frames=8, fps=8, zoom="0:(1), 9:(1.1)")
    with pytest.raises(ValueError, match=r"schedule strength: .* outside"):
        Animation(strength="0:(1.5)")
    with pytest.raises(ValueError, match="Extra inputs"):
        Animation.model_validate({"noise": "0:(0.1)"})


def test_cadence_renders_every_kth_frame_and_the_last() -> None:
    assert Animation(frames=8, fps=8).rendered_frames() == 8
    assert Animation(frames=8, fps=8, cadence=3).rendered_frames() == 4  # 0, 3, 6 and 7
    assert Animation(frames=9, fps=8, cadence=4).rendered_frames() == 3  # 0, 4, 8


def _animate(**fields: Any) -> dict[str, Any]:
    return {"mode": "animate", "prompt": "a quiet forest", "width": 512, "height": 512,
            "animation": {"frames": 24, "fps": 12}, **fields}


def test_the_spec_carries_the_animation_and_reads_back_the_same() -> None:
    spec = JobSpec.parse(_animate(prompt="0: a quiet forest | 1.5: the forest on fire", style="anime"))
    assert spec.frames == 24 and spec.animation is not None
    assert JobSpec.from_json(spec.to_json()) == spec
    suffix = ", anime style, cel shading, vibrant colors, studio ghibli, detailed illustration"
    assert spec.scenes() == (Scene(0.0, "a quiet forest" + suffix), Scene(1.5, "the forest on fire" + suffix))
    assert spec.style is Style.ANIME
    assert JobSpec.parse({"mode": "text2image", "prompt": "x", "width": 512, "height": 512}).frames == 0


@pytest.mark.parametrize(("fields", "says"), [
    ({"animation": None}, "needs an animation"),
    ({"prompt": "0: a | 2: b"}, "the prompt at 2 s starts after the 2 s animation ends"),
    ({"prompt": "0: a | b"}, "has no second"),
    ({"prompt": " "}, "needs a prompt"),
    ({"animation": {"frames": 24, "fps": 12, "zoom": "0:(9)"}}, "schedule zoom"),
    ({"animation": {"frames": 24, "fps": 12, "zoom": "0:(1+t)"}}, "math expressions are not supported"),
    ({"inputs": ["blob-1"]}, "needs 0 input image"),
    ({"num_images": 2}, "an animation is one video: num_images must be 1"),
])
def test_a_bad_animate_spec_is_refused_with_the_reason(fields: dict[str, Any], says: str) -> None:
    with pytest.raises(SpecError, match="invalid job spec") as err:
        JobSpec.parse(_animate(**fields))
    assert says in str(err.value)


def test_other_modes_take_no_animation() -> None:
    with pytest.raises(SpecError, match="mode text2image takes no animation"):
        JobSpec.parse({"mode": "text2image", "prompt": "x", "width": 512, "height": 512,
                       "animation": {"frames": 24}})


def test_the_animate_mode_is_a_prompt_mode_with_a_camera_and_a_length() -> None:
    d = describe(Mode.ANIMATE)
    assert d.command == "animate" and d.menu and d.animation and d.images == 0 and d.prompt
    assert d.state_name == "Animate:prompt"
    with pytest.raises(ValueError, match="an animation starts from a prompt, without photos"):
        ModeDescription(mode=Mode.ANIMATE, images=1, prompt=True, animation=True)


def test_timeouts_and_quota_weights_scale_with_frames() -> None:
    assert job_timeout_s(600, 0) == 600
    assert job_timeout_s(600, 48) == 600 + 48 * FRAME_TIMEOUT_S
    assert max_job_timeout_s(600) == job_timeout_s(600, MAX_FRAMES)
    assert quota_weight(0, 12) == 1  # a still image is one request
    assert quota_weight(48, 12) == 4
    assert quota_weight(49, 12) == 5  # every started block of frames counts
    assert quota_weight(5, 12) == 1
    assert quota_weight(48, 0) == 48  # a nonsense setting cannot divide by zero
