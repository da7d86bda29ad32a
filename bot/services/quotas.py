"""Per-user rate limits, the ban list and the maintenance flag, all held in Redis.

Everything lives in Redis (never in process memory) so several bot replicas share one view:
a user who sends five requests to two replicas is counted five times, not twice two and a half.
The check-and-count step is one Lua script, so two replicas cannot both grant the last slot.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from redis.asyncio import Redis

from contract import keys
from contract.queue import TERMINAL_STATUSES, F, lua_is_terminal

log = logging.getLogger(__name__)


def utc_day(now: float) -> str:
    return dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y%m%d")


def next_utc_midnight(now: float) -> float:
    day = dt.datetime.fromtimestamp(now, dt.UTC).date() + dt.timedelta(days=1)
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()


class Limits(BaseModel):
    """Request limits of one user; 0 means "no requests at all", not "unlimited"."""

    model_config = ConfigDict(frozen=True)

    per_minute: int = Field(default=5, ge=0, le=10_000)
    per_day: int = Field(default=100, ge=0, le=1_000_000)
    inflight: int = Field(default=2, ge=0, le=1_000)


class Verdict(StrEnum):
    OK = "ok"
    BANNED = "banned"
    MAINTENANCE = "maintenance"
    PER_MINUTE = "per_minute"
    PER_DAY = "per_day"
    INFLIGHT = "inflight"


@dataclass(frozen=True)
class Decision:
    """The answer for one new request; ``retry_at`` is a UNIX time when a limit frees up."""

    verdict: Verdict
    retry_at: float | None = None
    limits: Limits | None = None
    ticket: str | None = None
    """Identifies the counted request, so :meth:`QuotaService.refund` can give the slot back."""

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.OK


NO_CUSTOM_LIMITS = "0"
"""What the admit script's caller expects to find under the limits key when it passes the defaults:
the key is absent. Otherwise it passes "1" followed by the exact JSON it validated."""

# KEYS: minute zset, day counter, inflight set, banned set, maintenance flag, custom limits
# ARGV: now_ms, per_minute, per_day, max_inflight, member, minute_ttl, day_ttl, window_ms, job key prefix,
#       user id, expected custom limits (NO_CUSTOM_LIMITS, or "1" .. the JSON the limits came from)
# Bans and maintenance are checked first, in the same atomic step as the counting. The limits are
# the caller's: they came from Limits' own validation of the JSON under KEYS[6], so the script only
# checks that this JSON is still the one there; if not it returns {6, json or false} and the caller
# validates the new JSON and asks again (the first request of a user with custom limits, or an
# admin's change in between). Counting happens only with the right limits.
# In flight = members of the user's in-flight set whose job record is not finished: entries of
# jobs that ended while no bot was there to clean up must not block the user.
# Returns {code, retry_ms}: 0 granted, 1 per-minute, 2 per-day, 3 in-flight, 4 banned,
# 5 maintenance, 6 other limits (then {6, custom limits JSON or false}).
_ADMIT_LUA = """
if redis.call('SISMEMBER', KEYS[4], ARGV[10]) == 1 then
  return {4, 0}
end
if redis.call('EXISTS', KEYS[5]) == 1 then
  return {5, 0}
end
local custom = redis.call('GET', KEYS[6])
local found = '0'
if custom then found = '1' .. custom end
if found ~= ARGV[11] then
  return {6, custom}
end
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[8])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local per_minute = tonumber(ARGV[2])
if redis.call('ZCARD', KEYS[1]) >= per_minute then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  local at = now
  if oldest[2] then at = tonumber(oldest[2]) + window end
  return {1, at}
end
local used = tonumber(redis.call('GET', KEYS[2]) or '0')
if used >= tonumber(ARGV[3]) then
  return {2, 0}
end
local live = 0
for _, job_id in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  local status = redis.call('HGET', ARGV[9] .. job_id, '""" + F.STATUS + """')
  if status and not """ + lua_is_terminal("status") + """ then
    live = live + 1
  end
end
if live >= tonumber(ARGV[4]) then
  return {3, 0}
end
redis.call('ZADD', KEYS[1], now, ARGV[5])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[6]) * 1000)
redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[7]))
return {0, 0}
"""
_LIMITS_CHANGED = 6
"""The admit script's code for "the custom limits are not the ones you passed"."""


