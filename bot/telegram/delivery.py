"""Worker events become Telegram messages: progress edits, results with buttons, failures.

The EventConsumer acks an event only when ``Delivery.handle`` returns, so this module raises
when Telegram did not take a result (the event is retried) and returns normally when there is
nothing sensible left to do (a user who blocked the bot, a progress edit that failed).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping
from html import escape
from typing import Any

from aiogram import Bot
from aiogram.enums import ChatAction
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError, TelegramRetryAfter
from aiogram.types import BufferedInputFile, InputMediaPhoto

from bot.services import Services, reply_to
from bot.services.families import caption_note
from bot.services.jobs import StatusRef, load_status, save_status
from bot.services.styles import describe_picks
from bot.telegram.flood import CallSkipped, cheap, ordinary
from bot.ui import keyboards
from bot.ui.i18n import Translator
from contract import keys
from contract.animation import FRAME_STAGE
from contract.events import (
    CancelledEvent,
    DoneEvent,
    Event,
    EventType,
    FailedEvent,
    FileKind,
    ProgressEvent,
    ResultFile,
    TerminalEvent,
    TranscribedEvent,
    image_files,
)
from contract.families import describe_family
from contract.language import PromptTranslation
from contract.loras import LoraStyle
from contract.modes import Button, Output
from contract.spec import ASPECT_RATIOS, LONG_SIDES, JobSpec, bucket_size

log = logging.getLogger(__name__)

CHAT_ACTION_EVERY_S = 4.0
"""Telegram shows a chat action for 5 s; renewing it a bit earlier keeps it on without gaps."""
CAPTION_PROMPT_CHARS = 300
"""Room left for the prompt in a caption (Telegram allows 1024 characters in all)."""
CHAT_GONE = "chat not found"
"""Telegram's description when the chat was deleted (or never existed for this bot)."""
MAX_THROTTLE_ENTRIES = 10_000
"""Bound on the in-memory throttle tables (entries of finished jobs are dropped anyway)."""


def aspect_of(width: int, height: int) -> str:
    for aspect in ASPECT_RATIOS:
        for side in LONG_SIDES:
            if bucket_size(aspect, side) == (width, height):
                return aspect
    return f"{width}×{height}"


def untranslated_note(t: Translator, translation: PromptTranslation | None, model: str) -> str:
    """A line under the caption when the prompt reached the model untranslated: a language the
    translation model cannot read, or one the model reads itself."""
    if translation is None:
        return ""
    if translation.native_languages:
        return "\n" + t("caption-native", model=describe_family(model).title,
                        languages=", ".join(translation.native_languages))
    languages = translation.unsupported_languages
    return "\n" + t("caption-untranslated", languages=", ".join(languages)) if languages else ""


def caption(t: Translator, spec: JobSpec, seeds: list[int], width: int, height: int,
            translation: PromptTranslation | None = None, prompt_truncated: bool = False,
            styles: Mapping[str, LoraStyle] | None = None) -> str:
    """The user's own prompt (never the translation the model read), the seed and the settings,
    the model that made it, its LoRA styles (by title, from ``styles``), and a note when its text
    encoder cut the prompt."""
    prompt = spec.prompt.strip()
    if len(prompt) > CAPTION_PROMPT_CHARS:
        prompt = prompt[:CAPTION_PROMPT_CHARS] + "…"
    return t(
        "result-caption",
        mode=t(f"mode-{spec.mode.value}"),
        prompt=f"\n<i>{escape(prompt)}</i>" if prompt else "",
        seed=", ".join(str(s) for s in seeds) or str(spec.seed),
        style=keyboards.style_label(t, spec.style),
        aspect=spec.aspect or aspect_of(spec.width, spec.height),
        width=str(width),  # a string: Fluent would print 1024 as "1,024"
        height=str(height),
    ) + lora_line(t, spec, styles) + untranslated_note(t, translation, spec.model) + caption_note(
        t, spec, prompt_truncated)


