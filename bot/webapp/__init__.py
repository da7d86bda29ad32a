"""The brush editor: a Telegram Mini App served by the bot's own aiohttp web server.

"🖌 Paint" under a result opens ``<WEBAPP_URL>/webapp/edit?job=…&i=…&lang=…`` inside Telegram. The
page (``edit.html``, self-contained) shows the picture, lets the user paint the region to repaint
(brush size, undo, clear; touch, pen and mouse) and sends the mask and the words back. Nothing here
trusts the page: every API request carries Telegram's init data, whose signature is checked with the
bot token (aiogram's ``safe_parse_webapp_init_data``), whose ``auth_date`` must be recent
(:data:`INIT_DATA_MAX_AGE_S`), and whose user must own the result (the job record says who). An
accepted edit is an ordinary inpaint job: the admission gate, the queue position in the chat, cancel.

In webhook mode the routes join the webhook's app; in polling mode :class:`WebAppServer` serves them.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import json
import logging
import re
import time
from dataclasses import dataclass
from html import escape
from importlib import resources
from typing import Any

from aiogram import Bot
from aiogram.utils.web_app import WebAppInitData, safe_parse_webapp_init_data
from aiohttp import web
from PIL import Image, UnidentifiedImageError

from bot.queue import JobRecord
from bot.services import Services
from bot.services.editing import edit_spec, editable, image_size, source_png
from bot.services.inputs import InputError, validate_prompt
from bot.services.jobs import submit
from bot.ui.keyboards import WEBAPP_PAGE
from contract.spec import MAX_IMAGES_PER_JOB, Mode

log = logging.getLogger(__name__)

INIT_DATA_HEADER = "X-Telegram-Init-Data"
"""Where the page sends Telegram's init data (the query string Telegram signed), on every request."""
INIT_DATA_MAX_AGE_S = 3600
"""Init data older than an hour is refused: painting takes minutes, and a leaked copy must not
stay usable for long (Telegram signs a fresh one each time the editor is opened)."""
CLOCK_SKEW_S = 60
"""An auth_date this far in the future is still accepted (our clock against Telegram's)."""
MAX_REQUEST_BYTES = 4 * 1024 * 1024
"""A painted 1024² mask is a two-colour PNG of tens of kilobytes; anything near this is not one."""
MASK_DATA_URL = "data:image/png;base64,"
"""How the page sends the mask: a PNG, white where painted (repaint), black elsewhere (keep)."""
MASK_WHITE = 128
"""Mask pixels at or above this are painted (the engine's threshold, worker.engine.images)."""
JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
PAGE_TEXT_KEYS = ("webapp-sent", "webapp-need-mask", "webapp-need-prompt", "webapp-expired",
                  "webapp-forbidden", "webapp-gone", "webapp-failed", "webapp-refused")
"""The page's messages (its script shows them by key)."""
API_PREFIX = WEBAPP_PAGE.rsplit("/", 1)[0] + "/api"
"""``/webapp/api``: the page calls ``api/image`` and ``api/edit`` relative to itself."""


class Refused(Exception):
    """A request that gets no data: HTTP ``status`` and the page's message key; ``why`` is logged."""

    def __init__(self, status: int, key: str, why: str) -> None:
        super().__init__(why)
        self.status = status
        self.key = key
        self.why = why


def check_init_data(token: str, raw: str, now: float | None = None) -> WebAppInitData:
    """The init data if Telegram signed it for this bot, recently, for a user; Refused otherwise."""
    if not raw:
        raise Refused(401, "webapp-expired", "forged: no init data")
    try:
        data = safe_parse_webapp_init_data(token, raw)
    except ValueError:
        raise Refused(401, "webapp-expired", "forged: bad signature") from None
    if data.user is None:
        raise Refused(401, "webapp-expired", "forged: no user")
    age = (time.time() if now is None else now) - data.auth_date.timestamp()
    if age > INIT_DATA_MAX_AGE_S or age < -CLOCK_SKEW_S:
        raise Refused(401, "webapp-expired", f"stale: auth_date {age:.0f} s old")
    return data


