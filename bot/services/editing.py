"""Edits of a result as jobs: its picture as the input, a spec made from the result's own spec.

The "✏️ Edit", zoom and pan buttons (bot/routers/editing.py) and the brush editor (bot/webapp/) all
end here: the source picture is the result's full-size file (re-read and normalised, like
variations), and the new job keeps what made the result (prompt, style, negative prompt, size,
priority, language) with a new seed, on Kandinsky 2.2's inpainting decoder. The caller submits it
through ``bot.services.jobs.submit``: the admission gate, the queue position, cancel, like any job.
"""

from __future__ import annotations

import asyncio
import io
import math
import time
from typing import Any

from PIL import Image

from bot.queue import JobQueue, JobRecord
from bot.services import Services
from bot.services.families import alternative
from bot.services.inputs import InputError, normalize_image
from contract.editing import EditRequestError, PanDirection, parse_edit_request
from contract.events import image
from contract.language import PromptTranslation
from contract.modes import Button
from contract.spec import ASPECT_RATIOS, JobSpec, Mode, bucket_size, new_job_id, new_seed

KEPT_FIELDS = ("prompt", "negative_prompt", "style", "width", "height", "aspect", "num_images", "user_id",
               "chat_id", "locale", "priority")
"""What an edit keeps of the result's spec; the rest is the edit's own or a fresh default."""


def editable(record: JobRecord) -> bool:
    """Results whose mode's description offers the edit buttons (photos; not stickers or animations)."""
    return record.spec is not None and Button.EDIT in record.spec.buttons


async def source_png(services: Services, record: JobRecord, index: int) -> bytes | None:
    """The result's image ``index`` as a normalised PNG (None once its file expired)."""
    files = image(record.result, index) if record.result is not None else None
    if files is None:
        return None
    data = await services.queue.result_bytes(files.full.key)
    if data is None:
        return None
    # Decoding is CPU work: off the event loop.
    return (await asyncio.to_thread(normalize_image, data)).png


def image_size(png: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(png)) as picture:
        return picture.size


def edit_spec(source: JobSpec, config: Any, *, mode: Mode, inputs: tuple[str, ...], prompt: str | None = None,
              region: str = "", zoom: float | None = None, pan: PanDirection | None = None,
              mask: str | None = None, reply_to: int | None = None,
              translation: PromptTranslation | None = None) -> JobSpec:
    """A job of ``mode`` on the result of ``source`` (its picture stored as ``inputs``): the source's
    prompt unless ``prompt`` is given, a new seed, the bot's steps (``config``: BotSettings)."""
    kept: dict[str, Any] = {name: getattr(source, name) for name in KEPT_FIELDS}
    family = alternative(mode)  # the first family whose engine runs the edit (contract.modes)
    if prompt is not None:
        kept["prompt"] = prompt
    carried = translation if prompt is None else None
    return JobSpec.parse({
        **{k: (v.value if hasattr(v, "value") else v) for k, v in kept.items()},
        "job_id": new_job_id(), "mode": mode, "model": family, "inputs": list(inputs), "mask": mask,
        "region": region, "zoom": zoom, "pan": pan, "seed": new_seed(),
        "steps": config.steps_for(family), "prior_steps": config.prior_steps, "reply_to": reply_to,
        "created_at": time.time(),
        "translation": carried.model_dump() if carried is not None else None,
    })


def check_edit_words(text: str) -> tuple[str, str]:
    """``what -> into what`` split, or the InputError whose message shows the format."""
    try:
        return parse_edit_request(text)
    except EditRequestError as err:
        raise InputError(err.key) from None


def nearest_bucket(width: int, height: int, long_side: int) -> tuple[int, int]:
    """The size bucket whose aspect ratio is closest to width:height (an edited photo keeps its shape
    instead of being cropped to the user's aspect setting)."""
    ratio = math.log(width / height)

    def distance(aspect: str) -> float:
        rw, rh = ASPECT_RATIOS[aspect]
        return abs(math.log(rw / rh) - ratio)

    return bucket_size(min(ASPECT_RATIOS, key=distance), long_side)


async def photo_bucket(queue: JobQueue, blob_key: str, long_side: int) -> tuple[int, int] | None:
    """The nearest bucket of a stored photo (None if the blob is gone: the job then fails as expired)."""
    data = await queue.result_bytes(blob_key)
    return nearest_bucket(*image_size(data), long_side) if data else None
