"""Settings parsing and the one place where settings become a job spec."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.config import BotMode, BotSettings
from bot.routers.image_modes import parse_weights
from bot.services.jobs import build_spec, normalize_weights
from bot.services.user_settings import UserSettings
from contract.spec import Mode, Priority, Style, bucket_size


def settings(**env: object) -> BotSettings:
    return BotSettings.model_validate({"BOT_TOKEN": "1:x", **env})


def test_env_values_parse() -> None:
    s = settings(ADMIN_IDS="[10, 20]", BOT_MODE="webhook", BOT_LONG_SIDE=512)
    assert s.admin_ids == {10, 20} and s.bot_mode is BotMode.WEBHOOK and s.long_side == 512
    assert settings(ADMIN_IDS="7; 8").admin_ids == {7, 8}
    assert "1:x" not in repr(s) and "1:x" not in str(s.model_dump())
    with pytest.raises(ValidationError):
        settings(BOT_LONG_SIDE=500)


def test_spec_from_settings() -> None:
    config = settings(ADMIN_IDS="5", BOT_LONG_SIDE=768, BOT_STEPS=7)
    user = UserSettings(style=Style.UHD, aspect="2:3", num_images=3, negative_prompt="blur", locale="ru")
    spec = build_spec(mode=Mode.TEXT2IMAGE, config=config, user_settings=user, user_id=5, chat_id=5,
                      locale="ru", prompt="a cat")
    assert (spec.width, spec.height) == bucket_size("2:3", 768) and spec.steps == 7
    assert spec.style is Style.UHD and spec.num_images == 3 and spec.negative_prompt == "blur"
    assert spec.priority is Priority.HIGH and spec.locale == "ru" and 0 <= spec.seed < 2**32
    sticker = build_spec(mode=Mode.STICKER, config=config, user_settings=user, user_id=6, chat_id=6,
                         locale="en", prompt="a cat", seed=42)
    assert sticker.width == sticker.height and sticker.priority is Priority.NORMAL and sticker.seed == 42


def test_weights() -> None:
    assert parse_weights("30/70") == 30 and parse_weights("2 8") == 20 and parse_weights("0.25:0.75") == 25
    assert parse_weights("a cat") is None and parse_weights("0/0") is None and parse_weights(None) is None
    assert normalize_weights(30) == (0.3, 0.7) and normalize_weights(150) == (1.0, 0.0)


def test_steps_are_keyed_by_family() -> None:
    """BOT_STEPS names each family's steps; a family left out gets its model card's, and a bare number
    (the setting before families) is the default family's."""
    from contract.families import Family, describe_family

    keyed = settings(BOT_STEPS='{"kandinsky3": 12, "sdxl": 30}')
    assert [keyed.steps_for(f) for f in Family] == [describe_family(Family.KANDINSKY22).default_steps, 12, 30,
                                                    16, 50]
    bare = settings(BOT_STEPS=9)
    assert [bare.steps_for(f) for f in Family] == [9, 25, 40, 16, 50]
    with pytest.raises(ValidationError):
        settings(BOT_STEPS='{"kandinsky3": 0}')
    with pytest.raises(ValidationError):
        settings(BOT_STEPS='{"dalle": 10}')


def test_tiers_and_video_lengths_are_refused_naming_the_choices() -> None:
    with pytest.raises(ValidationError, match=r"BOT_LONG_SIDE must be one of \(512, 768, 1024\)"):
        settings(BOT_LONG_SIDE=500)
    with pytest.raises(ValidationError, match=r"ANIMATION_LONG_SIDE must be one of"):
        settings(ANIMATION_LONG_SIDE=100)
    with pytest.raises(ValidationError, match=r"VIDEO_SECONDS must be one of \(5, 10\)"):
        settings(VIDEO_SECONDS=7)
    assert settings(VIDEO_SECONDS=10).video_seconds == 10
