"""Buttons under a result: again, variations of it, same seed, full-size file (make it move has its
dialog, bot/routers/move.py).

The callback data only names the job; the job record in Redis is the truth, and its owner
must be the user who pressed, or the press is refused with no side effect.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time

from aiogram import Bot, F, Router
from aiogram.types import BufferedInputFile, CallbackQuery
from PIL import Image

from bot.queue import JobRecord
from bot.services import Services
from bot.services.inputs import InputError, normalize_image
from bot.services.jobs import Requester, submit
from bot.services.user_settings import UserSettings
from bot.ui.callbacks import ResultAction, ResultCb
from bot.ui.i18n import Translator
from contract.events import FileKind, ResultFile, image
from contract.language import PromptTranslation
from contract.modes import Output
from contract.spec import JobSpec, Mode, new_job_id, new_seed

log = logging.getLogger(__name__)

HANDLED = (ResultAction.AGAIN, ResultAction.VARIATIONS, ResultAction.SAME_SEED, ResultAction.FILE)
"""ADD_TO_PACK belongs to the sticker-pack feature's router, MOVE to the make-it-move dialog's."""


async def owned_record(query: CallbackQuery, job_id: str, services: Services,
                       t: Translator) -> JobRecord | None:
    """The job record if the presser owns it; otherwise the query is answered with a refusal."""
    record = await services.queue.job(job_id)
    if record is None or record.spec is None:
        await query.answer(t("result-expired"), show_alert=True)
        return None
    if record.user_id != query.from_user.id:
        log.info("job %s: button of user %s pressed by user %s; refused", job_id, record.user_id,
                 query.from_user.id)
        await query.answer(t("not-yours"), show_alert=True)
        return None
    return record


def carried_translation(record: JobRecord) -> PromptTranslation | None:
    """What the model read for this job (the result's, else what its spec carried): a repeat
    carries it, so the worker gives the model exactly the same English."""
    if record.result is not None and record.result.translation is not None:
        return record.result.translation
    return record.spec.translation if record.spec is not None else None


def _full_file(record: JobRecord, index: int) -> ResultFile | None:
    """The full-size file of image ``index`` (a sticker's PNG, a photo itself)."""
    files = image(record.result, index) if record.result is not None else None
    return files.full if files is not None else None


async def _result_or_expired(bot: Bot, services: Services, t: Translator, chat_id: int, record: JobRecord,
                             index: int) -> bytes | None:
    """Image ``index``'s full-size bytes; None, and the user told, once the result has expired."""
    file = _full_file(record, index)
    data = await services.queue.result_bytes(file.key) if file is not None else None
    if data is None:
        await bot.send_message(chat_id, t("result-expired"))
    return data


def _as_document(data: bytes) -> tuple[bytes, str]:
    """The file for "full size", and its extension: JPEG and PNG as stored; anything else (a WEBP,
    which Telegram would show as a sticker) as PNG."""
    with Image.open(io.BytesIO(data)) as img:
        if img.format in ("JPEG", "PNG"):
            return data, "jpg" if img.format == "JPEG" else "png"
        out = io.BytesIO()
        img.save(out, format="PNG")
        return out.getvalue(), "png"


async def fetch_result_image(bot: Bot, services: Services, t: Translator, chat_id: int, record: JobRecord,
                             index: int) -> str | None:
    """Image ``index`` of a result, checked as every photo input is and stored as a job input: its
    blob key; None, and the user told, once the result has expired or the picture is refused."""
    data = await _result_or_expired(bot, services, t, chat_id, record, index)
    if data is None:
        return None
    try:
        normalized = await asyncio.to_thread(normalize_image, data)
    except InputError as err:
        await bot.send_message(chat_id, t(err.key, **err.params))
        return None
    return await services.queue.put_blob(normalized.png)


async def send_motion_file(bot: Bot, services: Services, t: Translator, chat_id: int,
                           record: JobRecord, output: Output) -> None:
    """An animation's or a video's "as a file": the MP4 itself as a document, saved as it is."""
    file = record.result.file(0, FileKind.motion(output)) if record.result is not None else None
    data = await services.queue.result_bytes(file.key) if file is not None else None
    if data is None:
        await bot.send_message(chat_id, t("result-expired"))
        return
    await bot.send_document(chat_id, BufferedInputFile(data, filename=f"kandinsky-{record.job_id}.mp4"),
                            disable_content_type_detection=True)


async def result_button(query: CallbackQuery, callback_data: ResultCb, bot: Bot, services: Services,
                        t: Translator, locale: str, user_settings: UserSettings) -> None:
    record = await owned_record(query, callback_data.job_id, services, t)
    if record is None or record.spec is None:
        return
    await query.answer()
    spec: JobSpec = record.spec
    chat_id = query.message.chat.id if query.message is not None else record.chat_id
    reply_id = query.message.message_id if query.message is not None else None
    action, index = callback_data.action, callback_data.index
    req = Requester(bot, services, t, locale, user_settings, query.from_user.id, chat_id)

    if action is ResultAction.FILE and spec.output.motion:
        await send_motion_file(bot, services, t, chat_id, record, spec.output)
        return

    if action is ResultAction.FILE:
        data = await _result_or_expired(bot, services, t, chat_id, record, index)
        if data is None:
            return
        document, ext = await asyncio.to_thread(_as_document, data)
        name = f"kandinsky-{spec.job_id}-{index + 1}.{ext}"
        await bot.send_document(chat_id, BufferedInputFile(document, filename=name))
        return

    if action is ResultAction.AGAIN:
        translation = carried_translation(record)
        again = JobSpec.parse({
            **spec.model_dump(), "job_id": new_job_id(), "seed": new_seed(),
            "reply_to": reply_id, "created_at": time.time(),
            "translation": translation.model_dump() if translation is not None else None,
        })
        await submit(again, bot=bot, services=services, t=t)
        return

    if action is ResultAction.VARIATIONS:
        key = await fetch_result_image(bot, services, t, chat_id, record, index)
        if key is not None:  # variations of a result come from the model that made it
            await req.run(Mode.VARIATIONS, inputs=(key,), reply_to_id=reply_id, model=spec.model)
        return

    # SAME_SEED: the same request, seed and model under the user's current settings (style, ratio, …).
    seeds = record.result.seeds if record.result is not None else []
    seed = seeds[index] if 0 <= index < len(seeds) else spec.seed
    await req.run(spec.mode, prompt=spec.prompt, inputs=spec.inputs, weights=spec.weights, seed=seed,
                  reply_to_id=reply_id,
                  model=spec.model, translation=carried_translation(record), animation=spec.animation,
                  seconds=spec.seconds or None)


def make_router() -> Router:
    router = Router(name="results")
    router.callback_query.register(result_button, ResultCb.filter(F.action.in_(HANDLED)))
    return router
