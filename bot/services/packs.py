"""Users' own sticker packs: naming, Redis records, create/add/rollover and Telegram's refusals.

Telegram is the source of truth for what a set contains; Redis keeps what the bot needs to act
without asking (which packs a user has, which one receives new stickers, how full it is) and is
corrected whenever Telegram's answer disagrees (set deleted in @Stickers, set already full).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.types import BufferedInputFile, InputSticker, StickerSet
from redis.asyncio import Redis

from contract import keys

log = logging.getLogger(__name__)

MAX_STICKERS_PER_PACK = 120
"""Telegram's limit for a regular static sticker set."""
MAX_TITLE_CHARS = 64
"""Telegram's limit for a sticker set title."""
MAX_NAME_CHARS = 64
"""Telegram's limit for a sticker set name, including the ``_by_<bot>`` suffix."""
MAX_NAME_ATTEMPTS = 5
"""Names taken by someone else are skipped; more than a few in a row means something else is wrong."""
PACK_LOCK_TTL_S = 60
"""One pack operation per user at a time; a crashed holder frees the lock after this."""
PACK_LOCK_WAIT_S = 20.0
"""How long a second press waits for the first one's pack operation before giving up."""
PACK_LOCK_POLL_S = 0.05
"""Polling interval while waiting for the per-user pack lock."""
_NAME_SEQ = re.compile(r"^k\d+n(\d+)_by_")
DEFAULT_EMOJI = "🎨"
EMOJI_CHOICES: tuple[str, ...] = ("😀", "😂", "😍", "😎", "🥳", "😢", "😡", "🔥", "👍", "❤️", "🐱", "🎨")
"""Emoji offered when a sticker is added; Telegram needs at least one per sticker."""




def seq_of(name: str) -> int:
    """The number in a pack name made by :meth:`PackService.pack_name` (-1 for any other name)."""
    match = _NAME_SEQ.match(name)
    return int(match.group(1)) if match else -1



class PackError(Exception):
    """A refusal to show the user: ``key`` is a Fluent message id, ``args`` its variables."""

    def __init__(self, key: str, **args: Any) -> None:
        super().__init__(key)
        self.key = key
        self.args_ = args


@dataclass(frozen=True)
class Pack:
    name: str
    title: str
    count: int
    owner: int
    created_at: float

    @property
    def link(self) -> str:
        return f"https://t.me/addstickers/{self.name}"

    @property
    def places_left(self) -> int:
        return max(0, MAX_STICKERS_PER_PACK - self.count)


@dataclass(frozen=True)
class AddOutcome:
    pack: Pack
    created: bool
    """True when this sticker started a new pack (the first one, or a rollover)."""
    already: bool = False
    """True when this result had been added before; nothing was sent to Telegram."""


def _s(value: bytes | str | None) -> str:
    return value.decode() if isinstance(value, bytes) else (value or "")


def _error_text(exc: TelegramAPIError) -> str:
    return exc.message.upper()


def is_name_taken(exc: TelegramAPIError) -> bool:
    text = _error_text(exc)
    return "OCCUPIED" in text or "STICKERSET_NAME_OCCUPIED" in text or "NAME_INVALID" in text


def is_set_gone(exc: TelegramAPIError) -> bool:
    return "STICKERSET_INVALID" in _error_text(exc) or "STICKERSET_NOT_FOUND" in _error_text(exc)


def is_set_full(exc: TelegramAPIError) -> bool:
    return "STICKERS_TOO_MUCH" in _error_text(exc)


def is_file_rejected(exc: TelegramAPIError) -> bool:
    text = _error_text(exc)
    return any(
        marker in text
        for marker in ("STICKER_PNG", "STICKER_FILE", "IMAGE_PROCESS_FAILED", "WRONG FILE", "FILE_PARTS",
                       "STICKER_EMOJI_INVALID", "FILE IS TOO BIG")
    )


def is_user_unknown(exc: TelegramAPIError) -> bool:
    """Telegram only makes sets for users who have opened a private chat with the bot."""
    text = _error_text(exc)
    return "USER_ID_INVALID" in text or "PEER_ID_INVALID" in text


