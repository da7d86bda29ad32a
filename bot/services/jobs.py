"""From a validated request to a queued job: download and store inputs, build the spec, submit.

Handlers of every mode end here, so the spec is always built the same way from the user's
settings, and the queue-position reply doubles as the status message that delivery edits.
"""

from __future__ import annotations

import asyncio
import io
import logging
from dataclasses import dataclass
from typing import Any

from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import Message
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from bot.config import BotSettings
from bot.queue import JobQueue, Submission
from bot.services import Services, reply_to
from bot.services.admission import refusal_text
from bot.services.families import alternative, offer_switch, serves, title
from bot.services.inputs import MAX_DOWNLOAD_BYTES, InputError, check_file_size, normalize_image
from bot.services.user_settings import UserSettings
from bot.ui import keyboards
from bot.ui.filters import ImageRef
from bot.ui.i18n import Translator
from contract import keys
from contract.animation import Animation
from contract.families import Family, describe_family
from contract.language import PromptTranslation
from contract.loras import LoraChoice
from contract.modes import describe
from contract.spec import JobSpec, Mode, Priority, bucket_size, new_seed
from contract.weighting import WeightingError, check_weighting

log = logging.getLogger(__name__)

DOWNLOAD_TIMEOUT_S = 60
"""A 20 MB download from Telegram; longer means the connection is stuck."""
DEFAULT_WEIGHT_PERCENT = 50
STATUS_SEND_ERRORS = (TelegramRetryAfter, TelegramServerError, TelegramNetworkError)
"""Why a status message may not go even after the send path's retries (a flood longer than it
waits, an outage): none of them undoes the queued job."""


@dataclass(frozen=True)
class StatusRef:
    chat_id: int
    message_id: int
    is_photo: bool = False
    """True once a preview replaced the text status (its caption is edited then)."""


async def save_status(redis: Redis, job_id: str, chat_id: int, message_id: int, *,
                      is_photo: bool = False) -> None:
    """One command (it follows every submit): "<chat id>:<message id>:<1 if a photo>"."""
    await redis.set(keys.status(job_id), f"{chat_id}:{message_id}:{int(is_photo)}", ex=keys.STATUS_TTL)


async def load_status(redis: Redis, job_id: str) -> StatusRef | None:
    try:
        raw: Any = await redis.get(keys.status(job_id))
    except ResponseError:  # WRONGTYPE: a hash that a bot before this format wrote
        fields: dict[Any, Any] = await redis.hgetall(keys.status(job_id))  # type: ignore[misc]
        raw = b":".join(fields.get(name, b"0") for name in (b"chat_id", b"message_id", b"photo"))
    if not raw:
        return None
    chat_id, message_id, photo = (raw.decode() if isinstance(raw, bytes) else raw).split(":")
    return StatusRef(int(chat_id), int(message_id), photo == "1")