@dataclass(frozen=True)
class Request:
    """A checked request: who (Telegram's word), which picture (the job record's)."""

    user_id: int
    record: JobRecord
    index: int


def _index(raw: str | None) -> int:
    if raw is None or not raw.isdigit() or int(raw) >= MAX_IMAGES_PER_JOB:
        raise Refused(400, "webapp-failed", f"bad image index {raw!r}")
    return int(raw)


class WebApp:
    """The page and its two API calls, on any aiohttp application."""

    def __init__(self, bot: Bot, services: Services) -> None:
        self.bot = bot
        self.services = services
        self._page = resources.files("bot.webapp").joinpath("edit.html").read_text(encoding="utf-8")

    def attach(self, app: web.Application) -> None:
        app.router.add_get(WEBAPP_PAGE, self.page)
        app.router.add_get(f"{API_PREFIX}/image", self.image)
        app.router.add_post(f"{API_PREFIX}/edit", self.edit)

    # --- the page ------------------------------------------------------------------------------------

    def render(self, locale: str) -> str:
        """The page in ``locale``: its texts filled in (escaped), the script's messages as JSON."""
        i18n = self.services.i18n
        lang = locale if locale in i18n.locales else i18n.default_locale
        texts = {key: i18n.get(lang, key) for key in PAGE_TEXT_KEYS}
        script_texts = json.dumps(texts, ensure_ascii=False).replace("<", "\\u003c")  # no "</script>"
        html = self._page.replace("{{texts-json}}", script_texts)
        html = html.replace("{{lang}}", lang)
        return re.sub(r"\{\{(webapp-[a-z-]+)\}\}", lambda m: escape(i18n.get(lang, m.group(1))), html)

    async def page(self, request: web.Request) -> web.Response:
        """The editor itself: static, no user data (the init data stays in the URL's fragment)."""
        return web.Response(text=self.render(request.query.get("lang", "")), content_type="text/html",
                            headers={"Cache-Control": "no-cache", "Content-Security-Policy": CSP,
                                     "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"})

    # --- the API -------------------------------------------------------------------------------------

    async def _checked(self, request: web.Request) -> Request:
        data = check_init_data(self.bot.token, request.headers.get(INIT_DATA_HEADER, ""))
        assert data.user is not None  # check_init_data refuses init data without a user
        job_id = request.query.get("job", "")
        if not JOB_ID.match(job_id):
            raise Refused(400, "webapp-failed", f"bad job id {job_id!r}")
        index = _index(request.query.get("i"))
        record = await self.services.queue.job(job_id)
        if record is None or record.spec is None or not editable(record):
            raise Refused(404, "webapp-gone", f"job {job_id} gone or not editable")
        if record.user_id != data.user.id:
            raise Refused(403, "webapp-forbidden",
                          f"job {job_id} of user {record.user_id} asked by user {data.user.id}")
        return Request(data.user.id, record, index)

    async def _guarded(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(await self._checked(request))  # type: ignore[no-any-return]
        except Refused as refused:
            log.info("webapp %s %s refused (%s): %s", request.method, request.path, refused.status,
                     refused.why)
            return web.json_response({"error": refused.key, "reason": refused.why}, status=refused.status)

    async def image(self, request: web.Request) -> web.StreamResponse:
        async def send(checked: Request) -> web.StreamResponse:
            png = await source_png(self.services, checked.record, checked.index)
            if png is None:
                raise Refused(404, "webapp-gone", f"result of job {checked.record.job_id} expired")
            return web.Response(body=png, content_type="image/png", headers={"Cache-Control": "no-store"})

        return await self._guarded(request, send)

    async def edit(self, request: web.Request) -> web.StreamResponse:
        async def queue(checked: Request) -> web.StreamResponse:
            try:
                body = json.loads(await request.read())
            except (ValueError, UnicodeDecodeError):
                raise Refused(400, "webapp-failed", "body is not JSON") from None
            if not isinstance(body, dict):
                raise Refused(400, "webapp-failed", "body is not an object")
            try:
                prompt = validate_prompt(body.get("prompt") if isinstance(body.get("prompt"), str) else "")
            except InputError:
                raise Refused(400, "webapp-need-prompt", "no usable prompt") from None
            png = await source_png(self.services, checked.record, checked.index)
            if png is None:
                raise Refused(404, "webapp-gone", f"result of job {checked.record.job_id} expired")
            mask = await asyncio.to_thread(read_mask, body.get("mask"), image_size(png))
            return await self._queue_inpaint(checked, prompt, png, mask)

        return await self._guarded(request, queue)

    async def _queue_inpaint(self, checked: Request, prompt: str, png: bytes, mask: bytes) -> web.Response:
        services = self.services
        record = checked.record
        assert record.spec is not None  # _checked refuses records without a spec
        image_key = await services.queue.put_blob(png)
        mask_key = await services.queue.put_blob(mask)
        spec = edit_spec(record.spec, services.config, mode=Mode.INPAINT, inputs=(image_key,), prompt=prompt,
                         mask=mask_key)
        t = services.i18n.translator(spec.locale)
        job_id = await submit(spec, bot=self.bot, services=services, t=t)
        if job_id is None:  # a limit said no; the chat has been told which
            return web.json_response({"error": "webapp-refused"}, status=429)
        log.info("webapp: job %s (inpaint of job %s image %d) queued for chat %s by user %s", job_id,
                 record.job_id, checked.index, spec.chat_id, checked.user_id)
        return web.json_response({"ok": True, "job_id": job_id})


CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
       "img-src 'self' blob: data:; connect-src 'self'; base-uri 'none'; form-action 'none'")
