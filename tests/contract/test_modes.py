"""Every mode is described once, and the description is honoured everywhere it is read.

The spec validates exactly what the description asks for, the engine has a function for every
mode its family serves, and every mode the bot offers has its texts in both locales. The bot's
derived routers, menu and commands are checked in tests/bot/test_modes.py.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from bot.ui.i18n import I18n
from contract.families import Family
from contract.modes import (
    ANIMATION_BUTTONS,
    IMAGE_BUTTONS,
    KANDINSKY3,
    KANDINSKY22,
    MODES,
    SDXL,
    STICKER_BUTTONS,
    STICKER_SUFFIX,
    Button,
    Mode,
    ModeDescription,
    Output,
    bot_modes,
    describe,
    index_modes,
    menu_modes,
    mode_commands,
    plain_text_mode,
    served_by,
)
from contract.spec import JobSpec, SpecError, bucket_size, images_needed, prompt_needed
from worker.engine import EngineSettings
from worker.engine.families import ENGINE_CLASSES, Kandinsky22Engine

IDS = [d.mode.value for d in MODES]


def valid_fields(d: ModeDescription) -> dict[str, Any]:
    """The smallest job of mode ``d`` that its description allows."""
    fields: dict[str, Any] = {"mode": d.mode.value, "width": 512, "height": 512,
                              "inputs": [f"blob-{i}" for i in range(d.images)]}
    if d.prompt:
        fields["prompt"] = "a lighthouse"
    if d.weights:
        fields["weights"] = [0.3, 0.7]
    if d.mask:
        fields["mask"] = "blob-mask"
    if d.animation:
        fields["animation"] = {"frames": 8, "fps": 8}
    if d.region:
        fields["region"] = "the sky"
    if d.zoom:
        fields["zoom"] = 2.0
    if d.pan:
        fields["pan"] = "left"
    if d.video:
        fields["seconds"] = 5
    if d.own_family:
        fields["model"] = next(iter(d.families)).value
    return fields


def test_every_mode_is_described_exactly_once() -> None:
    assert [d.mode for d in MODES] == list(Mode)
    assert all(describe(d.mode) is d for d in MODES)
    with pytest.raises(ValueError, match="described twice"):
        index_modes((*MODES, MODES[0]))
    with pytest.raises(ValueError, match="without a description"):
        index_modes(MODES[1:])
    with pytest.raises(ValueError, match="share a command"):
        index_modes((*(d for d in MODES if d.mode is not Mode.OUTPAINT),
                     ModeDescription(mode=Mode.OUTPAINT, images=1, prompt=True, command="mix")))


def test_a_description_refuses_what_cannot_work() -> None:
    with pytest.raises(ValueError, match="needs a command"):
        ModeDescription(mode=Mode.INPAINT, images=1, prompt=True, mask=True, menu=True)
    with pytest.raises(ValueError, match="prompt-only"):
        ModeDescription(mode=Mode.MIX, images=2, prompt=False, command="mix", plain_text=True)
    with pytest.raises(ValueError, match="no model family"):
        ModeDescription(mode=Mode.MIX, images=2, prompt=False, families=frozenset())
    with pytest.raises(ValueError, match="output is an animation"):
        ModeDescription(mode=Mode.ANIMATE, images=0, prompt=True, animation=True)
    with pytest.raises(ValueError, match="output is an animation"):
        ModeDescription(mode=Mode.TEXT2IMAGE, images=0, prompt=True, output=Output.ANIMATION)


def test_what_a_result_is_and_carries_is_its_description_s() -> None:
    """Delivery, the keyboards, the worker's encoder and the quota read these, never the mode's name."""
    outputs = {d.mode: d.output for d in MODES}
    assert outputs[Mode.STICKER] is Output.STICKER and outputs[Mode.ANIMATE] is Output.ANIMATION
    assert outputs[Mode.VIDEO] is outputs[Mode.IMAGE2VIDEO] is Output.VIDEO
    pictures = {o for m, o in outputs.items() if not o.motion and m is not Mode.STICKER}
    assert pictures == {Output.IMAGE}
    assert describe(Mode.STICKER).result_buttons == STICKER_BUTTONS
    assert Button.EDIT not in describe(Mode.STICKER).result_buttons  # a cut-out is not edited
    assert describe(Mode.ANIMATE).result_buttons == ANIMATION_BUTTONS
    assert all(describe(m).result_buttons == IMAGE_BUTTONS for m, o in outputs.items() if o is Output.IMAGE)
    custom = ModeDescription(mode=Mode.OUTPAINT, images=1, prompt=True, buttons=(Button.FILE,))
    assert custom.result_buttons == (Button.FILE,)
    assert describe(Mode.STICKER).aspect == "1:1" and describe(Mode.TEXT2IMAGE).aspect is None


def test_quota_weight_and_job_timeout_follow_the_description() -> None:
    animate, still = describe(Mode.ANIMATE), describe(Mode.TEXT2IMAGE)
    assert animate.quota_weight(48, 12) == 4 and animate.quota_weight(49, 12) == 5
    assert still.quota_weight(48, 12) == 1  # frames mean nothing to a still
    assert animate.job_timeout_s(600, 48) > animate.job_timeout_s(600, 12) > 600
    assert still.job_timeout_s(600, 48) == 600
    video = describe(Mode.VIDEO)
    assert video.quota_weight(0, 12, seconds=10) == 10 and video.quota_weight(0, 12, seconds=5) == 5
    assert video.job_timeout_s(600, 0, seconds=10) > video.job_timeout_s(600, 0, seconds=5) > 600


def test_a_video_is_one_clip_of_a_length_the_checkpoints_make_at_their_tier() -> None:
    w, h = bucket_size("16:9", 768)
    base = {"mode": Mode.VIDEO, "model": Family.KANDINSKY5, "prompt": "a cat", "width": w, "height": h,
            "aspect": "16:9"}
    assert JobSpec(**base, seconds=10).quota_weight(12) == 10
    with pytest.raises(ValueError, match="5 or 10 seconds long, not 7"):
        JobSpec(**base, seconds=7)
    with pytest.raises(ValueError, match="one video"):
        JobSpec(**base, seconds=5, num_images=2)
    with pytest.raises(ValueError, match="takes no length"):
        JobSpec(mode=Mode.TEXT2IMAGE, prompt="a cat", seconds=5)
    big = bucket_size("16:9", 1024)
    with pytest.raises(ValueError, match="768"):
        JobSpec(**{**base, "width": big[0], "height": big[1]}, seconds=5)
    with pytest.raises(ValueError, match=r"not served by Kandinsky 2\.2"):
        JobSpec(**{**base, "model": Family.KANDINSKY22}, seconds=5)
    with pytest.raises(ValueError, match="only a mode of one family"):
        ModeDescription(mode=Mode.TEXT2IMAGE, images=0, prompt=True, own_family=True,
                        families=frozenset({Family.KANDINSKY22, Family.SDXL}))


def test_what_the_bot_offers_is_what_it_offered_before() -> None:
    """What the bot offers, pinned: the commands and the menu, in order (edits came last)."""
    assert mode_commands() == ("imagine", "mix", "blend", "variations", "sticker", "depth", "edit",
                               "animate", "video")
    assert [d.mode for d in menu_modes()] == [Mode.TEXT2IMAGE, Mode.MIX, Mode.BLEND, Mode.VARIATIONS,
                                              Mode.STICKER, Mode.DEPTH, Mode.EDIT, Mode.ANIMATE, Mode.VIDEO]
    text = plain_text_mode()
    assert text is not None and text.mode is Mode.TEXT2IMAGE
    # No command, no button, no dialog: inpaint (the Mini App's mask), outpaint (CLI), zoom out and
    # pan (a result's buttons).
    # make it move (a result's button).
    assert {d.mode for d in MODES if not d.in_bot} == {Mode.INPAINT, Mode.OUTPAINT, Mode.ZOOM_OUT, Mode.PAN,
                                                       Mode.IMAGE2VIDEO}
    assert not any(d.menu for d in MODES if not d.in_bot)
    every = {Mode.TEXT2IMAGE, Mode.BLEND, Mode.VARIATIONS, Mode.STICKER}
    assert {d.mode for d in MODES if d.families == frozenset({KANDINSKY22, KANDINSKY3, SDXL,
                                                              Family.KANDINSKY5_IMAGE})} == every
    assert describe(Mode.INPAINT).families == frozenset({KANDINSKY22, SDXL})
    motion = {Mode.VIDEO, Mode.IMAGE2VIDEO}
    assert all(describe(m).families == frozenset({Family.KANDINSKY5}) and describe(m).own_family
               for m in motion)
    assert all(d.families == frozenset({KANDINSKY22}) for d in MODES
               if d.mode not in every | {Mode.INPAINT} | motion)


def test_state_names_are_the_ones_stored_dialogs_hold() -> None:
    """aiogram keeps a dialog's state name in Redis for a day: renaming one would strand dialogs."""
    assert {d.mode: d.state_name for d in bot_modes()} == {
        Mode.TEXT2IMAGE: "Imagine:prompt", Mode.STICKER: "Sticker:prompt", Mode.MIX: "Mix:collect",
        Mode.BLEND: "Blend:collect", Mode.VARIATIONS: "Variations:collect", Mode.DEPTH: "Depth:collect",
        Mode.EDIT: "Edit:collect", Mode.ANIMATE: "Animate:prompt", Mode.VIDEO: "Video:prompt",
    }


