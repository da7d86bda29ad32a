"""Building and running the bot: Bot, Dispatcher, event consumer, polling or webhook.

Tests and the demo call ``run_bot`` in-process with their own settings and a stop event;
``python -m bot`` calls it from ``main``. Nothing here is a module-level global.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any, ClassVar

from aiogram import BaseMiddleware, Bot, Dispatcher, Router
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError, TelegramNetworkError
from aiogram.fsm.storage.base import DefaultKeyBuilder
from aiogram.fsm.storage.redis import RedisEventIsolation, RedisStorage
from aiogram.methods import TelegramMethod
from aiogram.methods.base import Response, TelegramType
from aiogram.types import BotCommand, ErrorEvent
from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web
from redis.asyncio import Redis

from bot.config import BotMode, BotSettings
from bot.infra.draining import DrainingDispatcher
from bot.infra.isolation import OrderedEventIsolation
from bot.infra.metrics import BotMetrics, HealthEndpoint, sync_client
from bot.middlewares import setup_middlewares
from bot.queue import EventConsumer, JobQueue, QueueSettings
from bot.routers import build_root_router
from bot.services import Services
from bot.services.admin import AdminLog, BroadcastService, StatsService, report_sender
from bot.services.admission import Admission
from bot.services.packs import PackService
from bot.services.quotas import Limits, QuotaService
from bot.services.styles import StyleCatalogue
from bot.services.switches import SwitchStore
from bot.services.user_settings import SettingsStore
from bot.services.voice import VoiceService
from bot.telegram.delivery import Delivery
from bot.telegram.flood import ChatLimiter, FloodState, Pace, limiter_of
from bot.ui.i18n import I18n
from bot.webapp import MAX_REQUEST_BYTES, WebApp, WebAppServer
from contract import keys, redisconn
from contract.modes import mode_commands

log = logging.getLogger(__name__)

REDIS_MAX_CONNECTIONS = 64
"""Connections one bot process opens at most; beyond that a command waits for a free one."""
REDIS_POOL_TIMEOUT_S = 20.0
"""How long a command waits for a free connection in a burst before the update fails."""
POLLING_CONCURRENCY = 32
"""Updates handled at once in polling mode; a burst of thousands waits its turn instead of each
update opening Redis connections until the pool runs out (which lost updates before)."""
SHUTDOWN_DRAIN_S = 10.0
"""How long shutdown waits for the updates being handled; one needs a few Redis and API calls."""
POLLING_STOP_TIMEOUT_S = SHUTDOWN_DRAIN_S + 5.0
"""Polling's own stop includes that drain."""
NOT_MODIFIED = "message is not modified"
"""Telegram's 400 for an edit that changes nothing; harmless, so never reported to the user."""
COMMANDS: tuple[str, ...] = ("start", "help", *mode_commands(), "settings", "model", "cancel", "packs")
"""The bot menu (setMyCommands) and /help list these, in this order (the modes' from contract.modes)."""


def create_redis(settings: BotSettings) -> Redis:
    """A blocking pool: in a burst, commands wait for a connection instead of failing. Plain
    REDIS_URL or a Sentinel-managed master, retrying across restarts and failovers (contract.redisconn)."""
    return redisconn.async_client(settings.redis_target(), max_connections=REDIS_MAX_CONNECTIONS,
                                  pool_timeout=REDIS_POOL_TIMEOUT_S)


class RedactingSession(AiohttpSession):
    """aiohttp's connection errors quote the request URL, which holds the token; aiogram logs them
    (e.g. "Failed to fetch updates"), so the token is cut out of the error where it is made.

    It also keeps the response models alive: aiogram parses every reply with ``Response[T]``, a
    pydantic generic that pydantic caches only weakly, so each garbage collection threw the
    classes away and the next reply rebuilt one (119 rebuilds, ~8 ms each under cProfile, in a
    1000-update burst of bench_frontend).
    """

    _response_types: ClassVar[dict[Any, Any]] = {}
    """``Response[T]`` per return type T seen so far: a strong reference keeps pydantic's cache hit."""

    def check_response(self, bot: Bot, method: TelegramMethod[TelegramType], status_code: int,
                       content: str) -> Response[TelegramType]:
        returning = method.__returning__
        if returning not in self._response_types:
            self._response_types[returning] = Response[returning]  # type: ignore[valid-type]
        return super().check_response(bot, method, status_code, content)

    async def make_request(self, bot: Bot, method: TelegramMethod[TelegramType],
                           timeout: int | None = None) -> TelegramType:
        try:
            return await super().make_request(bot, method, timeout)
        except TelegramNetworkError as exc:
            if bot.token not in exc.message:
                raise
            redacted = exc.message.replace(bot.token, "<BOT_TOKEN>")
            raise TelegramNetworkError(method=method, message=redacted) from None