def _expect(raw: bytes | str) -> bytes | str:
    """The admit script's ARGV for "the custom limits are exactly this JSON" (bytes stay bytes)."""
    return b"1" + raw if isinstance(raw, bytes) else "1" + raw


class QuotaService:
    """Admits or refuses new requests; admins are exempt from limits, bans and maintenance."""

    def __init__(self, redis: Redis, admin_ids: frozenset[int], default_limits: Limits | None = None) -> None:
        self.redis = redis
        self.admin_ids = admin_ids
        self.default_limits = default_limits or Limits()
        self._admit = redis.register_script(_ADMIT_LUA)
        self._seq = 0

    def is_admin(self, user_id: int) -> bool:
        return user_id in self.admin_ids

    # --- who may ask at all ---------------------------------------------------------------
    async def admit(self, user_id: int, now: float | None = None) -> Decision:
        """Count one new request if every limit allows it; refuse (counting nothing) otherwise.

        Ban, maintenance, custom limits and the count are one script call (one round trip) for
        users on the default limits; a user with custom limits takes a second call (see _ADMIT_LUA).
        """
        if self.is_admin(user_id):
            return Decision(Verdict.OK)
        now = time.time() if now is None else now
        self._seq += 1
        member = f"{now:.6f}:{id(self)}:{self._seq}"
        day = utc_day(now)
        script_keys = [keys.quota_minute(user_id), keys.quota_day(user_id, day), keys.inflight(user_id),
                       keys.BANNED, keys.MAINTENANCE, keys.quota_limits(user_id)]
        limits = self.default_limits
        expected: bytes | str = NO_CUSTOM_LIMITS
        while True:  # a second pass only when the custom limits differ from the ones passed
            code, extra = await self._admit(
                keys=script_keys,
                args=[int(now * 1000), limits.per_minute, limits.per_day, limits.inflight, member,
                      keys.QUOTA_MINUTE_TTL, keys.QUOTA_DAY_TTL, keys.QUOTA_WINDOW_S * 1000, keys.job(""),
                      str(user_id), expected],
            )
            code = int(code)
            if code != _LIMITS_CHANGED:
                break
            raw = None if extra is None or extra is False else extra  # Lua's false: no key
            limits = self._parse_limits(user_id, raw)
            expected = NO_CUSTOM_LIMITS if raw is None else _expect(raw)
        if code == 4:
            return Decision(Verdict.BANNED)
        if code == 5:
            return Decision(Verdict.MAINTENANCE)
        if code == 0:
            return Decision(Verdict.OK, limits=limits, ticket=f"{day}|{member}")
        if code == 1:
            return Decision(Verdict.PER_MINUTE, retry_at=int(extra) / 1000, limits=limits)
        if code == 2:
            return Decision(Verdict.PER_DAY, retry_at=next_utc_midnight(now), limits=limits)
        return Decision(Verdict.INFLIGHT, limits=limits)

    async def refund(self, user_id: int, decision: Decision) -> None:
        """Give back a slot counted for a request that was then not queued after all."""
        if decision.ticket is None:
            return
        day, member = decision.ticket.split("|", 1)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(keys.quota_minute(user_id), member)
            pipe.decr(keys.quota_day(user_id, day))
            await pipe.execute()

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
        return self._parse_limits(user_id, await self.redis.get(keys.quota_limits(user_id)))

    def _parse_limits(self, user_id: int, raw: bytes | str | None) -> Limits:
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

    # --- audience ---------------------------------------------------------------------------
    async def seen(self, user_id: int, now: float | None = None) -> bool:
        """Remember a user for broadcasts and /stats (total and active today); True if banned.

        The ban check rides along in the same round trip: the middleware needs both on every update.
        """
        now = time.time() if now is None else now
        day_set = keys.active_users(utc_day(now))
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.sadd(keys.USERS, user_id)
            pipe.sadd(day_set, user_id)
            pipe.expire(day_set, keys.ACTIVE_DAY_TTL)
            pipe.sismember(keys.BANNED, str(user_id))
            replies = await pipe.execute()
        return bool(replies[-1])
