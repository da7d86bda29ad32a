"""Typed callback data for every inline button; each packs to well under Telegram's 64 bytes."""

from __future__ import annotations

from enum import StrEnum

from aiogram.filters.callback_data import CallbackData


class MenuCb(CallbackData, prefix="m"):
    """A mode picked from the inline menu (value of contract.modes.Mode, or "settings")."""

    mode: str


class SettingsField(StrEnum):
    MENU = "menu"
    STYLE = "style"
    ASPECT = "aspect"
    COUNT = "n"
    NEGATIVE = "neg"
    NEGATIVE_CLEAR = "negclr"
    LANGUAGE = "lang"
    LORAS = "lora"
    CLOSE = "close"


class SettingsCb(CallbackData, prefix="s"):
    """Open a settings submenu (empty value) or set a field to ``value``."""

    field: SettingsField
    value: str = ""


class LoraAction(StrEnum):
    TOGGLE = "t"
    UP = "u"
    DOWN = "d"


class LoraCb(CallbackData, prefix="l"):
    """A LoRA style button of /settings: on/off, or its weight a step up or down. The name is
    re-checked against the styles workers published (or the user's own picks)."""

    action: LoraAction
    name: str


class WeightsCb(CallbackData, prefix="w"):
    """Weight of the first input in percent (mix: first photo; blend: the photo)."""

    first: int


class DialogCb(CallbackData, prefix="d"):
    """Leave the current dialog (the button twin of /cancel)."""

    action: str = "cancel"


class ResultAction(StrEnum):
    AGAIN = "again"
    VARIATIONS = "var"
    SAME_SEED = "seed"
    FILE = "file"
    MOVE = "move"  # the picture made into a video (image → video)
    ADD_TO_PACK = "pack"  # handled by the sticker-pack router (issue 5)
    READ = "read"  # "what the model read": handled by bot/routers/voice.py
    # Edits (bot/routers/editing.py): each is a new job on this image.
    EDIT = "edit"  # ask what to change and into what
    EDIT_MENU = "emenu"  # an image of an album: its edit buttons
    ZOOM_1_5 = "z15"
    ZOOM_2 = "z2"
    PAN_LEFT = "pl"
    PAN_RIGHT = "pr"
    PAN_UP = "pu"
    PAN_DOWN = "pd"


class ResultCb(CallbackData, prefix="r"):
    """A button under a delivered result; the job record is re-read and its owner checked."""

    action: ResultAction
    job_id: str
    index: int = 0


class VoiceAction(StrEnum):
    DRAW = "draw"
    EDIT = "edit"
    CANCEL = "cancel"


class VoiceCb(CallbackData, prefix="v"):
    """A button under "I heard: …" (a transcribed voice message); its record is re-read and its
    owner checked."""

    action: VoiceAction
    voice_id: str


class ModelCb(CallbackData, prefix="mdl"):
    """/model and the model submenu of /settings: pick ``family`` (empty: show the choices)."""

    family: str = ""


class SwitchCb(CallbackData, prefix="sw"):
    """Run one refused request with the family that serves its mode (bot.services.switches.SwitchStore)."""

    token: str


class JobCb(CallbackData, prefix="j"):
    """A button under a status message, e.g. cancel this job."""

    action: str
    job_id: str


class AnimateStep(StrEnum):
    CAMERA = "cam"
    SECONDS = "sec"


class LengthCb(CallbackData, prefix="len"):
    """A video length button of a prompt mode's dialog (the prompt waits in the dialog's data)."""

    mode: str
    seconds: int


class MoveCb(CallbackData, prefix="mv"):
    """"▶️ Start" of a make-it-move dialog: the picture's own prompt (the job names the dialog's result)."""

    job_id: str


class AnimateCb(CallbackData, prefix="an"):
    """A button of the /animate dialog: the camera move, then the length in seconds."""

    step: AnimateStep
    value: str
