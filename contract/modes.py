"""Every mode described once: its inputs, how the bot offers it, which model families serve it.

Both sides import this (it imports neither torch nor aiogram) and derive the rest from it: the
job spec validates a job's inputs against its mode's description, the bot builds each mode's
dialog, FSM state, menu button and command from it, and the engine has one function registered
for each mode its family serves (tests/contract/test_modes.py holds it to that).

How to add a mode: add a member to ``Mode`` and a ``ModeDescription`` to ``MODES`` (the order of
``MODES`` is the order of the menu and of the command list). Give the engine a function for it
(``@recipe(Mode.NEW)`` on a method of each family engine that serves it, worker/engine/families/).
If the bot offers it
(``command`` set), add its texts to both bot/locales/*/messages.ftl: ``ModeDescription.text_keys``
lists them (all derived from the command, the key stem), and add a line to ``help-text``. That is
all: the routers, the FSM state, the menu, the command list and the spec's checks follow from the
description, and tests/contract/test_modes.py and tests/bot/test_modes.py fail until every piece
is there (the consistency tests also pin today's commands and menu, so extend those lists).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from contract import video
from contract.animation import job_timeout_s, quota_weight
from contract.families import DEFAULT_FAMILY, Family


class Mode(StrEnum):
    """The value travels in job specs, callback data and Redis records: never rename one."""

    TEXT2IMAGE = "text2image"
    MIX = "mix"  # two images
    BLEND = "blend"  # image + text
    VARIATIONS = "variations"
    STICKER = "sticker"
    DEPTH = "depth"  # keep depth, change look
    INPAINT = "inpaint"
    OUTPAINT = "outpaint"
    EDIT = "edit"  # repaint the region named in words (a text-prompted mask)
    ZOOM_OUT = "zoom_out"  # the picture smaller in the middle, the frame filled around it
    PAN = "pan"  # the frame moved to one side, the uncovered strip filled
    ANIMATE = "animate"  # Deforum-style camera flight, delivered as an MP4
    VIDEO = "video"  # Kandinsky 5.0 Video: text → a 5 or 10 s MP4
    IMAGE2VIDEO = "image2video"  # "🎬 Make it move" under a picture: Kandinsky 5.0 image → video


KANDINSKY22 = Family.KANDINSKY22
"""The family every mode had before there were several (contract/families.py describes them)."""
KANDINSKY3 = Family.KANDINSKY3
SDXL = Family.SDXL
KANDINSKY5 = Family.KANDINSKY5
KANDINSKY5_IMAGE = Family.KANDINSKY5_IMAGE
BOTH_KANDINSKY = frozenset({KANDINSKY22, KANDINSKY3})
"""Modes both Kandinsky families run; the prior's modes (mix, keep depth) are 2.2's alone."""
ALL_FAMILIES = frozenset({KANDINSKY22, KANDINSKY3, SDXL, KANDINSKY5_IMAGE})
"""Modes every family runs: text → image, image + text and variations (img2img), stickers."""

class Output(StrEnum):
    """What a job of a mode produces: how the worker stores it and how the bot delivers it."""

    IMAGE = "image"
    """Pictures: sent as photos (an album for several), each also as a file on request."""
    STICKER = "sticker"
    """A background-free 512 px cut-out per picture: stored as PNG and WEBP, sent as a sticker."""
    ANIMATION = "animation"
    """One H.264 MP4 (the engine encodes it): sent with sendAnimation."""
    VIDEO = "video"
    """One H.264 MP4 of a video model (the engine encodes it): sent with sendVideo, streamable."""

    @property
    def motion(self) -> bool:
        """One MP4 instead of pictures: stored, delivered and offered as a file the same way."""
        return self in (Output.ANIMATION, Output.VIDEO)


class Button(StrEnum):
    """A button under a delivered result (the bot gives each its label and callback)."""

    AGAIN = "again"
    """The same request with a new seed."""
    VARIATIONS = "variations"
    """Variations of this picture."""
    MOVE = "move"
    """This picture made into a short video (image → video)."""
    SAME_SEED = "same_seed"
    """The same request and seed (with today's settings)."""
    FILE = "file"
    """The result as a file: the full-size picture, a sticker's PNG, the MP4 itself."""
    ADD_TO_PACK = "add_to_pack"
    """Add this sticker to the user's sticker pack."""
    EDIT = "edit"
    """The edit rows: change a region in words (or with the brush), zoom out, pan."""


IMAGE_BUTTONS = (Button.AGAIN, Button.VARIATIONS, Button.SAME_SEED, Button.FILE, Button.MOVE, Button.EDIT)
STICKER_BUTTONS = (Button.AGAIN, Button.VARIATIONS, Button.SAME_SEED, Button.FILE, Button.ADD_TO_PACK)
"""A sticker is a cut-out with alpha at 512 px: it goes into packs, and is not edited."""
ANIMATION_BUTTONS = (Button.AGAIN, Button.SAME_SEED, Button.FILE)
_DEFAULT_BUTTONS = {Output.IMAGE: IMAGE_BUTTONS, Output.STICKER: STICKER_BUTTONS,
                    Output.ANIMATION: ANIMATION_BUTTONS, Output.VIDEO: ANIMATION_BUTTONS}

STICKER_SUFFIX = ", sticker, die-cut, cute simple illustration, centered, isolated on plain white background"
"""Makes the subject easy for background removal to cut out."""

PROMPT_STATE = "prompt"
"""FSM state leaf of a prompt-only mode's dialog (``Imagine:prompt``): stored dialogs hold it."""
PHOTO_STATE = "collect"
"""FSM state leaf of a photo mode's dialog (``Mix:collect``)."""


@dataclass(frozen=True, kw_only=True)
class ModeDescription:
    """One mode: what a job of it carries, and how (whether) the bot offers it."""

    mode: Mode
    images: int
    """Input images a job carries (blob keys in ``JobSpec.inputs``)."""
    prompt: bool
    """A non-empty prompt is required."""
    weights: bool = False
    """Two weights (one per condition, summing to 1) are required; none are taken otherwise."""
    mask: bool = False
    """A mask (white = repaint) is required; none is taken otherwise."""
    strength: bool = False
    """The decoder starts from the input at ``JobSpec.strength`` (img2img): steps × strength ≥ 1."""
    region: bool = False
    """Words naming the region to repaint (``JobSpec.region``) are required; none are taken otherwise."""
    zoom: bool = False
    """A zoom-out factor (``JobSpec.zoom``, one of contract.editing.ZOOM_FACTORS) is required."""
    pan: bool = False
    """A pan direction (``JobSpec.pan``) is required."""
    prompt_suffix: str = ""
    """Appended to the prompt (after the style) in what the model sees."""
    animation: bool = False
    """The job is an animation (``JobSpec.animation``: frames, camera and strength schedules,
    contract.animation); its prompt may name several prompts by second. The bot's dialog asks for
    the camera move and the length after the prompt (buttons, in the prompt's one FSM state)."""
    command: str | None = None
    """The bot command without the slash, also the stem of its texts' keys and its FSM group;
    None: an engine/CLI-only mode the bot does not offer."""
    menu: bool = False
    """A button in the bot's main menu (callback data ``m:<mode value>``)."""
    plain_text: bool = False
    """Plain text sent outside any dialog becomes this mode's prompt (one mode at most)."""
    families: frozenset[Family] = field(default_factory=lambda: frozenset({DEFAULT_FAMILY}))
    """The model families whose engines run this mode (contract/families.py describes each)."""
    output: Output = Output.IMAGE
    """What a job of it produces (stored, delivered and buttoned accordingly)."""
    buttons: tuple[Button, ...] | None = None
    """The buttons under its result, in order; None: the usual ones of its output."""
    aspect: str | None = None
    """An aspect ratio its jobs always have (a sticker is square before its cut-out); None: the user's."""
    lengths: tuple[int, ...] = ()
    """A video's lengths in seconds (contract.video), one of which ``JobSpec.seconds`` must be: a
    video is counted and timed by its seconds. Empty: not a video."""
    max_long_side: int | None = None
    """The largest resolution tier its jobs render at (a video model's training size); None: any."""
    own_family: bool = False
    """It runs on its one family whatever model the user picked for pictures (a video is not a
    picture that model would draw), instead of being refused with an offer to switch."""

    def __post_init__(self) -> None:
        if self.command is None and (self.menu or self.plain_text):
            raise ValueError(f"mode {self.mode}: a menu button or plain text needs a command")
        if self.plain_text and self.images:
            raise ValueError(f"mode {self.mode}: plain text can only start a prompt-only mode")
        if not self.families:
            raise ValueError(f"mode {self.mode}: no model family serves it")
        if self.animation and (self.images or not self.prompt):
            raise ValueError(f"mode {self.mode}: an animation starts from a prompt, without photos")
        if self.animation != (self.output is Output.ANIMATION):
            raise ValueError(f"mode {self.mode}: an animation's output is an animation, and only its")
        if self.video != (self.output is Output.VIDEO):
            raise ValueError(f"mode {self.mode}: a video's output is a video, and only its")
        if self.own_family and len(self.families) != 1:
            raise ValueError(f"mode {self.mode}: only a mode of one family runs on it without asking")

    @property
    def video(self) -> bool:
        return bool(self.lengths)

    def lengths_up_to(self, longest: int) -> tuple[int, ...]:
        """The lengths it offers where clips may be at most ``longest`` seconds (at least its first)."""
        return tuple(s for s in self.lengths if s <= longest) or self.lengths[:1]

    # --- derived: what a job of it costs -----------------------------------------------------------

    def quota_weight(self, frames: int, frames_per_request: int, seconds: int = 0) -> int:
        """Requests of the daily quota one job counts for: an animation one per ``frames_per_request``
        frames begun, a video one per second, anything else one."""
        if self.video:
            return video.quota_weight(seconds)
        return quota_weight(frames if self.animation else 0, frames_per_request)

    def job_timeout_s(self, base_s: int, frames: int, seconds: int = 0) -> int:
        """A job's time limit: ``base_s``, plus an allowance per frame of an animation or per second
        of a video."""
        if self.video:
            return video.job_timeout_s(base_s, seconds)
        return job_timeout_s(base_s, frames if self.animation else 0)

    @property
    def result_buttons(self) -> tuple[Button, ...]:
        return self.buttons if self.buttons is not None else _DEFAULT_BUTTONS[self.output]

    # --- derived: what the bot needs ---------------------------------------------------------------

    @property
    def in_bot(self) -> bool:
        return self.command is not None

    @property
    def stem(self) -> str:
        """Stem of the mode's text keys and its FSM group: the command (the mode value if none)."""
        return self.command or self.mode.value

    @property
    def state_name(self) -> str:
        """The dialog's FSM state as aiogram stores it in Redis, e.g. ``Imagine:prompt``."""
        return f"{self.stem.capitalize()}:{PHOTO_STATE if self.images else PROMPT_STATE}"

    @property
    def name_key(self) -> str:
        """The mode's name (result captions, admin stats): keyed by the mode value, every mode has one."""
        return f"mode-{self.mode.value}"

    @property
    def command_key(self) -> str:
        return f"cmd-{self.stem}"

    @property
    def button_key(self) -> str:
        return f"btn-{self.stem}"

    @property
    def ask_prompt_key(self) -> str:
        """Prompt-only modes: the dialog asks for the prompt."""
        return f"{self.stem}-ask-prompt"

    @property
    def ask_photo_key(self) -> str:
        """Photo modes: the first photo (or the only one)."""
        return f"{self.stem}-ask-photo"

    @property
    def ask_next_photo_key(self) -> str:
        """Modes of two or more photos: the next one."""
        return f"{self.stem}-ask-next-photo"

    @property
    def ask_photo_after_text_key(self) -> str:
        """Photo modes with a prompt: the text came first, now the photo."""
        return f"{self.stem}-ask-photo-after-text"

    @property
    def ask_text_key(self) -> str:
        """Photo modes with a prompt: the photos came, now the text."""
        return f"{self.stem}-ask-text"

    @property
    def ask_length_key(self) -> str:
        """Videos of several lengths: the prompt came, now the length (buttons)."""
        return f"{self.stem}-ask-length"

    @property
    def expired_key(self) -> str:
        """Videos of several lengths: a length button whose dialog is gone."""
        return f"{self.stem}-expired"

    @property
    def ask_camera_key(self) -> str:
        """Animations: the prompt came, now the camera move (buttons)."""
        return f"{self.stem}-ask-camera"

    @property
    def ask_duration_key(self) -> str:
        """Animations: the camera came, now the length in seconds (buttons)."""
        return f"{self.stem}-ask-duration"

    @property
    def text_keys(self) -> tuple[str, ...]:
        """Every locale key this mode's texts need (the dialog never asks for what it does not take)."""
        keys = [self.name_key]
        if not self.in_bot:
            return tuple(keys)
        keys.append(self.command_key)
        if self.menu:
            keys.append(self.button_key)
        if self.images == 0:
            keys.append(self.ask_prompt_key)
            if self.animation:
                keys += [self.ask_camera_key, self.ask_duration_key]
            if len(self.lengths) > 1:
                keys += [self.ask_length_key, self.expired_key]
            return tuple(keys)
        keys.append(self.ask_photo_key)
        if self.images > 1:
            keys.append(self.ask_next_photo_key)
        if self.prompt:
            keys += [self.ask_photo_after_text_key, self.ask_text_key]
        return tuple(keys)


MODES: tuple[ModeDescription, ...] = (
    ModeDescription(mode=Mode.TEXT2IMAGE, images=0, prompt=True, command="imagine", menu=True,
                    plain_text=True, families=ALL_FAMILIES),
    ModeDescription(mode=Mode.MIX, images=2, prompt=False, weights=True, command="mix", menu=True),
    ModeDescription(mode=Mode.BLEND, images=1, prompt=True, weights=True, command="blend", menu=True,
                    families=ALL_FAMILIES),
    ModeDescription(mode=Mode.VARIATIONS, images=1, prompt=False, command="variations", menu=True,
                    families=ALL_FAMILIES),
    ModeDescription(mode=Mode.STICKER, images=0, prompt=True, prompt_suffix=STICKER_SUFFIX,
                    command="sticker", menu=True, families=ALL_FAMILIES, output=Output.STICKER, aspect="1:1"),
    ModeDescription(mode=Mode.DEPTH, images=1, prompt=True, strength=True, command="depth", menu=True),
    ModeDescription(mode=Mode.INPAINT, images=1, prompt=True, mask=True,  # engine and CLI only
                    families=frozenset({KANDINSKY22, SDXL})),
    ModeDescription(mode=Mode.OUTPAINT, images=1, prompt=True),  # engine and CLI only
    # Edits: "✏️ Edit" under a result or /edit with a photo; zoom out and pan from a result's buttons.
    ModeDescription(mode=Mode.EDIT, images=1, prompt=True, region=True, command="edit", menu=True),
    ModeDescription(mode=Mode.ZOOM_OUT, images=1, prompt=False, zoom=True),
    ModeDescription(mode=Mode.PAN, images=1, prompt=False, pan=True),
    # Animation: prompt(s) by second, a camera button, a length; an MP4 by sendAnimation.
    ModeDescription(mode=Mode.ANIMATE, images=0, prompt=True, animation=True, command="animate", menu=True,
                    output=Output.ANIMATION),
    # Video: a prompt becomes 5 s of Kandinsky 5.0 Video, an MP4 by sendVideo.
    ModeDescription(mode=Mode.VIDEO, images=0, prompt=True, lengths=video.VIDEO_SECONDS, command="video",
                    menu=True, families=frozenset({KANDINSKY5}), own_family=True, output=Output.VIDEO,
                    max_long_side=video.VIDEO_LONG_SIDE),
    # Make it move: a picture (a result's, from its button) and its prompt become 5 s of video.
    ModeDescription(mode=Mode.IMAGE2VIDEO, images=1, prompt=False, lengths=video.IMAGE_TO_VIDEO_SECONDS,
                    families=frozenset({KANDINSKY5}), own_family=True, output=Output.VIDEO,
                    max_long_side=video.VIDEO_LONG_SIDE),
)
"""Every mode, in menu and command-list order."""


def index_modes(modes: tuple[ModeDescription, ...]) -> dict[Mode, ModeDescription]:
    """Refuse at import what no test should have to find: a mode described twice or not at all."""
    by_mode: dict[Mode, ModeDescription] = {}
    for description in modes:
        if description.mode in by_mode:
            raise ValueError(f"mode {description.mode} is described twice")
        by_mode[description.mode] = description
    missing = [m.value for m in Mode if m not in by_mode]
    if missing:
        raise ValueError(f"modes without a description: {', '.join(missing)}")
    commands = [d.command for d in modes if d.command is not None]
    if len(commands) != len(set(commands)):
        raise ValueError(f"two modes share a command: {commands}")
    if sum(d.plain_text for d in modes) > 1:
        raise ValueError("plain text can start one mode only")
    return by_mode


_BY_MODE: dict[Mode, ModeDescription] = index_modes(MODES)


def describe(mode: Mode) -> ModeDescription:
    return _BY_MODE[mode]


def bot_modes() -> tuple[ModeDescription, ...]:
    """The modes the bot offers (a command each), in menu order."""
    return tuple(d for d in MODES if d.in_bot)


def mode_commands() -> tuple[str, ...]:
    """Every bot mode's command, in menu order."""
    return tuple(d.command for d in MODES if d.command is not None)


def menu_modes() -> tuple[ModeDescription, ...]:
    return tuple(d for d in MODES if d.menu)


def plain_text_mode() -> ModeDescription | None:
    """The mode plain text outside a dialog starts, if any."""
    return next((d for d in MODES if d.plain_text), None)


def served_by(family: str) -> tuple[Mode, ...]:
    """The modes an engine of ``family`` must run."""
    return tuple(d.mode for d in MODES if family in d.families)