class PackService:
    """Creates, fills and edits the sticker packs of users; one instance per bot process."""

    def __init__(self, redis: Redis, bot_username: str) -> None:
        if not bot_username:
            raise ValueError("bot_username is required: set names must end in _by_<bot username>")
        self.redis = redis
        self.bot_username = bot_username

    # --- naming -----------------------------------------------------------------------------
    def pack_name(self, user_id: int, seq: int) -> str:
        """``k<user id>n<seq>_by_<bot>``: a letter first, no double underscores, at most 64 chars."""
        name = f"k{user_id}n{seq}_by_{self.bot_username}"
        if len(name) > MAX_NAME_CHARS or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name) or "__" in name:
            raise ValueError(f"no valid sticker set name for user {user_id} and bot {self.bot_username}")
        return name

    # --- records ----------------------------------------------------------------------------
    async def get_pack(self, name: str) -> Pack | None:
        raw = await self.redis.hgetall(keys.pack(name))
        if not raw:
            return None
        data = {_s(k): _s(v) for k, v in raw.items()}
        return Pack(
            name=data.get("name", name),
            title=data.get("title", ""),
            count=int(data.get("count", "0") or 0),
            owner=int(data.get("owner", "0") or 0),
            created_at=float(data.get("created_at", "0") or 0),
        )

    async def packs(self, user_id: int) -> list[Pack]:
        names = [_s(n) for n in await self.redis.lrange(keys.user_packs(user_id), 0, -1)]
        packs = []
        for name in names:
            pack = await self.get_pack(name)
            if pack is not None and pack.owner == user_id:
                packs.append(pack)
        return packs

    async def current(self, user_id: int) -> Pack | None:
        name = _s(await self.redis.get(keys.user_current_pack(user_id)))
        return await self.get_pack(name) if name else None

    async def owned(self, user_id: int, name: str) -> Pack:
        pack = await self.get_pack(name)
        if pack is None or pack.owner != user_id:
            raise PackError("pack-not-found")
        return pack

    async def _save(self, pack: Pack, *, make_current: bool) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.pack(pack.name), mapping={
                "name": pack.name, "title": pack.title, "count": pack.count,
                "owner": pack.owner, "created_at": pack.created_at,
            })
            pipe.expire(keys.pack(pack.name), keys.PACK_RECORD_TTL)
            pipe.expire(keys.user_packs(pack.owner), keys.PACK_RECORD_TTL)
            if make_current:
                pipe.set(keys.user_current_pack(pack.owner), pack.name, ex=keys.PACK_RECORD_TTL)
            await pipe.execute()

    async def _register(self, pack: Pack) -> None:
        await self.redis.rpush(keys.user_packs(pack.owner), pack.name)
        await self._save(pack, make_current=True)

    async def _forget(self, pack: Pack) -> None:
        """Drop a pack Telegram no longer has (deleted by its owner in @Stickers)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lrem(keys.user_packs(pack.owner), 0, pack.name)
            pipe.delete(keys.pack(pack.name))
            await pipe.execute()
        current = _s(await self.redis.get(keys.user_current_pack(pack.owner)))
        if current.lower() == pack.name.lower():
            await self.redis.delete(keys.user_current_pack(pack.owner))
        log.info("pack %s of user %s is gone on Telegram; record dropped", pack.name, pack.owner)

    @asynccontextmanager
    async def _locked(self, user_id: int) -> AsyncIterator[None]:
        """Serialise one user's pack operations across presses and bot replicas."""
        token = f"{time.time()}:{id(self)}"
        deadline = time.monotonic() + PACK_LOCK_WAIT_S
        while not await self.redis.set(keys.user_pack_lock(user_id), token, nx=True, ex=PACK_LOCK_TTL_S):
            if time.monotonic() > deadline:
                raise PackError("pack-busy")
            await asyncio.sleep(PACK_LOCK_POLL_S)
        try:
            yield
        finally:
            if _s(await self.redis.get(keys.user_pack_lock(user_id))) == token:
                await self.redis.delete(keys.user_pack_lock(user_id))

    # --- adding -----------------------------------------------------------------------------
    async def add_sticker(
        self,
        bot: Bot,
        user_id: int,
        sticker: bytes,
        *,
        emoji: str = DEFAULT_EMOJI,
        default_title: str,
        source: tuple[str, int] | None = None,
    ) -> AddOutcome:
        """Upload once, then add to the current pack; start a new pack when there is none or it is full.

        ``source`` (job id, image index) makes a second press of the same button a no-op.
        """
        async with self._locked(user_id):
            if source is not None:
                done = _s(await self.redis.get(keys.pack_added(*source)))
                if done:
                    pack = await self.get_pack(done)
                    if pack is not None:
                        return AddOutcome(pack, created=False, already=True)
            file_id = await self._upload(bot, user_id, sticker)
            item = InputSticker(sticker=file_id, format="static", emoji_list=[emoji or DEFAULT_EMOJI])
            outcome = await self._add_to_current(bot, user_id, item)
            if outcome is None:
                outcome = await self._create(bot, user_id, item, default_title)
            if source is not None:
                await self.redis.set(keys.pack_added(*source), outcome.pack.name, ex=keys.PACK_ADDED_TTL)
            log.info("user %s: sticker added to %s (%d/%d)%s", user_id, outcome.pack.name,
                     outcome.pack.count, MAX_STICKERS_PER_PACK, " new pack" if outcome.created else "")
            return outcome

    async def _upload(self, bot: Bot, user_id: int, sticker: bytes) -> str:
        try:
            file = await bot.upload_sticker_file(
                user_id=user_id, sticker=BufferedInputFile(sticker, "sticker.webp"), sticker_format="static"
            )
        except TelegramBadRequest as exc:
            if is_file_rejected(exc):
                log.warning("user %s: sticker file rejected: %s", user_id, exc.message)
                raise PackError("pack-file-rejected") from exc
            if is_user_unknown(exc):
                raise PackError("pack-start-bot-first") from exc
            raise
        return file.file_id

    async def _add_to_current(self, bot: Bot, user_id: int, item: InputSticker) -> AddOutcome | None:
        """Add to the current pack; None when a new pack is needed (none, full, or deleted)."""
        pack = await self.current(user_id)
        if pack is None or pack.count >= MAX_STICKERS_PER_PACK:
            return None
        try:
            await bot.add_sticker_to_set(user_id=user_id, name=pack.name, sticker=item)
        except TelegramBadRequest as exc:
            if is_set_full(exc):
                # Filled outside the bot (e.g. in @Stickers): trust Telegram and roll over.
                full = Pack(**{**pack.__dict__, "count": MAX_STICKERS_PER_PACK})
                await self._save(full, make_current=False)
                return None
            if is_set_gone(exc):
                await self._forget(pack)
                return None
            if is_file_rejected(exc):
                raise PackError("pack-file-rejected") from exc
            raise
        updated = Pack(**{**pack.__dict__, "count": pack.count + 1})
        await self._save(updated, make_current=True)
        return AddOutcome(updated, created=False)

    async def _create(self, bot: Bot, user_id: int, item: InputSticker, default_title: str) -> AddOutcome:
        title = default_title[:MAX_TITLE_CHARS] or "Kandinsky"
        for _ in range(MAX_NAME_ATTEMPTS):
            seq = int(await self.redis.incr(keys.user_pack_seq(user_id)))
            await self.redis.expire(keys.user_pack_seq(user_id), keys.PACK_RECORD_TTL)
            name = self.pack_name(user_id, seq)
            try:
                await bot.create_new_sticker_set(user_id=user_id, name=name, title=title, stickers=[item])
            except TelegramBadRequest as exc:
                if is_name_taken(exc):
                    log.info("user %s: sticker set name %s is taken, trying the next one", user_id, name)
                    continue
                if is_file_rejected(exc):
                    raise PackError("pack-file-rejected") from exc
                raise
            pack = Pack(name=name, title=title, count=1, owner=user_id, created_at=time.time())
            await self._register(pack)
            return AddOutcome(pack, created=True)
        raise PackError("pack-names-exhausted")

    # --- editing ----------------------------------------------------------------------------
    async def start_new(self, user_id: int) -> None:
        """The next sticker starts a new pack (created lazily: Telegram needs one sticker to create)."""
        await self.redis.delete(keys.user_current_pack(user_id))

    async def make_current(self, user_id: int, name: str) -> Pack:
        pack = await self.owned(user_id, name)
        if pack.count >= MAX_STICKERS_PER_PACK:
            raise PackError("pack-full", title=pack.title)
        await self._save(pack, make_current=True)
        return pack

    async def rename(self, bot: Bot, user_id: int, name: str, title: str) -> Pack:
        title = title.strip()
        if not title or len(title) > MAX_TITLE_CHARS:
            raise PackError("pack-title-invalid", limit=MAX_TITLE_CHARS)
        async with self._locked(user_id):
            pack = await self.owned(user_id, name)
            try:
                await bot.set_sticker_set_title(name=pack.name, title=title)
            except TelegramBadRequest as exc:
                if is_set_gone(exc):
                    await self._forget(pack)
                    raise PackError("pack-gone", title=pack.title) from exc
                if "TITLE" in _error_text(exc):
                    raise PackError("pack-title-invalid", limit=MAX_TITLE_CHARS) from exc
                raise
            updated = Pack(**{**pack.__dict__, "title": title})
            await self._save(updated, make_current=False)
            return updated

    async def fetch(self, bot: Bot, user_id: int, name: str) -> tuple[Pack, StickerSet]:
        """The pack as Telegram has it; the record's count is corrected from the answer."""
        pack = await self.owned(user_id, name)
        try:
            sticker_set = await bot.get_sticker_set(name=pack.name)
        except TelegramBadRequest as exc:
            if is_set_gone(exc):
                await self._forget(pack)
                raise PackError("pack-gone", title=pack.title) from exc
            raise
        if len(sticker_set.stickers) != pack.count or sticker_set.title != pack.title:
            pack = Pack(**{**pack.__dict__, "count": len(sticker_set.stickers), "title": sticker_set.title})
            await self._save(pack, make_current=False)
        return pack, sticker_set

    async def remove_sticker(self, bot: Bot, user_id: int, name: str, position: int) -> Pack:
        """Remove the sticker at ``position`` (0-based, as Telegram orders the set)."""
        async with self._locked(user_id):
            pack, sticker_set = await self.fetch(bot, user_id, name)
            if not 0 <= position < len(sticker_set.stickers):
                raise PackError("pack-sticker-not-found")
            try:
                await bot.delete_sticker_from_set(sticker=sticker_set.stickers[position].file_id)
            except TelegramBadRequest as exc:
                if is_set_gone(exc):
                    await self._forget(pack)
                    raise PackError("pack-gone", title=pack.title) from exc
                raise
            updated = Pack(**{**pack.__dict__, "count": len(sticker_set.stickers) - 1})
            await self._save(updated, make_current=False)
            return updated
