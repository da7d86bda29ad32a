"""Per-user rate limits, the ban list, the maintenance flag and the audience, all held in Redis.

Everything lives in Redis (never in process memory) so several bot replicas share one view:
a user who sends five requests to two replicas is counted five times, not twice two and a half.
This module stores and reads them; the one step that checks and counts a request is the
admission script (bot.queue.gate, run by bot.services.admission), so two replicas cannot both
grant the last slot.
"""

from __future__ import annotations

import logging
import time

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from redis.asyncio import Redis

from contract import keys
from contract.queue import TERMINAL_STATUSES, F
from contract.stats import utc_day

log = logging.getLogger(__name__)


class Limits(BaseModel):
    """Request limits of one user; 0 means "no requests at all", not "unlimited"."""

    model_config = ConfigDict(frozen=True)

    per_minute: int = Field(default=5, ge=0, le=10_000)
    per_day: int = Field(default=100, ge=0, le=1_000_000)
    inflight: int = Field(default=2, ge=0, le=1_000)


class QuotaService:
    """Limits, bans, maintenance and the audience; admins are exempt from limits, bans and maintenance."""

    def __init__(self, redis: Redis, admin_ids: frozenset[int], default_limits: Limits | None = None) -> None:
        self.redis = redis
        self.admin_ids = admin_ids
        self.default_limits = default_limits or Limits()

    def is_admin(self, user_id: int) -> bool:
        return user_id in self.admin_ids

    async def usage(self, user_id: int, now: float | None = None) -> tuple[int, int, int]:
        """(requests in the last minute, requests today, jobs in flight) for /limits."""
        now = time.time() if now is None else now
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcount(keys.quota_minute(user_id), (now - keys.QUOTA_WINDOW_S) * 1000, "+inf")
            pipe.get(keys.quota_day(user_id, utc_day(now)))
            pipe.smembers(keys.inflight(user_id))
            minute, day, members = await pipe.execute()
        inflight = 0
        for member in members:
            job_id = member.decode() if isinstance(member, bytes) else str(member)
            status = await self.redis.hget(keys.job(job_id), F.STATUS)
            if status is not None and (status.decode() if isinstance(status, bytes) else status) not in (
                TERMINAL_STATUSES
            ):
                inflight += 1
        return int(minute), int(day or 0), inflight

    # --- limits -----------------------------------------------------------------------------
    async def limits_for(self, user_id: int) -> Limits:
        return self.parse_limits(user_id, await self.redis.get(keys.quota_limits(user_id)))

    def parse_limits(self, user_id: int, raw: bytes | str | None) -> Limits:
        """Custom limits as stored, or the defaults (with a warning) when they do not validate."""
        if raw is None:
            return self.default_limits
        try:
            return Limits.model_validate_json(raw)
        except ValidationError:
            log.warning("user %s: unreadable custom limits, using defaults", user_id)
            return self.default_limits

    async def has_custom_limits(self, user_id: int) -> bool:
        return bool(await self.redis.exists(keys.quota_limits(user_id)))

    async def set_limits(self, user_id: int, limits: Limits) -> None:
        await self.redis.set(keys.quota_limits(user_id), limits.model_dump_json(), ex=keys.USER_LIMITS_TTL)

    async def reset_limits(self, user_id: int) -> None:
        await self.redis.delete(keys.quota_limits(user_id))

    # --- bans -------------------------------------------------------------------------------
    async def ban(self, user_id: int) -> bool:
        """True if the user was not banned before."""
        return bool(await self.redis.sadd(keys.BANNED, user_id))

    async def unban(self, user_id: int) -> bool:
        """True if the user was banned before."""
        return bool(await self.redis.srem(keys.BANNED, user_id))

    async def is_banned(self, user_id: int) -> bool:
        return bool(await self.redis.sismember(keys.BANNED, str(user_id)))

    # --- maintenance ------------------------------------------------------------------------
    async def set_maintenance(self, on: bool, by: int = 0) -> None:
        if on:
            await self.redis.set(keys.MAINTENANCE, f"{by}:{int(time.time())}")
        else:
            await self.redis.delete(keys.MAINTENANCE)

    async def maintenance(self) -> str | None:
        """Who turned maintenance on and when ("<admin id>:<unix time>"), or None when off."""
        raw = await self.redis.get(keys.MAINTENANCE)
        return raw.decode() if isinstance(raw, bytes) else raw

