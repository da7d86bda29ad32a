"""The admission gate: ONE atomic Redis script admits or refuses a new job, and records it.

Ban, maintenance, the per-minute and per-day rates and the jobs in flight are decided in the
same script call that, on success, counts the request, adds the job to the user's in-flight set
and writes its record: two replicas cannot both grant the last slot, and nothing decides a
limit anywhere else. The script lives here, beside the job record it writes, because it must be
atomic with that write; the rules it applies come from the caller (bot.services.admission for
the bot, the in-flight cap alone for the bare queue of tests and benches).

A refusal is a value, one type per limit (:data:`Refusal`), so the handler path renders it in
one place and never has to catch anything.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar

from contract import keys
from contract.queue import F, lua_is_terminal
from contract.spec import JobSpec
from contract.stats import utc_day

NO_CUSTOM_LIMITS = "0"
"""The script's ARGV for "the caller applied the defaults": no custom limits may be stored.
Otherwise it gets "1" followed by the exact JSON the caller validated."""

# KEYS: 1 job record, 2 in-flight set, 3 minute zset, 4 day counter, 5 banned set, 6 maintenance
#       flag, 7 custom limits
# ARGV: 1 job id, 2 created-at (as written to the record), 3 user id, 4 "1" to check bans,
#       maintenance and rates ("0": in-flight only), 5 expected custom limits, 6 now (ms),
#       7 window (ms), 8 per minute, 9 per day, 10 in-flight cap, 11 minute zset TTL (s),
#       12 day counter TTL (s), 13 in-flight set TTL (s), 14 record TTL (s), 15 job key prefix,
#       16 the job's weight on the day counter (an animation counts by its frames), 17.. the
#       record's field/value pairs
# A record that exists already is this very call's when its created-at is ours (redis-py sent
# the script again after a lost reply): accepted again, nothing counted twice; any other record
# is a reused job id. The custom limits are the caller's, validated by pydantic from the JSON under
# KEYS[7]: if that JSON is not the one passed, the script returns it and the caller validates it
# and asks again (the first request of a user with custom limits, or an admin's change between).
# In flight = members of the in-flight set whose record is not finished; members whose record is
# finished or gone (the job ended while no bot was there) do not count and are dropped, but only
# when the job is admitted: a refusal counts nothing and records nothing.
# Returns {code, extra}: see _Code; extra is the retry time (ms) for PER_MINUTE, the stored
# custom limits (or false) for LIMITS_CHANGED, the number of stale members dropped for ADMITTED.
ADMIT_LUA = f"""
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('HGET', KEYS[1], '{F.CREATED}') == ARGV[2] then
    return {{0, 0}}
  end
  return {{7, 0}}
end
local checked = ARGV[4] == '1'
local now = tonumber(ARGV[6])
if checked then
  if redis.call('SISMEMBER', KEYS[5], ARGV[3]) == 1 then
    return {{4, 0}}
  end
  if redis.call('EXISTS', KEYS[6]) == 1 then
    return {{5, 0}}
  end
  local custom = redis.call('GET', KEYS[7])
  local found = '0'
  if custom then found = '1' .. custom end
  if found ~= ARGV[5] then
    return {{6, custom}}
  end
  local window = tonumber(ARGV[7])
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - window)
  if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[8]) then
    local oldest = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
    local at = now
    if oldest[2] then at = tonumber(oldest[2]) + window end
    return {{1, at}}
  end
  if tonumber(redis.call('GET', KEYS[4]) or '0') + tonumber(ARGV[16]) > tonumber(ARGV[9]) then
    return {{2, 0}}
  end
end
local live = 0
local stale = {{}}
for _, member in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local status = redis.call('HGET', ARGV[15] .. member, '{F.STATUS}')
  if (not status) or {lua_is_terminal("status")} then
    stale[#stale + 1] = member
  else
    live = live + 1
  end
end
if live >= tonumber(ARGV[10]) then
  return {{3, 0}}
end
if checked then
  redis.call('ZADD', KEYS[3], now, ARGV[1])
  redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[11]) * 1000)
  redis.call('INCRBY', KEYS[4], tonumber(ARGV[16]))
  redis.call('EXPIRE', KEYS[4], tonumber(ARGV[12]))
end
if #stale > 0 then
  redis.call('SREM', KEYS[2], unpack(stale))