def create_bot(settings: BotSettings, redis: Redis | None = None) -> Bot:
    """A Bot on any Bot API server whose every call goes through the one send path (bot.telegram.flood):
    per-chat order, pace and retry_after, and the 5xx/network retries. Webhook replicas share each
    chat's state through ``redis``; a polling bot is the only process Telegram hands updates to, so
    it keeps that state itself (a Redis round trip per call saved)."""
    session = RedactingSession(api=TelegramAPIServer.from_base(settings.telegram_api_url),
                               timeout=settings.request_timeout_s)
    pace = Pace(private_per_s=settings.private_chat_rate, group_per_min=settings.group_chat_rate,
                global_per_s=settings.global_rate, chat_burst=settings.chat_burst)
    shared = redis if settings.has_replicas else None
    session.middleware(ChatLimiter(FloodState(shared, pace), max_tries=settings.retry_after_max_tries))
    return Bot(
        token=settings.bot_token.get_secret_value(),
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML),
    )


async def create_services(settings: BotSettings, redis: Redis, bot: Bot, *,
                          i18n: I18n | None = None) -> Services:
    """Every service of one bot process, built here and nowhere else; close it with ``close()``.

    Asks Telegram who the bot is first: sticker-set names end in the bot's username.
    """
    me = await bot.me()
    i18n = i18n or I18n(default_locale=settings.default_locale)
    target = settings.redis_target()
    sync = sync_client(target)
    metrics = BotMetrics(sync)
    limits = Limits(per_minute=settings.rate_per_minute, per_day=settings.rate_per_day,
                    inflight=settings.max_inflight)
    quotas = QuotaService(redis, frozenset(settings.admin_ids), limits)
    queue_settings = QueueSettings(per_user_inflight=max(1, settings.max_inflight))
    queue = JobQueue(redis, queue_settings, target=target)
    admission = Admission(queue, quotas, admin_inflight=queue_settings.admin_inflight, metrics=metrics,
                          frames_per_request=settings.animation_frames_per_request,
                          max_backlog=settings.max_backlog)
    return Services(
        config=settings, redis=redis, queue=queue, i18n=i18n, store=SettingsStore(redis), quotas=quotas,
        admission=admission,
        packs=PackService(redis, me.username or ""), stats=StatsService(redis, sync),
        admin_log=AdminLog(redis),
        broadcasts=BroadcastService(redis, rate=settings.broadcast_rate, on_finish=report_sender(i18n)),
        metrics=metrics, health=HealthEndpoint(settings.health_port, metrics, sync), sync_redis=sync,
        voice=VoiceService(redis, queue), switches=SwitchStore(redis), styles=StyleCatalogue(redis),
    )


def create_dispatcher(services: Services, *, extra_routers: Sequence[Router] = (),
                      extra_middlewares: Sequence[BaseMiddleware] = ()) -> DrainingDispatcher:
    """The dispatcher with storage, middlewares, every router and the error handler.

    The services reach handlers as workflow data, set here once (:meth:`Services.workflow_data`).
    Tests and the demo add ``extra_routers`` (placed before the catch-alls) and
    ``extra_middlewares`` (run after the bot's own, so they get ``t``).
    """
    key_builder = DefaultKeyBuilder(prefix=keys.FSM_PREFIX)
    storage = RedisStorage(services.redis, key_builder=key_builder, state_ttl=keys.DIALOG_TTL,
                           data_ttl=keys.DIALOG_TTL)
    # Updates of one chat run one at a time and in order (across webhook replicas too): the two
    # photos of an album must not both see an empty dialog, and "/mix" must come before its photo.
    isolation = OrderedEventIsolation(RedisEventIsolation(services.redis, key_builder=key_builder)
                                      if services.config.has_replicas else None)
    # aiogram's FSM middleware is replaced by the update read (bot.middlewares.update_read).
    dp = DrainingDispatcher(storage=storage, events_isolation=isolation, drain_timeout=SHUTDOWN_DRAIN_S,
                            disable_fsm=True, **services.workflow_data())
    setup_middlewares(dp, services, storage, isolation, extra=extra_middlewares)
    dp.include_router(build_root_router(extra_routers))
    dp.errors.register(on_error)
    dp.startup.register(set_commands)
    return dp


async def set_commands(bot: Bot, services: Services) -> None:
    """The command menu in every supported language (the default one without a language code)."""
    i18n = services.i18n
    for locale in i18n.locales:
        commands = [BotCommand(command=c, description=i18n.get(locale, f"cmd-{c}")) for c in COMMANDS]
        language = None if locale == i18n.default_locale else locale
        await bot.set_my_commands(commands, language_code=language)