@pytest.mark.parametrize("d", MODES, ids=IDS)
def test_spec_takes_exactly_what_the_description_asks_for(d: ModeDescription) -> None:
    spec = JobSpec.parse(valid_fields(d))
    assert images_needed(d.mode) == d.images == len(spec.inputs) and prompt_needed(d.mode) is d.prompt
    wrong: list[dict[str, Any]] = [{"inputs": [f"blob-{i}" for i in range(d.images + 1)]},
                                   {"weights": [] if d.weights else [0.5, 0.5]},
                                   {"mask": None if d.mask else "blob-mask"},
                                   {"region": "" if d.region else "the sky"},
                                   {"zoom": 3.0 if d.zoom else 2.0},
                                   {"pan": None if d.pan else "left"}]
    wrong.append({"animation": None if d.animation else {"frames": 8, "fps": 8}})
    wrong.append({"seconds": 7 if d.video else 5})
    if d.prompt:
        wrong.append({"prompt": "  "})
    if d.strength:
        wrong.append({"steps": 3, "strength": 0.2})
    for change in wrong:
        with pytest.raises(SpecError):
            JobSpec.parse({**valid_fields(d), **change})
    if not d.prompt:
        assert JobSpec.parse({**valid_fields(d), "prompt": ""}).mode is d.mode
    if not d.strength:
        assert JobSpec.parse({**valid_fields(d), "steps": 3, "strength": 0.2}).mode is d.mode