end
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[13]))
redis.call('HSET', KEYS[1], unpack(ARGV, 17, #ARGV))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[14]))
return {{0, #stale}}
"""


class _Code(IntEnum):
    """What the admission script answers (its first reply)."""

    ADMITTED = 0
    PER_MINUTE = 1
    PER_DAY = 2
    INFLIGHT = 3
    BANNED = 4
    MAINTENANCE = 5
    LIMITS_CHANGED = 6
    EXISTS = 7


# --- what one admission checks ------------------------------------------------------------------
@dataclass(frozen=True)
class Rates:
    """The per-user checks: not banned, no maintenance, and these rates."""

    per_minute: int
    per_day: int
    custom_limits: bytes | str | None = None
    """The stored custom-limits JSON these rates were validated from; None: none stored (defaults)."""
    weight: int = 1
    """Requests of the day's quota this job counts for: an animation by its frames
    (contract.animation.quota_weight), anything else one. The per-minute rate counts requests."""


@dataclass(frozen=True)
class Rules:
    """The rules of one admission: the in-flight cap always; ``rates`` for everyone but admins
    (and the bare queue of tests and benches), who skip bans, maintenance and rates."""

    inflight: int
    rates: Rates | None = None


# --- the answers --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Banned:
    """An admin banned the user."""

    reason: ClassVar[str] = "banned"


@dataclass(frozen=True)
class Maintenance:
    """Maintenance mode is on: no new jobs."""

    reason: ClassVar[str] = "maintenance"


@dataclass(frozen=True)
class PerMinute:
    """The user's requests of the last minute reached ``limit``."""

    limit: int
    retry_at: float
    """UNIX time when the oldest request of the window leaves it."""
    reason: ClassVar[str] = "per_minute"


@dataclass(frozen=True)
class PerDay:
    """The user's requests of this UTC day reached ``limit``."""

    limit: int
    retry_at: float
    """The next UTC midnight."""
    weight: int = 1
    """What the refused job would have counted for (more than one: an animation's frames)."""
    reason: ClassVar[str] = "per_day"


@dataclass(frozen=True)
class InFlight:
    """The user has ``limit`` jobs queued or running already."""

    limit: int
    reason: ClassVar[str] = "inflight"


Refusal = Banned | Maintenance | PerMinute | PerDay | InFlight
"""Why a job was not admitted; ``reason`` is its metrics label. Nothing was counted or written."""


@dataclass(frozen=True)
class LimitsChanged:
    """The stored custom limits are not the ones the rules came from: validate ``raw``, ask again."""

    raw: bytes | None
    """The JSON stored now; None when there are none (the defaults apply)."""


# --- the script call ----------------------------------------------------------------------------
def next_utc_midnight(now: float) -> float:
    day = dt.datetime.fromtimestamp(now, dt.UTC).date() + dt.timedelta(days=1)
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()


def _expected(rates: Rates | None) -> bytes | str:
    raw = rates.custom_limits if rates is not None else None
    if raw is None:
        return NO_CUSTOM_LIMITS
    return b"1" + raw if isinstance(raw, bytes) else "1" + raw


@dataclass(frozen=True)
class AdmitCall:
    """One admission script call for one job: its keys and arguments, built in one place."""

    keys: list[str]
    args: list[bytes | str | int]
    counted: bool
    """Whether an admitted call counts against the rates (what a refund must give back)."""
    weight: int = 1
    """What it added to the day counter when counted."""

    @property
    def record_key(self) -> str:
        return self.keys[0]

    @property
    def inflight_key(self) -> str:
        return self.keys[1]

    @property
    def minute_key(self) -> str:
        return self.keys[2]

    @property
    def day_key(self) -> str:
        return self.keys[3]


def admit_call(spec: JobSpec, rules: Rules, *, created: str, now: float,
               record: dict[str, str | int]) -> AdmitCall:
    """The script call admitting ``spec``; ``created`` is the record's created-at text (what makes
    a re-sent call recognisable), ``now`` the time the rates are counted at."""
    rates = rules.rates
    weight = rates.weight if rates is not None else 1
    if weight < 1:
        raise ValueError(f"a job counts for at least one request, not {weight}")
    user = spec.user_id
    script_keys = [keys.job(spec.job_id), keys.inflight(user), keys.quota_minute(user),
                   keys.quota_day(user, utc_day(now)), keys.BANNED, keys.MAINTENANCE,
                   keys.quota_limits(user)]
    args: list[bytes | str | int] = [
        spec.job_id, created, str(user), "1" if rates is not None else "0", _expected(rates),
        int(now * 1000), keys.QUOTA_WINDOW_S * 1000,
        rates.per_minute if rates is not None else 0, rates.per_day if rates is not None else 0,
        rules.inflight, keys.QUOTA_MINUTE_TTL, keys.QUOTA_DAY_TTL, keys.INFLIGHT_TTL, keys.JOB_RECORD_TTL,
        keys.job(""), weight, *(item for pair in record.items() for item in pair),
    ]
    return AdmitCall(keys=script_keys, args=args, counted=rates is not None, weight=weight)


def read_reply(reply: list[object], spec: JobSpec, rules: Rules,
               now: float) -> Refusal | LimitsChanged | None:
    """The script's reply as a value: None when admitted; a reused job id is a programming error."""
    code, extra = int(str(reply[0])), reply[1]
    if code == _Code.ADMITTED:
        return None
    if code == _Code.EXISTS:
        raise ValueError(f"job {spec.job_id} already exists; build a new JobSpec for a new job")
    if code == _Code.INFLIGHT:
        return InFlight(rules.inflight)
    if code == _Code.BANNED:
        return Banned()
    if code == _Code.MAINTENANCE:
        return Maintenance()
    if code == _Code.LIMITS_CHANGED:  # Lua's false (no key) arrives as None
        return LimitsChanged(extra if isinstance(extra, bytes) else None)
    rates = rules.rates
    if rates is None:
        raise ValueError(f"admission script refused on rates ({code}) that were not checked")
    if code == _Code.PER_MINUTE:
        return PerMinute(rates.per_minute, int(str(extra)) / 1000)
    if code == _Code.PER_DAY:
        return PerDay(rates.per_day, next_utc_midnight(now), rates.weight)
    raise ValueError(f"unknown admission script reply {code}")