async def on_error(event: ErrorEvent, bot: Bot, services: Services) -> bool:
    """Last resort: log with the chat id, tell the user something went wrong, keep polling."""
    update = event.update
    chat_id = None
    locale = services.i18n.default_locale
    if update.message is not None:
        chat_id = update.message.chat.id
        user = update.message.from_user
    elif update.callback_query is not None:
        chat_id = update.callback_query.message.chat.id if update.callback_query.message else None
        user = update.callback_query.from_user
    else:
        user = None
    if isinstance(event.exception, TelegramBadRequest) and NOT_MODIFIED in event.exception.message:
        # Pressing the button of what is already shown: nothing changed, nothing to tell.
        log.debug("update %s (chat %s): message not modified", update.update_id, chat_id)
        return True
    if user is not None:
        settings = await services.store.get(user.id)
        locale = settings.locale or services.i18n.pick(user.language_code)
    log.error("update %s (chat %s) failed: %s: %s", update.update_id, chat_id,
              type(event.exception).__name__, event.exception, exc_info=event.exception)
    if isinstance(event.exception, TelegramForbiddenError):
        if user is not None:
            await services.store.mark_blocked(user.id)
        return True
    text = services.i18n.get(locale, "error-generic")
    if update.callback_query is not None:
        with contextlib.suppress(Exception):  # already answered, or too old: nothing more to do
            await update.callback_query.answer(text)
    if chat_id is not None:
        with contextlib.suppress(Exception):
            await bot.send_message(chat_id, text)
    return True


def build_webhook_app(dp: Dispatcher, bot: Bot, settings: BotSettings,
                      services: Services | None = None) -> web.Application:
    """aiohttp app that takes Telegram's POSTs; requests without the secret token get 401. With
    ``services`` and WEBAPP_URL set it also serves the brush editor (bot.webapp)."""
    app = web.Application(client_max_size=MAX_REQUEST_BYTES)
    if services is not None and settings.webapp_url:
        WebApp(bot, services).attach(app)
    secret = settings.webhook_secret.get_secret_value() or None
    handler = SimpleRequestHandler(dispatcher=dp, bot=bot, secret_token=secret)
    handler.register(app, path=settings.webhook_path)
    setup_application(app, dp, bot=bot)
    return app


async def run_bot(settings: BotSettings, *, stop: asyncio.Event | None = None,
                  extra_routers: Sequence[Router] = (),
                  extra_middlewares: Sequence[BaseMiddleware] = ()) -> None:
    """Run until ``stop`` is set (forever without one); every resource is closed on the way out."""
    stop = stop or asyncio.Event()
    redis = create_redis(settings)
    bot = create_bot(settings, redis)
    try:
        services = await create_services(settings, redis, bot)
    except BaseException:
        await bot.session.close()
        await redis.aclose()
        raise
    dp = create_dispatcher(services, extra_routers=extra_routers, extra_middlewares=extra_middlewares)
    await services.start(bot)
    delivery = Delivery(bot, services)
    consumer = EventConsumer(redis, handler=delivery.handle, consumer=settings.consumer_name,
                             target=settings.redis_target())
    consumer_task = asyncio.create_task(consumer.run(), name="event-consumer")
    runner: web.AppRunner | None = None
    polling: asyncio.Task[None] | None = None
    webapp: WebAppServer | None = None
    try:
        if settings.bot_mode is BotMode.WEBHOOK:
            if not settings.webhook_url:
                raise ValueError("BOT_MODE=webhook needs WEBHOOK_URL")
            runner = web.AppRunner(build_webhook_app(dp, bot, settings, services))
            await runner.setup()
            await web.TCPSite(runner, settings.webhook_host, settings.webhook_port).start()
            await bot.set_webhook(
                settings.webhook_url,
                secret_token=settings.webhook_secret.get_secret_value() or None,
                allowed_updates=dp.resolve_used_update_types(),
            )
            log.info("webhook mode: listening on %s:%s%s", settings.webhook_host, settings.webhook_port,
                     settings.webhook_path)
        else:
            if settings.webapp_url:  # the editor needs a web server; polling has none of its own
                webapp = WebAppServer(bot, services, settings.webapp_host, settings.webapp_port)
                await webapp.start()
            await bot.delete_webhook(drop_pending_updates=False)
            polling = asyncio.create_task(
                dp.start_polling(bot, handle_signals=False, close_bot_session=False,
                                 allowed_updates=dp.resolve_used_update_types(),
                                 tasks_concurrency_limit=POLLING_CONCURRENCY),
                name="polling",
            )
            log.info("polling mode started")
        stopper = asyncio.create_task(stop.wait())
        watched: set[asyncio.Future[object]] = {stopper, consumer_task}  # type: ignore[arg-type]
        if polling is not None:
            watched.add(polling)  # type: ignore[arg-type]
        done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        for task in done:
            if task is not stopper and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        # The consumer first: aiogram closes the storage's Redis client when the dispatcher stops.
        await consumer.stop()
        consumer_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await consumer_task
        if polling is not None:
            with contextlib.suppress(RuntimeError):
                await dp.stop_polling()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(polling, timeout=POLLING_STOP_TIMEOUT_S)
        if runner is not None:
            with contextlib.suppress(Exception):
                await bot.delete_webhook()
            await runner.cleanup()
        if webapp is not None:
            await webapp.stop()
        await services.close()
        if (limiter := limiter_of(bot)) is not None:
            await limiter.close()
        await bot.session.close()
        await redis.aclose()
        log.info("bot stopped")