@pytest.mark.parametrize("d", MODES, ids=IDS)
def test_the_prompt_suffix_is_the_description_s(d: ModeDescription) -> None:
    fields = {**valid_fields(d), "prompt": "a cat"}
    assert JobSpec.parse(fields).effective_prompt == "a cat" + d.prompt_suffix
    assert (d.prompt_suffix == STICKER_SUFFIX) is (d.mode is Mode.STICKER)


def test_each_family_engine_has_a_function_for_every_mode_of_its_family() -> None:
    assert {cls.family for cls in ENGINE_CLASSES} == set(Family)
    for cls in ENGINE_CLASSES:
        assert set(cls.recipes) == set(served_by(cls.family)), cls.family
        assert cls.recipe_gaps() == (set(), set())
        for mode, function in cls.recipes.items():
            assert getattr(cls, function.__name__) is function, mode
    recipes = Kandinsky22Engine.recipes
    assert set(recipes) == set(served_by(KANDINSKY22)) == set(Mode) - {Mode.VIDEO, Mode.IMAGE2VIDEO}
    # mix and blend are one recipe (the prior's interpolate); every other mode has its own.
    assert recipes[Mode.MIX] is recipes[Mode.BLEND]
    assert len({id(f) for f in recipes.values()}) == len(Mode) - 3


def test_a_family_engine_without_a_mode_of_its_family_is_refused() -> None:
    class Incomplete(Kandinsky22Engine):
        recipes: ClassVar[dict[Mode, Any]] = {}

    Incomplete.recipes = {m: f for m, f in Kandinsky22Engine.recipes.items() if m is not Mode.DEPTH}
    assert Incomplete.recipe_gaps() == ({Mode.DEPTH}, set())
    with pytest.raises(TypeError, match="no recipe for"):
        Incomplete(EngineSettings(device="cpu", preload=False))


@pytest.mark.parametrize("d", MODES, ids=IDS)
def test_every_mode_has_its_texts_in_both_locales(d: ModeDescription) -> None:
    i18n = I18n()
    assert d.name_key in d.text_keys
    if d.in_bot:
        assert {d.command_key, d.button_key} <= set(d.text_keys)
    for locale, bundle in i18n.bundles.items():
        missing = [key for key in d.text_keys if not bundle.has_message(key)]
        assert not missing, (locale, missing)
        if d.in_bot:
            assert f"/{d.command} " in i18n.get(locale, "help-text"), (locale, d.command)


def test_text_keys_follow_from_the_stem() -> None:
    assert describe(Mode.MIX).text_keys == ("mode-mix", "cmd-mix", "btn-mix", "mix-ask-photo",
                                            "mix-ask-next-photo")
    assert describe(Mode.TEXT2IMAGE).text_keys == ("mode-text2image", "cmd-imagine", "btn-imagine",
                                                   "imagine-ask-prompt")
    assert describe(Mode.ANIMATE).text_keys == ("mode-animate", "cmd-animate", "btn-animate",
                                                "animate-ask-prompt", "animate-ask-camera",
                                                "animate-ask-duration")
    assert describe(Mode.DEPTH).text_keys == ("mode-depth", "cmd-depth", "btn-depth", "depth-ask-photo",
                                              "depth-ask-photo-after-text", "depth-ask-text")
    assert describe(Mode.INPAINT).text_keys == ("mode-inpaint",)
