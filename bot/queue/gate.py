"""The admission gate: ONE atomic Redis script admits or refuses a new job, records it and queues it.

Ban, maintenance, the per-minute and per-day rates (a user's custom limits among them), the
family's backlog and the jobs in flight are decided in the same script call that, on success,
counts the request, adds the job to the user's in-flight set, writes its record, writes RQ's job
hash (built in Python, as RQ's own Job makes it) and pushes it onto its RQ queue, then reads its
place in line: two replicas cannot both grant the last slot, nothing decides a limit anywhere else, and
nothing has to be taken back when a later step fails, because there is none. The script lives
here, beside the job record it writes, because it must be atomic with that write; the rules it
applies come from the caller (bot.services.admission for the bot, the in-flight cap alone for the
bare queue of tests and benches).

A refusal is a value, one type per limit (:data:`Refusal`), so the handler path renders it in
one place and never has to catch anything.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import ClassVar

from contract import keys
from contract.queue import F, lua_is_terminal
from contract.spec import JobSpec
from contract.stats import utc_day

_HSET_JSON = """
local function hset_json(key, fields)
  local flat = {}
  for field, value in pairs(cjson.decode(fields)) do
    flat[#flat + 1] = field
    flat[#flat + 1] = value
  end
  redis.call('HSET', key, unpack(flat))
end
"""
"""Lua: write a hash from a JSON object of strings. One argument instead of one per field and value:
redis-py encodes and packs each argument in Python, and a job's two hashes have about 25 fields."""


def _refuse_unless_list(key: str) -> str:
    """Lua that ends a script with a WRONGTYPE error, before it writes anything, when the RQ queue at
    ``key`` is not a list: a script that failed half-way would keep what it had written."""
    return f"""local kind = redis.call('TYPE', {key})['ok']
if kind ~= 'none' and kind ~= 'list' then
  return redis.error_reply('WRONGTYPE ' .. {key} .. ' is a ' .. kind .. ', not a list: nothing admitted')
end
"""


# KEYS: 1 job record, 2 in-flight set, 3 minute zset, 4 day counter, 5 banned set, 6 maintenance
#       flag, 7 custom limits, 8 RQ job hash, 9 RQ's set of queues, 10 recent durations, then the
#       job's line of queues (its family's, admins' first: n lists), then their workers (n sets)
# ARGV: 1 job id, 2 created-at (as written to the record), 3 user id, 4 "1" to check bans,
#       maintenance, rates and the backlog ("0": in-flight only), 5 now (ms), 6 window (ms),
#       7 per minute, 8 per day, 9 in-flight cap, 10 minute zset TTL (s), 11 day counter TTL (s),
#       12 in-flight set TTL (s), 13 record TTL (s), 14 job key prefix, 15 the job's weight on the day
#       counter (an animation counts by its frames), 16 backlog cap (0: none), 17 n, 18 the job's
#       queue's place in its line (1..n), 19 the record's fields (a JSON object of strings),
#       20 the RQ job hash's text fields (the same; built in Python, as RQ's Job makes it), then its
#       binary fields' field/value pairs (the pickled call)
# A record that exists already is this very call's when its created-at is ours (redis-py sent
# the script again after a lost reply): accepted again, nothing counted twice; any other record
# is a reused job id. Custom limits (validated by pydantic when /limits stored them) replace the
# defaults; stored ones that do not read as numbers are ignored and reported (the third reply).
# In flight = members of the in-flight set whose record is not finished; members whose record is
# finished or gone (the job ended while no bot was there) do not count and are dropped, but only
# when the job is admitted: a refusal counts nothing and records nothing. The queue's type is
# checked before anything is written: a script that failed half-way would keep what it wrote.
# Returns {code, extra, unreadable}: see _Code; extra is the retry time (ms) for PER_MINUTE, the
# number of stale members dropped for ADMITTED, which then also returns the job's place in its
# queue, each queue's length, how many recent durations there are and their mean (as text: Lua
# numbers become integers in a reply) and each queue's worker count.
ADMIT_LUA = f"""{_HSET_JSON}
local n = tonumber(ARGV[17])
local own = 10 + tonumber(ARGV[18])
local function placement(code, extra, unreadable)
  local reply = {{code, extra, unreadable, redis.call('LPOS', KEYS[own], ARGV[1])}}
  for i = 1, n do reply[#reply + 1] = redis.call('LLEN', KEYS[10 + i]) end
  local durations, sum = redis.call('LRANGE', KEYS[10], 0, -1), 0
  for _, d in ipairs(durations) do sum = sum + tonumber(d) end
  reply[#reply + 1] = #durations
  reply[#reply + 1] = tostring(sum / math.max(#durations, 1))
  for i = 1, n do reply[#reply + 1] = redis.call('SCARD', KEYS[10 + n + i]) end
  return reply
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('HGET', KEYS[1], '{F.CREATED}') == ARGV[2] then
    return placement(0, 0, 0)
  end
  return {{7, 0, 0}}
end
local checked = ARGV[4] == '1'
local now = tonumber(ARGV[5])
local per_minute, per_day, inflight = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local unreadable = 0
if checked then
  if redis.call('SISMEMBER', KEYS[5], ARGV[3]) == 1 then
    return {{4, 0, 0}}
  end
  if redis.call('EXISTS', KEYS[6]) == 1 then
    return {{5, 0, 0}}
  end
  local custom = redis.call('GET', KEYS[7])
  if custom then
    local ok, limits = pcall(cjson.decode, custom)
    if ok and type(limits) == 'table' and type(limits.per_minute) == 'number'
        and type(limits.per_day) == 'number' and type(limits.inflight) == 'number' then
      per_minute, per_day, inflight = limits.per_minute, limits.per_day, limits.inflight
    else
      unreadable = 1
    end
  end
  local window = tonumber(ARGV[6])
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - window)
  if redis.call('ZCARD', KEYS[3]) >= per_minute then
    local oldest = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
    local at = now
    if oldest[2] then at = tonumber(oldest[2]) + window end
    return {{1, at, unreadable, per_minute}}
  end
  if tonumber(redis.call('GET', KEYS[4]) or '0') + tonumber(ARGV[15]) > per_day then
    return {{2, 0, unreadable, per_day}}
  end
  local backlog = tonumber(ARGV[16])
  if backlog > 0 then
    local waiting = 0
    for i = 1, n do waiting = waiting + redis.call('LLEN', KEYS[10 + i]) end
    if waiting >= backlog then
      return {{8, waiting, unreadable, backlog}}
    end
  end
end
local live = 0
local stale = {{}}
for _, member in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local status = redis.call('HGET', ARGV[14] .. member, '{F.STATUS}')
  if (not status) or {lua_is_terminal("status")} then
    stale[#stale + 1] = member
  else
    live = live + 1
  end
end
if live >= inflight then
  return {{3, 0, unreadable, inflight}}
end
{_refuse_unless_list('KEYS[own]')}if checked then
  redis.call('ZADD', KEYS[3], now, ARGV[1])
  redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[10]) * 1000)
  redis.call('INCRBY', KEYS[4], tonumber(ARGV[15]))
  redis.call('EXPIRE', KEYS[4], tonumber(ARGV[11]))
end
if #stale > 0 then
  redis.call('SREM', KEYS[2], unpack(stale))
end
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[12]))
hset_json(KEYS[1], ARGV[19])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[13]))
hset_json(KEYS[8], ARGV[20])
redis.call('HSET', KEYS[8], unpack(ARGV, 21, #ARGV))
redis.call('SADD', KEYS[9], KEYS[own])
redis.call('RPUSH', KEYS[own], ARGV[1])
return placement(0, #stale, unreadable)
"""


# KEYS: 1 banned set, 2 maintenance flag, 3 input blob, 4 the job's own record, 5 RQ job hash,
#       6 RQ's set of queues, 7 the quick queue
# ARGV: 1 job id, 2 user id, 3 "1" to check the ban and maintenance ("0": an admin's), 4 blob TTL (s),
#       5 record TTL (s), 6 the blob, 7 the record's fields (a JSON object of strings), 8 the RQ job
#       hash's text fields (the same), then its binary fields' field/value pairs
# A quick job (a voice message's transcription) has no quota of its own: the bot lets a user have
# one at a time (keys.voice_busy) before it downloads anything. Returns {code}: ADMITTED, BANNED or
# MAINTENANCE (see _Code).
ADMIT_QUICK_LUA = f"""{_HSET_JSON}
if ARGV[3] == '1' then
  if redis.call('SISMEMBER', KEYS[1], ARGV[2]) == 1 then
    return {{4}}
  end
  if redis.call('EXISTS', KEYS[2]) == 1 then
    return {{5}}
  end
end
{_refuse_unless_list('KEYS[7]')}redis.call('SET', KEYS[3], ARGV[6], 'EX', tonumber(ARGV[4]))
hset_json(KEYS[4], ARGV[7])
redis.call('EXPIRE', KEYS[4], tonumber(ARGV[5]))
hset_json(KEYS[5], ARGV[8])
redis.call('HSET', KEYS[5], unpack(ARGV, 9, #ARGV))
redis.call('SADD', KEYS[6], KEYS[7])
redis.call('RPUSH', KEYS[7], ARGV[1])
return {{0}}
"""


class _Code(IntEnum):
    """What the admission script answers (its first reply)."""

    ADMITTED = 0
    PER_MINUTE = 1
    PER_DAY = 2
    INFLIGHT = 3
    BANNED = 4
    MAINTENANCE = 5
    EXISTS = 7
    BACKLOG = 8


# --- what one admission checks ------------------------------------------------------------------
@dataclass(frozen=True)
class Rates:
    """The per-user checks: not banned, no maintenance, these rates (a user's custom limits, stored by
    /limits, replace them in the script) and the family's backlog."""

    per_minute: int
    per_day: int
    weight: int = 1
    """Requests of the day's quota this job counts for: an animation by its frames
    (contract.modes: its description's quota weight), anything else one. The per-minute rate counts
    requests."""
    backlog: int = 0
    """Refuse while this many jobs wait in the job's family's queues; 0: no cap."""


@dataclass(frozen=True)
class Rules:
    """The rules of one admission: the in-flight cap always; ``rates`` for everyone but admins
    (and the bare queue of tests and benches), who skip bans, maintenance, rates and the backlog."""

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


@dataclass(frozen=True)
class Backlog:
    """``waiting`` jobs wait for the job's model family already, ``limit`` or more: come back later."""

    limit: int
    waiting: int
    reason: ClassVar[str] = "backlog"


Refusal = Banned | Maintenance | PerMinute | PerDay | InFlight | Backlog
"""Why a job was not admitted; ``reason`` is its metrics label. Nothing was counted or written."""


# --- the script call ----------------------------------------------------------------------------
def next_utc_midnight(now: float) -> float:
    day = dt.datetime.fromtimestamp(now, dt.UTC).date() + dt.timedelta(days=1)
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()


@dataclass(frozen=True)
class AdmitCall:
    """One admission script call for one job: its keys and arguments, built in one place."""

    keys: list[str]
    args: list[bytes | str | int]

    @property
    def minute_key(self) -> str:
        return self.keys[2]

    @property
    def day_key(self) -> str:
        return self.keys[3]


def _hash_args(mapping: Mapping[str, object]) -> list[bytes | str]:
    """A hash as script arguments: its text fields as one JSON object of strings (enums by value),
    then its binary fields' field/value pairs as they are; fields set to None are left out."""
    text: dict[str, str] = {}
    binary: list[bytes | str] = []
    for field_name, value in mapping.items():
        if value is None:
            continue
        if isinstance(value, bytes):
            binary += [field_name, value]
        else:
            text[field_name] = str(value.value) if isinstance(value, Enum) else str(value)
    return [json.dumps(text, ensure_ascii=False), *binary]


def _text_hash_arg(mapping: Mapping[str, object]) -> str:
    """A hash of text fields only (a job record) as one script argument."""
    first, *binary = _hash_args(mapping)
    if binary:
        raise ValueError(f"a record holds text only, not {binary[0]!r}")
    return str(first)


def admit_call(spec: JobSpec, rules: Rules, *, created: str, now: float, record: Mapping[str, object],
               queue: str, line: tuple[str, ...], rq_job: Mapping[str, object]) -> AdmitCall:
    """The script call admitting ``spec``; ``created`` is the record's created-at text (what makes
    a re-sent call recognisable), ``now`` the time the rates are counted at. ``queue`` is the RQ queue
    it goes to, ``line`` the queues it waits in line with (its own among them) and ``rq_job`` the
    hash RQ's Job makes of it (``Job.to_dict``)."""
    rates = rules.rates
    weight = rates.weight if rates is not None else 1
    if weight < 1:
        raise ValueError(f"a job counts for at least one request, not {weight}")
    if queue not in line:
        raise ValueError(f"queue {queue} is not in its line {line}")
    user = spec.user_id
    script_keys = [keys.job(spec.job_id), keys.inflight(user), keys.quota_minute(user),
                   keys.quota_day(user, utc_day(now)), keys.BANNED, keys.MAINTENANCE,
                   keys.quota_limits(user), keys.rq_job(spec.job_id), keys.RQ_QUEUES, keys.DURATIONS,
                   *(keys.rq_queue(name) for name in line), *(keys.rq_workers(name) for name in line)]
    args: list[bytes | str | int] = [
        spec.job_id, created, str(user), "1" if rates is not None else "0",
        int(now * 1000), keys.QUOTA_WINDOW_S * 1000,
        rates.per_minute if rates is not None else 0, rates.per_day if rates is not None else 0,
        rules.inflight, keys.QUOTA_MINUTE_TTL, keys.QUOTA_DAY_TTL, keys.INFLIGHT_TTL, keys.JOB_RECORD_TTL,
        keys.job(""), weight, rates.backlog if rates is not None else 0, len(line), line.index(queue) + 1,
        _text_hash_arg(record), *_hash_args(rq_job),
    ]
    return AdmitCall(keys=script_keys, args=args)


@dataclass(frozen=True)
class Reply:
    """The script's answer: a refusal, or the admitted job's placement reads."""

    refusal: Refusal | None
    unreadable_limits: bool
    """The user's stored custom limits did not read as numbers: the defaults applied."""
    placement: list[object]
    """Admitted: LPOS in its queue, each line queue's length, the count and mean of the recent
    durations, each queue's worker count (bot.queue.client reads them as the position and the wait)."""


def read_reply(reply: list[object], spec: JobSpec, rules: Rules, now: float) -> Reply:
    """The script's reply as a value; a reused job id is a programming error."""
    code, extra = int(str(reply[0])), reply[1]
    unreadable = bool(int(str(reply[2])))
    if code == _Code.ADMITTED:
        return Reply(None, unreadable, list(reply[3:]))
    if code == _Code.EXISTS:
        raise ValueError(f"job {spec.job_id} already exists; build a new JobSpec for a new job")
    limit = int(str(reply[3])) if len(reply) > 3 else 0  # the limit that refused (custom ones included)
    refusal: Refusal
    if code == _Code.INFLIGHT:
        refusal = InFlight(limit)
    elif code == _Code.BANNED:
        refusal = Banned()
    elif code == _Code.MAINTENANCE:
        refusal = Maintenance()
    elif code == _Code.PER_MINUTE:
        refusal = PerMinute(limit, int(str(extra)) / 1000)
    elif code == _Code.PER_DAY:
        refusal = PerDay(limit, next_utc_midnight(now), rules.rates.weight if rules.rates else 1)
    elif code == _Code.BACKLOG:
        refusal = Backlog(limit, int(str(extra)))
    else:
        raise ValueError(f"unknown admission script reply {code}")
    return Reply(refusal, unreadable, [])


def admit_quick_call(job_id: str, *, user_id: int, checked: bool, queue: str, blob_key: str, blob: bytes,
                     blob_ttl: int, record_key: str, record: Mapping[str, object], record_ttl: int,
                     rq_job: Mapping[str, object]) -> AdmitCall:
    """The script call admitting a quick job (ADMIT_QUICK_LUA): its input, its record and RQ's job."""
    return AdmitCall(
        keys=[keys.BANNED, keys.MAINTENANCE, blob_key, record_key, keys.rq_job(job_id), keys.RQ_QUEUES,
              keys.rq_queue(queue)],
        args=[job_id, str(user_id), "1" if checked else "0", blob_ttl, record_ttl, blob,
              _text_hash_arg(record), *_hash_args(rq_job)],
    )


def read_quick_reply(reply: list[object]) -> Banned | Maintenance | None:
    code = int(str(reply[0]))
    if code == _Code.ADMITTED:
        return None
    if code == _Code.BANNED:
        return Banned()
    if code == _Code.MAINTENANCE:
        return Maintenance()
    raise ValueError(f"unknown quick admission reply {code}")
