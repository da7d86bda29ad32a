"""Admin commands: /stats, /queue, /workers, /ban, /unban, /limits, /broadcast, /maintenance.

The whole router is filtered on ADMIN_IDS, for messages and callback queries alike. A non-admin's
update never matches here and goes on to the routers after this one, so it gets exactly what
any unknown command or stale button gets: nothing reveals that admin commands exist.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
from collections.abc import Awaitable, Callable

from aiogram import Bot, F, Router
from aiogram.filters import BaseFilter, Command, CommandObject
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message, TelegramObject, User
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.services import Services
from bot.services.admin import StatsService
from bot.services.quotas import Limits
from bot.ui.i18n import Translator
from contract import keys
from contract.families import describe_family
from contract.queue import queue_family

log = logging.getLogger(__name__)


class IsAdmin(BaseFilter):
    """Passes only updates from a user id in ADMIN_IDS (as the QuotaService knows them)."""

    async def __call__(self, event: TelegramObject, event_from_user: User | None = None,
                       services: Services | None = None) -> bool:
        return (event_from_user is not None and services is not None
                and services.quotas.is_admin(event_from_user.id))


class AdminCb(CallbackData, prefix="adm"):
    action: str


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


def _secs(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} s"


def _target(command: CommandObject) -> int | None:
    arg = (command.args or "").split()
    if not arg or not arg[0].lstrip("-").isdigit():
        return None
    return int(arg[0])


def _admin_id(message: Message) -> int:
    """Who gave the command, for the admin log."""
    return message.from_user.id if message.from_user else 0


# --- views ----------------------------------------------------------------------------------------
async def cmd_stats(message: Message, t: Translator, services: Services) -> None:
    await services.admin_log.record(_admin_id(message), "stats")
    s = await services.stats.stats()
    lines = [
        t("admin-stats-header"),
        t("admin-stats-users", total=s.users_total, today=s.users_today),
        t("admin-stats-jobs", today=s.jobs_today, total=s.jobs_total,
          failed_today=s.failures_today, failed_total=s.failures_total),
        t("admin-stats-queue", depth=s.queue_depth),
    ]
    for mode, m in s.modes.items():
        if not (m.done_total or m.failed_total):
            continue
        lines.append(t("admin-stats-mode", mode=mode, today=m.done_today, total=m.done_total,
                       failed_today=m.failed_today, failed_total=m.failed_total,
                       median=_secs(m.median_s), p95=_secs(m.p95_s)))
    for family, f in s.families.items():
        if f.done_total or f.failed_total:
            lines.append(t("admin-stats-family", model=_family_title(family), today=f.done_today,
                           total=f.done_total, failed_today=f.failed_today, failed_total=f.failed_total))
    await message.answer("\n".join(lines))


def _family_title(family: str) -> str:
    """The family's title, or its raw name for one this release does not know (a newer worker's)."""
    try:
        return describe_family(family).title
    except ValueError:
        return family


def _queue_label(name: str) -> str:
    """A queue with the family whose jobs wait in it, e.g. "kb-kandinsky3-default (Kandinsky 3.0)"."""
    family = queue_family(name)
    return f"{name} ({describe_family(family).title})" if family is not None else name


async def _refreshable_view(message: Message, t: Translator, services: Services, view: str,
                            text: Callable[[StatsService, Translator], Awaitable[str]]) -> None:
    """An admin view with a refresh button under it; the admin log records who looked."""
    await services.admin_log.record(_admin_id(message), view)
    await message.answer(await text(services.stats, t), reply_markup=_refresh_markup(t, view))


async def cmd_queue(message: Message, t: Translator, services: Services) -> None:
    await _refreshable_view(message, t, services, "queue", _queue_text)


async def _queue_text(stats: StatsService, t: Translator) -> str:
    q = await stats.queue()
    lines = [t("admin-queue-header")]
    for name in q.waiting:
        lines.append(t("admin-queue-line", queue=html.escape(_queue_label(name)), waiting=q.waiting[name],
                       running=q.running.get(name, 0)))
    lines.append(t("admin-queue-oldest", wait=_ago(q.oldest_wait_s)))
    return "\n".join(lines)


async def cmd_workers(message: Message, t: Translator, services: Services) -> None:
    await _refreshable_view(message, t, services, "workers", _workers_text)


async def _workers_text(stats: StatsService, t: Translator) -> str:
    workers = await stats.workers()
    if not workers:
        return t("admin-workers-none")
    now = dt.datetime.now(dt.UTC)
    lines = [t("admin-workers-header", count=len(workers))]
    for w in workers:
        beat = None
        if w.last_heartbeat is not None:
            hb = w.last_heartbeat if w.last_heartbeat.tzinfo else w.last_heartbeat.replace(tzinfo=dt.UTC)
            beat = (now - hb).total_seconds()
        families = ", ".join(_family_title(f) for f in w.families.split(",") if f) or "?"
        lines.append(t("admin-workers-line", name=html.escape(w.name), host=html.escape(w.host),
                       device=html.escape(w.device), families=html.escape(families),
                       state=w.state, job=w.current_job or "—",
                       done=w.jobs_done, failed=w.jobs_failed, beat=_ago(beat)))
        if w.styles or w.refused:
            lines.append(t("admin-workers-styles", styles=html.escape(w.styles.replace(",", ", ") or "—"),
                           refused=html.escape(w.refused.replace(",", ", ") or "—")))
    return "\n".join(lines)


def _refresh_markup(t: Translator, what: str) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    kb.button(text=t("admin-btn-refresh"), callback_data=AdminCb(action=f"refresh-{what}"))
    return kb.as_markup()


# --- bans and limits ------------------------------------------------------------------------------
async def cmd_ban(message: Message, command: CommandObject, t: Translator, services: Services) -> None:
    target = _target(command)
    if target is None:
        await message.answer(t("admin-ban-usage"))
    elif services.quotas.is_admin(target):
        await message.answer(t("admin-ban-admin"))
    else:
        fresh = await services.quotas.ban(target)
        await services.admin_log.record(_admin_id(message), "ban", str(target))
        await message.answer(t("admin-banned" if fresh else "admin-already-banned", id=target))


async def cmd_unban(message: Message, command: CommandObject, t: Translator, services: Services) -> None:
    target = _target(command)
    if target is None:
        await message.answer(t("admin-unban-usage"))
        return
    was = await services.quotas.unban(target)
    await services.admin_log.record(_admin_id(message), "unban", str(target))
    await message.answer(t("admin-unbanned" if was else "admin-not-banned", id=target))


async def cmd_limits(message: Message, command: CommandObject, t: Translator, services: Services) -> None:
    """``/limits`` defaults; ``/limits <id>`` a user's; ``/limits <id> <min> <day> <inflight>`` sets;
    ``/limits <id> reset`` returns to the defaults."""
    quotas = services.quotas
    admin_log = services.admin_log
    admin_id = _admin_id(message)
    args = (command.args or "").split()
    if not args:
        d = quotas.default_limits
        await admin_log.record(admin_id, "limits")
        await message.answer(t("admin-limits-default", minute=d.per_minute, day=d.per_day,
                               inflight=d.inflight))
        return
    target = _target(command)
    if target is None or len(args) not in (1, 2, 4):
        await message.answer(t("admin-limits-usage"))
        return
    if len(args) == 2:
        if args[1].lower() != "reset":
            await message.answer(t("admin-limits-usage"))
            return
        await quotas.reset_limits(target)
        await admin_log.record(admin_id, "limits-reset", str(target))
    elif len(args) == 4:
        try:
            limits = Limits(per_minute=int(args[1]), per_day=int(args[2]), inflight=int(args[3]))
        except ValueError:
            await message.answer(t("admin-limits-usage"))
            return
        await quotas.set_limits(target, limits)
        await admin_log.record(admin_id, "limits-set", f"{target} {args[1]} {args[2]} {args[3]}")
    else:
        await admin_log.record(admin_id, "limits", str(target))
    limits = await quotas.limits_for(target)
    minute, day, inflight = await quotas.usage(target)
    custom = await quotas.has_custom_limits(target)
    await message.answer(t("admin-limits-user", id=target, minute=limits.per_minute, day=limits.per_day,
                           inflight=limits.inflight, used_minute=minute, used_day=day, used_inflight=inflight,
                           custom="yes" if custom else "no", banned="yes" if await quotas.is_banned(target)
                           else "no"))


# --- maintenance ----------------------------------------------------------------------------------
async def cmd_maintenance(message: Message, command: CommandObject, t: Translator,
                          services: Services) -> None:
    quotas = services.quotas
    admin_log = services.admin_log
    admin_id = _admin_id(message)
    arg = (command.args or "").strip().lower()
    if arg in ("on", "off"):
        await quotas.set_maintenance(arg == "on", by=admin_id)
        await admin_log.record(admin_id, "maintenance", arg)
        await message.answer(t("admin-maintenance-on" if arg == "on" else "admin-maintenance-off"))
        return
    if arg:
        await message.answer(t("admin-maintenance-usage"))
        return
    state = await quotas.maintenance()
    await admin_log.record(admin_id, "maintenance-show")
    await message.answer(t("admin-maintenance-is-on" if state else "admin-maintenance-is-off"))


# --- broadcast ------------------------------------------------------------------------------------
async def cmd_broadcast(message: Message, command: CommandObject, t: Translator, services: Services) -> None:
    redis = services.redis
    admin_log = services.admin_log
    admin_id = _admin_id(message)
    text = (command.args or "").strip()
    if not text:
        await message.answer(t("admin-broadcast-usage"))
        return
    await redis.set(keys.pending_broadcast(admin_id), text, ex=keys.PENDING_BROADCAST_TTL)
    await admin_log.record(admin_id, "broadcast-draft", text[:200])
    kb = InlineKeyboardBuilder()
    kb.button(text=t("admin-btn-broadcast-send"), callback_data=AdminCb(action="bc-send"))
    kb.button(text=t("admin-btn-broadcast-cancel"), callback_data=AdminCb(action="bc-cancel"))
    await message.answer(t("admin-broadcast-confirm", text=html.escape(text)), reply_markup=kb.as_markup())


async def admin_button(query: CallbackQuery, callback_data: AdminCb, bot: Bot, t: Translator,
                       services: Services) -> None:
    redis = services.redis
    stats = services.stats
    broadcasts = services.broadcasts
    admin_log = services.admin_log
    admin_id = query.from_user.id
    message = query.message
    chat_id = message.chat.id if message is not None else admin_id
    action = callback_data.action
    await admin_log.record(admin_id, f"button:{action}")
    if action in ("refresh-queue", "refresh-workers"):
        text = await (_queue_text(stats, t) if action == "refresh-queue" else _workers_text(stats, t))
        await query.answer()
        if message is not None and getattr(message, "text", None) != text:
            await bot.edit_message_text(text=text, chat_id=chat_id, message_id=message.message_id,
                                        reply_markup=_refresh_markup(t, action.removeprefix("refresh-")))
        return
    if action == "bc-cancel":
        await redis.delete(keys.pending_broadcast(admin_id))
        await query.answer()
        if message is not None:
            await bot.edit_message_text(text=t("admin-broadcast-cancelled"), chat_id=chat_id,
                                        message_id=message.message_id, reply_markup=None)
        return
    if action == "bc-send":
        raw = await redis.getdel(keys.pending_broadcast(admin_id))
        if raw is None:
            await query.answer(t("admin-broadcast-expired"), show_alert=True)
            return
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        broadcast_id = await broadcasts.start(bot, admin_id, chat_id, text)
        await admin_log.record(admin_id, "broadcast-start", broadcast_id)
        await query.answer()
        if message is not None:
            report = await broadcasts.report(broadcast_id)
            await bot.edit_message_text(text=t("admin-broadcast-started", id=broadcast_id,
                                               total=report.total if report else 0),
                                        chat_id=chat_id, message_id=message.message_id, reply_markup=None)
        return
    await query.answer()


def make_router() -> Router:
    """A fresh admin router; every handler in it sees only ADMIN_IDS."""
    router = Router(name="admin")
    router.message.filter(IsAdmin())
    router.callback_query.filter(IsAdmin())
    router.message.register(cmd_stats, Command("stats"))
    router.message.register(cmd_queue, Command("queue"))
    router.message.register(cmd_workers, Command("workers"))
    router.message.register(cmd_ban, Command("ban"))
    router.message.register(cmd_unban, Command("unban"))
    router.message.register(cmd_limits, Command("limits"))
    router.message.register(cmd_broadcast, Command("broadcast"))
    router.message.register(cmd_maintenance, Command("maintenance"))
    router.callback_query.register(admin_button, AdminCb.filter(F.action.func(bool)))
    return router