async def download_image(bot: Bot, ref: ImageRef) -> bytes:
    """Bytes of a Telegram file, refusing files over the getFile limit before downloading."""
    check_file_size(ref.file_size)
    try:
        file = await bot.get_file(ref.file_id)
        check_file_size(file.file_size)
        if not file.file_path:
            raise InputError("input-download-failed")
        buf = io.BytesIO()
        await bot.download_file(file.file_path, destination=buf, timeout=DOWNLOAD_TIMEOUT_S)
    except TelegramBadRequest as exc:
        if "too big" in exc.message.lower():
            raise InputError("input-too-large", {"limit_mb": MAX_DOWNLOAD_BYTES // (1024 * 1024)}) from None
        log.warning("getFile failed: %s", exc.message)
        raise InputError("input-download-failed") from None
    return buf.getvalue()


async def store_image(bot: Bot, queue: JobQueue, ref: ImageRef) -> str:
    """Download, validate and normalise one image and store it as a blob; returns its key."""
    data = await download_image(bot, ref)
    # Decoding is CPU work: keep it off the event loop so other chats are not stalled.
    normalized = await asyncio.to_thread(normalize_image, data)
    return await queue.put_blob(normalized.png)


def normalize_weights(first_percent: int) -> tuple[float, float]:
    first = min(max(first_percent, 0), 100) / 100.0
    return (first, 1.0 - first)


def build_spec(
    *,
    mode: Mode,
    config: BotSettings,
    user_settings: UserSettings,
    user_id: int,
    chat_id: int,
    locale: str,
    prompt: str = "",
    inputs: tuple[str, ...] = (),
    weights: tuple[float, ...] = (),
    seed: int | None = None,
    reply_to: int | None = None,
    translation: PromptTranslation | None = None,
    model: Family | None = None,
    animation: Animation | None = None,
    region: str = "",
    size: tuple[int, int] | None = None,
    seconds: int | None = None,
    loras: tuple[LoraChoice, ...] = (),
) -> JobSpec:
    """One place where user settings and bot settings become a JobSpec. ``region``: what an edit
    repaints; ``size``: a bucket other than the user's aspect (an edited photo keeps its shape);
    ``seconds``: a video's length (its mode's first length when not given); ``loras``: the user's
    LoRA styles that workers hold (StyleCatalogue.usable)."""
    needs = describe(mode)
    aspect = needs.aspect or user_settings.aspect
    tier = min(config.long_side, needs.max_long_side or config.long_side)  # a video model's training size
    width, height = size or bucket_size(aspect, tier)
    if animation is not None:  # one video at the animation tier (ANIMATION_LONG_SIDE): frames cost GPU time
        width, height = bucket_size(aspect, min(config.long_side, config.animation_long_side))
    return JobSpec(
        mode=mode,
        model=model or user_settings.model,
        prompt=prompt,
        negative_prompt=user_settings.negative_prompt,
        style=user_settings.style,
        loras=loras,
        width=width,
        height=height,
        aspect=None if size is not None else aspect,  # an edited photo keeps the shape it has
        seed=new_seed() if seed is None else seed,
        steps=config.steps_for(model or user_settings.model),
        prior_steps=config.prior_steps,
        num_images=1 if animation is not None or needs.video else user_settings.num_images,
        seconds=(seconds or needs.lengths[0]) if needs.video else 0,
        inputs=inputs,
        weights=weights,
        animation=animation,
        region=region,
        user_id=user_id,
        chat_id=chat_id,
        reply_to=reply_to,
        locale=locale,
        priority=Priority.HIGH if user_id in config.admin_ids else Priority.NORMAL,
        translation=translation,
    )


async def submit(spec: JobSpec, *, bot: Bot, services: Services, t: Translator) -> str | None:
    """Queue the job, answer with its position and remember that answer as the status message;
    or tell the user which limit refused it (then None: nothing was counted or queued).

    No "uploading photo" chat action here: it lapses after 5 s, long before a queued job starts;
    delivery sends one with the job's progress, when it means something.
    """
    sub = await services.admission.admit_and_record(spec)
    if not isinstance(sub, Submission):
        await bot.send_message(spec.chat_id, refusal_text(t, sub))
        return None
    if sub.position is None:
        text = t("queued-now")
    elif sub.eta_s is not None:
        text = t("queued-eta", position=sub.position, eta=round(sub.eta_s))
    else:
        text = t("queued", position=sub.position)
    if sub.workers == 0 and sub.position is not None:
        # Not lost: it waits in its family's queue until a worker holding that family starts.
        text += "\n" + t("queued-no-worker", model=title(spec.model))
    try:
        status: Message = await bot.send_message(
            spec.chat_id, text, reply_markup=keyboards.job_status(t, sub.job_id),
            reply_parameters=reply_to(spec.reply_to),
        )
    except STATUS_SEND_ERRORS as exc:
        # The job is queued and its result will come; only the position message is missing (delivery
        # then sends the result without a status to edit). Failing here would tell the user "error".
        log.warning("job %s queued for chat %s; its status message was not sent (%s)", sub.job_id,
                    spec.chat_id, type(exc).__name__)
        return sub.job_id
    await save_status(services.redis, sub.job_id, spec.chat_id, status.message_id)
    log.info("job %s queued for chat %s at position %s", sub.job_id, spec.chat_id, sub.position)
    return sub.job_id


@dataclass(frozen=True)
class Requester:
    """Who asks, in which chat and language, with which settings: handlers build one per update."""

    bot: Bot
    services: Services
    t: Translator
    locale: str
    user_settings: UserSettings
    user_id: int
    chat_id: int

    async def run(self, mode: Mode, *, prompt: str = "", inputs: tuple[str, ...] = (),
                  weights: tuple[float, ...] = (), seed: int | None = None,
                  reply_to_id: int | None = None,
                  model: Family | None = None, animation: Animation | None = None,
                  translation: PromptTranslation | None = None,
                  region: str = "", size: tuple[int, int] | None = None,
                  seconds: int | None = None) -> str | None:
        """Queue a job of ``mode``; ``translation``: what the model read for an earlier job with the
        same words (again, same seed), so it reads the same. ``model``: the family to run it (a
        result's, for again and same seed); else the user's, and a mode it lacks is refused here,
        before anything is counted, with a button to run it with a family that has it."""
        needs = describe(mode)
        chosen = model or self.user_settings.model
        if needs.own_family:  # a video is not a picture the chosen model would draw: no offer to switch
            chosen = next(iter(needs.families))
        runs_it = chosen if serves(chosen, mode.value) else alternative(mode.value)
        if describe_family(runs_it).weighted_prompts:  # a malformed weighting is refused before queueing
            try:
                check_weighting(prompt)
            except WeightingError as exc:
                text = self.t(f"weighting-{exc.problem}", detail=exc.detail)
                await self.bot.send_message(self.chat_id, text, reply_parameters=reply_to(reply_to_id))
                return None
        spec = build_spec(
            mode=mode, config=self.services.config, user_settings=self.user_settings,
            user_id=self.user_id, chat_id=self.chat_id, locale=self.locale, prompt=prompt,
            inputs=inputs, weights=weights, seed=seed, reply_to=reply_to_id, translation=translation,
            model=runs_it,
            animation=animation,
            region=region, size=size, seconds=seconds,
            loras=await self.services.styles.usable(runs_it, self.user_settings.loras),
        )
        if runs_it != chosen:
            await offer_switch(spec, chosen, bot=self.bot, services=self.services, t=self.t)
            return None
        return await submit(spec, bot=self.bot, services=self.services, t=self.t)

    async def store(self, ref: ImageRef) -> str:
        return await store_image(self.bot, self.services.queue, ref)


def requester(message: Message, *, bot: Bot, services: Services, t: Translator, locale: str,
              user_settings: UserSettings, user_id: int | None = None) -> Requester:
    uid = user_id if user_id is not None else (message.from_user.id if message.from_user else message.chat.id)
    return Requester(bot, services, t, locale, user_settings, uid, message.chat.id)