"""The page runs only its own inline script and talks only to this server."""


def read_mask(value: Any, size: tuple[int, int]) -> bytes:
    """The page's mask as a binary PNG (white = repaint) of the picture's ``size``; Refused if it is
    not a PNG data URL of that size, or has nothing painted."""
    if not isinstance(value, str) or not value.startswith(MASK_DATA_URL):
        raise Refused(400, "webapp-need-mask", "mask is not a PNG data URL")
    try:
        raw = base64.b64decode(value[len(MASK_DATA_URL):], validate=True)
        with Image.open(io.BytesIO(raw)) as picture:
            if picture.format != "PNG":
                raise Refused(400, "webapp-need-mask", f"mask is {picture.format}, not PNG")
            if picture.size != size:
                raise Refused(400, "webapp-failed", f"mask is {picture.size}, the picture {size}")
            gray = picture.convert("L")
    except (binascii.Error, UnidentifiedImageError, OSError, ValueError):
        raise Refused(400, "webapp-need-mask", "mask does not decode") from None
    binary = gray.point(lambda v: 255 if v >= MASK_WHITE else 0)
    if binary.getbbox() is None:
        raise Refused(400, "webapp-need-mask", "nothing painted")
    out = io.BytesIO()
    binary.save(out, format="PNG")
    return out.getvalue()


def webapp_application(bot: Bot, services: Services) -> web.Application:
    """An application serving only the editor (polling mode: the bot has no web server otherwise)."""
    app = web.Application(client_max_size=MAX_REQUEST_BYTES)
    WebApp(bot, services).attach(app)
    return app


class WebAppServer:
    """Polling mode's small web server for the editor, on WEBAPP_HOST:WEBAPP_PORT."""

    def __init__(self, bot: Bot, services: Services, host: str, port: int) -> None:
        self._runner = web.AppRunner(webapp_application(bot, services))
        self.host = host
        self.port = port

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        log.info("Mini App (brush editor) served on %s:%s%s", self.host, self.port, WEBAPP_PAGE)

    async def stop(self) -> None:
        await self._runner.cleanup()