def lora_line(t: Translator, spec: JobSpec, styles: Mapping[str, LoraStyle] | None) -> str:
    if not spec.loras:
        return ""
    return "\n" + t("caption-loras", styles=escape(describe_picks(spec.loras, styles or {})))


def motion_caption(t: Translator, spec: JobSpec, seeds: list[int], file: ResultFile,
                   translation: PromptTranslation | None = None, prompt_truncated: bool = False) -> str:
    """An animation's or a video's caption: the usual one (prompt, seed, settings), then its length
    (and an animation's camera and frames)."""
    text = caption(t, spec, seeds, file.width, file.height, translation, prompt_truncated)
    animation = spec.animation
    if spec.output is Output.VIDEO:
        return text + "\n" + t("video-caption-line", seconds=str(spec.seconds))
    if animation is None:
        return text
    seconds = f"{animation.seconds:g}"
    return text + "\n" + t("animation-caption-line", camera=t(f"animate-camera-{animation.camera.value}"),
                           seconds=seconds, frames=str(animation.frames), fps=str(animation.fps))




class Delivery:
    """The EventConsumer's handler."""

    def __init__(self, bot: Bot, services: Services) -> None:
        self.bot = bot
        self.services = services
        self._last_edit: dict[str, float] = {}
        self._last_action: dict[int, float] = {}
        self._running_since: dict[str, float] = {}
        """When each running job's first progress event came (see :meth:`_progress`)."""

    async def handle(self, event: Event) -> None:
        store = self.services.store
        if await store.is_blocked(event.user_id):
            log.info("job %s: chat %s blocked the bot; dropping %s event", event.job_id, event.chat_id,
                     event.type)
            self._forget(event)
            return
        record = await self.services.queue.job(event.job_id)
        spec = record.spec if record is not None else None
        locale = spec.locale if spec is not None else self.services.i18n.default_locale
        t = self.services.i18n.translator(locale)
        try:
            if isinstance(event, ProgressEvent):
                await self._progress(event, spec, t)
            elif isinstance(event, DoneEvent):
                await self._done(event, spec, t)
            elif isinstance(event, FailedEvent):
                await self._final_text(event, t(f"failed-{event.failure.reason.value}"))
            elif isinstance(event, CancelledEvent):
                await self._final_text(event, t("job-cancelled"))
            elif isinstance(event, TranscribedEvent):
                await self.services.voice.deliver(self.bot, event, self.services.i18n)
        except TelegramForbiddenError:
            await store.mark_blocked(event.user_id)
            log.warning("job %s: chat %s blocked the bot; user %s marked", event.job_id, event.chat_id,
                        event.user_id)
        except TelegramBadRequest as exc:
            if CHAT_GONE not in exc.message.lower():
                raise
            # Retrying can never reach a chat that no longer exists: the event is done with.
            log.warning("job %s: chat %s not found; dropping %s event", event.job_id, event.chat_id,
                        event.type)
        finally:
            if event.type is not EventType.PROGRESS:
                self._forget(event)

    def _forget(self, event: Event) -> None:
        self._last_edit.pop(event.job_id, None)
        self._running_since.pop(event.job_id, None)
        if len(self._last_action) > MAX_THROTTLE_ENTRIES:
            self._last_action.clear()

    # --- progress -----------------------------------------------------------------------------

    async def _progress(self, event: ProgressEvent, spec: JobSpec | None, t: Translator) -> None:
        now = time.monotonic()
        interval = self.services.config.progress_edit_interval_s
        since = self._running_since.setdefault(event.job_id, now)
        if len(self._running_since) > MAX_THROTTLE_ENTRIES:
            self._running_since.clear()
        preview_key = event.progress.preview if self.services.config.live_previews else None
        if now - since < interval and not preview_key:
            # A job this young may be done before an edit would be read: a job whose steps are over
            # sooner goes from its "queued" status to its result with no progress edit or chat action
            # in between (one call fewer per result, at Telegram's bot-wide limit).
            return
        if now - self._last_action.get(event.chat_id, -1e9) >= CHAT_ACTION_EVERY_S:
            self._last_action[event.chat_id] = now
            motion = spec is not None and spec.output.motion  # an animation or a video is on its way
            action = ChatAction.UPLOAD_VIDEO if motion else ChatAction.UPLOAD_PHOTO
            await self._best_effort(self.bot.send_chat_action(event.chat_id, action))
        status = await load_status(self.services.redis, event.job_id)
        if status is None:
            return
        progress = event.progress
        step, total = progress.step, progress.total
        last = self._last_edit.get(event.job_id)
        first_preview = bool(preview_key) and not status.is_photo  # never throttled away
        if last is not None and now - last < interval and not (total and step >= total) and not first_preview:
            return
        self._last_edit[event.job_id] = now
        if len(self._last_edit) > MAX_THROTTLE_ENTRIES:
            self._last_edit.clear()
        if progress.stage == FRAME_STAGE:  # an animation counts frames: "frame 12/48"
            text = t("status-frame", step=step, total=total)
        elif spec is not None and spec.output is Output.VIDEO:  # a video model counts its steps
            text = t("status-video", step=step, total=total)
        else:
            text = t("status-progress", stage=escape(progress.stage), step=step, total=total)
        markup = keyboards.job_status(t, event.job_id)
        if first_preview and preview_key:
            preview = await self.services.queue.result_bytes(preview_key)
            if preview:
                # A preview for a chat that must wait is skipped; the next one tries again.
                with cheap(reserve=False), contextlib.suppress(CallSkipped):
                    await self._switch_to_photo(event, status, preview, text, t)
                return
        # The status is a photo already: a new preview replaces its picture and caption.
        newer = None
        if preview_key and status.is_photo:
            newer = await self.services.queue.result_bytes(preview_key)
        # A progress edit never waits behind a result: while the chat waits it is merged into the
        # latest edit of this status message (bot.telegram.flood).
        with cheap(f"status:{status.message_id}"):
            if newer:
                media = InputMediaPhoto(media=BufferedInputFile(newer, filename="preview.jpg"), caption=text)
                await self._best_effort(self.bot.edit_message_media(
                    media=media, chat_id=status.chat_id, message_id=status.message_id, reply_markup=markup))
            elif status.is_photo:
                await self._best_effort(self.bot.edit_message_caption(
                    chat_id=status.chat_id, message_id=status.message_id, caption=text, reply_markup=markup))
            else:
                await self._best_effort(self.bot.edit_message_text(
                    text, chat_id=status.chat_id, message_id=status.message_id, reply_markup=markup))

    async def _switch_to_photo(self, event: ProgressEvent, status: StatusRef, preview: bytes, text: str,
                               t: Translator) -> None:
        """A text message cannot become a photo: send the preview as the new status, drop the old
        (that delete is an ordinary call: two status messages must not stay)."""
        sent = await self.bot.send_photo(
            status.chat_id, BufferedInputFile(preview, filename="preview.png"), caption=text,
            reply_markup=keyboards.job_status(t, event.job_id),
        )
        await save_status(self.services.redis, event.job_id, status.chat_id, sent.message_id, is_photo=True)
        with ordinary():
            await self._best_effort(self.bot.delete_message(status.chat_id, status.message_id))

    async def _best_effort(self, call: object) -> None:
        """Progress is cosmetic: a failed edit is logged, never retried (TelegramForbidden still rises)."""
        try:
            await call  # type: ignore[misc]
        except TelegramBadRequest as exc:
            if "not modified" not in exc.message:
                log.info("progress update not applied: %s", exc.message)
        except TelegramRetryAfter as exc:
            log.info("progress update skipped: flood control (%ss)", exc.retry_after)
        except CallSkipped as exc:
            log.debug("progress update gave way: %s", exc)

    # --- results ------------------------------------------------------------------------------

    async def _done(self, event: DoneEvent, spec: JobSpec | None, t: Translator) -> None:
        result = event.result
        chat_id = event.chat_id
        if spec is None:
            await self.bot.send_message(chat_id, t("error-generic"))
            return
        if spec.output.motion:
            await self._done_motion(event, spec, t)
            return
        sticker = spec.output is Output.STICKER
        images = image_files(result)
        blobs: list[bytes] = []
        for files in images:
            data = await self.services.queue.result_bytes(files.display.key)
            if data is None:
                log.warning("job %s: result %s expired before delivery to chat %s", event.job_id,
                            files.display.key, chat_id)
                await self._final_text(event, t("result-expired"))
                return
            blobs.append(data)
        if not blobs:
            await self._final_text(event, t("error-generic"))
            return
        seeds = result.seeds or [result.seed]
        first = images[0].display
        read = result.translation is not None and result.translation.translated
        styles = await self.services.styles.published(spec.model) if spec.loras else None
        text = caption(t, spec, seeds, first.width, first.height, result.translation, result.prompt_truncated,
                       styles)
        reply = reply_to(spec.reply_to)
        if sticker:
            for pos, (files, data) in enumerate(zip(images, blobs, strict=True)):
                index = files.index
                await self.bot.send_sticker(
                    chat_id, BufferedInputFile(data, filename=f"{event.job_id}-{index}.webp"),
                    reply_parameters=reply if pos == 0 else None,
                )
                await self.bot.send_message(
                    chat_id, caption(t, spec, [seeds[min(index, len(seeds) - 1)]], files.full.width,
                                     files.full.height, result.translation, result.prompt_truncated, styles),
                    reply_markup=keyboards.result(t, event.job_id, index, buttons=spec.buttons,
                                                  output=spec.output, read=read),
                )
        else:
            names = [f"{event.job_id}-{i + 1}.{files.display.format}" for i, files in enumerate(images)]
            try:
                await self._send_photos(chat_id, blobs, names, text, event.job_id, t, reply, spec.buttons,
                                        read=read)
            except TelegramBadRequest as exc:
                if CHAT_GONE in exc.message.lower():
                    raise
                # Telegram refused the photo itself (size, dimensions): a file always goes through,
                # and retrying the same photo never would.
                log.warning("job %s: photo refused for chat %s (%s); sending files", event.job_id, chat_id,
                            exc.message)
                for i, (files, data) in enumerate(zip(images, blobs, strict=True)):
                    await self.bot.send_document(
                        chat_id, BufferedInputFile(data, filename=names[i]), caption=text if i == 0 else None,
                        reply_markup=keyboards.result(t, event.job_id, files.index, buttons=spec.buttons,
                                                      read=read, webapp=self.services.config.webapp_url),
                    )
        await self._mark_sent(event)
        log.info("job %s: delivered %d image(s) to chat %s (worker %s)", event.job_id, len(blobs), chat_id,
                 result.worker or "?")
        status = await load_status(self.services.redis, event.job_id)
        if status is not None:
            await self._best_effort(self.bot.delete_message(status.chat_id, status.message_id))

    async def _done_motion(self, event: DoneEvent, spec: JobSpec, t: Translator) -> None:
        """An animation or a video: the MP4 by sendAnimation / sendVideo (streamable), with the caption
        and its buttons; as a file when Telegram refuses it (the same file again never would go through)."""
        result, chat_id = event.result, event.chat_id
        file = result.file(0, FileKind.motion(spec.output))
        data = await self.services.queue.result_bytes(file.key) if file is not None else None
        if file is None or data is None:
            log.warning("job %s: %s expired (or missing) before delivery to chat %s", event.job_id,
                        spec.output, chat_id)
            await self._final_text(event, t("result-expired"))
            return
        read = result.translation is not None and result.translation.translated
        text = motion_caption(t, spec, result.seeds or [result.seed], file, result.translation,
                              result.prompt_truncated)
        markup = keyboards.result(t, event.job_id, 0, buttons=spec.buttons, output=spec.output, read=read)
        media = BufferedInputFile(data, filename=f"kandinsky-{event.job_id}.mp4")
        shown: dict[str, Any] = {"width": file.width, "height": file.height, "caption": text,
                                 "reply_markup": markup, "reply_parameters": reply_to(spec.reply_to)}
        try:
            if spec.output is Output.VIDEO:
                await self.bot.send_video(chat_id, media, duration=spec.seconds, supports_streaming=True,
                                          **shown)
            else:
                duration = round(spec.animation.seconds) if spec.animation is not None else None
                await self.bot.send_animation(chat_id, media, duration=duration, **shown)
        except TelegramBadRequest as exc:
            if CHAT_GONE in exc.message.lower():
                raise
            log.warning("job %s: %s refused for chat %s (%s); sending the file", event.job_id, spec.output,
                        chat_id, exc.message)
            await self.bot.send_document(chat_id, media, caption=text, reply_markup=markup)
        await self._mark_sent(event)
        log.info("job %s: delivered %s %s (%d bytes) to chat %s (worker %s)", event.job_id,
                 "an" if spec.output is Output.ANIMATION else "a", spec.output, len(data), chat_id,
                 result.worker or "?")
        status = await load_status(self.services.redis, event.job_id)
        if status is not None:
            await self._best_effort(self.bot.delete_message(status.chat_id, status.message_id))

    async def _send_photos(self, chat_id: int, blobs: list[bytes], names: list[str], text: str, job_id: str,
                           t: Translator, reply: Any, buttons: tuple[Button, ...], *,
                           read: bool = False) -> None:
        """One photo with its buttons, or a media group followed by one message of buttons."""
        if len(blobs) == 1:
            await self.bot.send_photo(
                chat_id, BufferedInputFile(blobs[0], filename=names[0]), caption=text,
                reply_markup=keyboards.result(t, job_id, 0, buttons=buttons, read=read,
                                              webapp=self.services.config.webapp_url),
                reply_parameters=reply,
            )
            return
        media: list[Any] = [
            InputMediaPhoto(media=BufferedInputFile(data, filename=name), caption=text if i == 0 else None)
            for i, (data, name) in enumerate(zip(blobs, names, strict=True))
        ]
        await self.bot.send_media_group(chat_id, media=media, reply_parameters=reply)
        await self.bot.send_message(chat_id, t("result-buttons"),
                                    reply_markup=keyboards.results_multi(t, job_id, len(blobs), read=read))

    async def _final_text(self, event: TerminalEvent, text: str) -> None:
        """Turn the status message into the final word; a new message when it cannot be edited."""
        status = await load_status(self.services.redis, event.job_id)
        if status is not None and not status.is_photo:
            try:
                await self.bot.edit_message_text(text, chat_id=status.chat_id, message_id=status.message_id)
                await self._mark_sent(event)
                log.info("job %s: %s told to chat %s", event.job_id, event.type, event.chat_id)
                return
            except TelegramBadRequest as exc:
                log.info("job %s: status message not editable (%s); sending anew", event.job_id, exc.message)
        if status is not None and status.is_photo:
            await self._best_effort(self.bot.delete_message(status.chat_id, status.message_id))
        await self.bot.send_message(event.chat_id, text)
        await self._mark_sent(event)
        log.info("job %s: %s told to chat %s", event.job_id, event.type, event.chat_id)

    async def _mark_sent(self, event: TerminalEvent) -> None:
        """Mark the job delivered the moment Telegram took its answer, before the status clean-up
        and the consumer's ack: a bot that dies in between re-reads the event, finds the mark and
        acks it instead of sending the image a second time."""
        await self.services.redis.set(keys.delivered(event.job_id), event.type.value, ex=keys.DELIVERED_TTL)
