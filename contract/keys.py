"""Redis key names and lifetimes shared by the bot and the workers.

Every key written has a TTL (or is a bounded stream), so Redis memory stays bounded even when
nobody ever reads a result. Keys are prefixed so one Redis can host several deployments.
"""

from __future__ import annotations

PREFIX = "kb"

# --- lifetimes (seconds), each with its reason -------------------------------------------------
INPUT_BLOB_TTL = 6 * 3600
"""Inputs must outlive the longest queue wait plus retries, but are user photos: keep them briefly."""
JOB_RECORD_TTL = 7 * 24 * 3600
"""Job records back /stats, "again" and "variations" buttons for a week."""
RESULT_TTL = 24 * 3600
"""Result bytes back the "full-size file" and "add to pack" buttons for a day."""
PROGRESS_TTL = 3600
"""Latest progress of a job; only useful while the job runs."""
PREVIEW_TTL = 3600
"""A job's latest live preview: shown while the job runs, useless after (it is overwritten each time)."""
DELIVERED_TTL = 7 * 24 * 3600
"""Dedupe marker: longer than any redelivery window of the events stream."""
STATUS_TTL = 24 * 3600
"""Where a job's status message is; only needed until the job is delivered (a day at most)."""
INFLIGHT_TTL = INPUT_BLOB_TTL
"""A user's in-flight set outlives no job that can still run: inputs expire with it anyway."""
CANCEL_FLAG_TTL = 3600
"""A cancel request only matters while the job may still start or run."""
EVENTS_STREAM_MAXLEN = 100_000
"""Approximate cap on the delivery stream; acked entries beyond it are trimmed."""


def blob(blob_id: str) -> str:
    return f"{PREFIX}:blob:{blob_id}"


def job(job_id: str) -> str:
    """Hash: spec (JSON), status, timestamps, worker, error."""
    return f"{PREFIX}:job:{job_id}"


def result(job_id: str, index: int, fmt: str) -> str:
    return f"{PREFIX}:result:{job_id}:{index}.{fmt}"


def progress(job_id: str) -> str:
    return f"{PREFIX}:progress:{job_id}"


def preview(job_id: str) -> str:
    """A small JPEG of the job so far (the latest live preview; each one overwrites the last)."""
    return f"{PREFIX}:preview:{job_id}"


def delivered(job_id: str) -> str:
    return f"{PREFIX}:delivered:{job_id}"


def cancel_flag(job_id: str) -> str:
    return f"{PREFIX}:cancel:{job_id}"


def status(job_id: str) -> str:
    """"<chat id>:<message id>:<1 if a photo>": the "queued" message that delivery edits into progress."""
    return f"{PREFIX}:status:{job_id}"


def inflight(user_id: int) -> str:
    """Set of a user's job ids that are queued or running."""
    return f"{PREFIX}:inflight:{user_id}"


EVENTS_STREAM = f"{PREFIX}:events"
"""Worker → bot: progress, result and failure events (a consumer group reads it)."""
EVENTS_GROUP = "bot"

# --- admission: quotas, bans, maintenance (one Lua script reads and writes them; see bot.queue.gate)
QUOTA_WINDOW_S = 60
"""The per-minute limit is a sliding window of this length."""
QUOTA_MINUTE_TTL = QUOTA_WINDOW_S + 5
"""The window's sorted set is useless once its newest entry is older than the window."""
QUOTA_DAY_TTL = 2 * 24 * 3600
"""A per-day counter only matters during its UTC day; two days covers any clock skew."""
USER_LIMITS_TTL = 365 * 24 * 3600
"""A custom limit an admin set for a user lapses after a year without being renewed."""
BAN_NOTICE_TTL = 3600
"""A banned user is told once an hour at most; answering every message would let them make us spam."""

BANNED = f"{PREFIX}:banned"
"""Set of banned user ids (no TTL: a ban lasts until an admin lifts it)."""
MAINTENANCE = f"{PREFIX}:maintenance"
"""Present while maintenance mode is on; the value is who turned it on and when."""
REPLICATION_FENCE = f"{PREFIX}:fence"
"""Written right before WAIT under Sentinel (contract.redisconn.replicate): its value is only a
log aid, its replication offset is what WAIT waits for; TTL contract.redisconn.FENCE_TTL_S."""


def quota_minute(user_id: int) -> str:
    """Sorted set: the user's admitted job ids of the last minute, scored by time (ms)."""
    return f"{PREFIX}:quota:{user_id}:minute"


def quota_day(user_id: int, day: str) -> str:
    """Counter: the user's admitted jobs on one UTC day (YYYYMMDD)."""
    return f"{PREFIX}:quota:{user_id}:day:{day}"


def quota_limits(user_id: int) -> str:
    """JSON of the user's custom limits, set by an admin."""
    return f"{PREFIX}:quota:{user_id}:limits"


def ban_notice(user_id: int) -> str:
    """Present while a banned user has been told recently (see BAN_NOTICE_TTL)."""
    return f"{PREFIX}:quota:{user_id}:bannotice"


# --- audience: who wrote to the bot (broadcasts, /stats) ------------------------------------------
ACTIVE_DAY_TTL = 8 * 24 * 3600
"""Daily active-user sets back /stats for a week."""
USERS = f"{PREFIX}:users"
"""Set of every user id that ever wrote to the bot: the audience of a broadcast and /stats."""


def active_users(day: str) -> str:
    """Set of the user ids that wrote to the bot on one UTC day (YYYYMMDD)."""
    return f"{PREFIX}:active:{day}"


# --- admins: action log and broadcasts ------------------------------------------------------------
ADMIN_LOG = f"{PREFIX}:adminlog"
"""List of JSON entries (newest first): who did what and when."""
ADMIN_LOG_KEEP = 10_000
"""Entries kept in the action log; older ones are trimmed (the process log keeps them too)."""
BROADCAST_TTL = 30 * 24 * 3600
"""A finished broadcast's record and audience are kept a month for questions about it."""
PENDING_BROADCAST_TTL = 600
"""A broadcast text waits this long for the admin's confirmation, then must be sent again."""
BROADCASTS_ACTIVE = f"{PREFIX}:broadcasts:active"
"""Set of broadcast ids not finished yet: what a starting bot resumes."""


def broadcast(broadcast_id: str) -> str:
    """Hash: text, admin, chat, status, cursor, total, sent, blocked, failed, created_at, finished_at."""
    return f"{PREFIX}:broadcast:{broadcast_id}"


def broadcast_targets(broadcast_id: str) -> str:
    """List of user ids: the audience frozen when the broadcast started."""
    return f"{PREFIX}:broadcast:{broadcast_id}:targets"


def broadcast_lease(broadcast_id: str) -> str:
    """Token of the replica sending the broadcast, with a TTL it renews (the lease)."""
    return f"{PREFIX}:broadcast:{broadcast_id}:lease"


def pending_broadcast(admin_id: int) -> str:
    """A broadcast text waiting for its admin's confirmation (PENDING_BROADCAST_TTL)."""
    return f"{PREFIX}:broadcast:pending:{admin_id}"


# --- users: settings, the dialog, sticker packs -------------------------------------------------
USER_SETTINGS_TTL = 365 * 24 * 3600
"""Settings of a user silent for a year are dropped; every read by an active user renews them."""
BLOCKED_TTL = 90 * 24 * 3600
"""A user who blocked the bot is skipped for a while; writing to the bot again clears the mark."""
DIALOG_TTL = 24 * 3600
"""A dialog left half-way (one photo of two sent) is forgotten after a day."""
FSM_PREFIX = f"{PREFIX}:fsm"
"""aiogram's RedisStorage and event isolation keys (dialog state and data, per-chat locks)."""
PACK_RECORD_TTL = 2 * 365 * 24 * 3600
"""Pack records outlive any plausible pause; every use renews them."""
PACK_ADDED_TTL = RESULT_TTL
"""A sticker can only be added while its result exists; the "already added" mark lives as long."""


def user_settings(user_id: int) -> str:
    """JSON of the user's /settings choices."""
    return f"{PREFIX}:user:{user_id}:settings"


def blocked(user_id: int) -> str:
    """Present while the user has blocked the bot (BLOCKED_TTL)."""
    return f"{PREFIX}:user:{user_id}:blocked"


def user_packs(user_id: int) -> str:
    """List of the user's pack names, oldest first."""
    return f"{PREFIX}:user:{user_id}:packs"


def user_current_pack(user_id: int) -> str:
    """Name of the pack that receives the user's next sticker."""
    return f"{PREFIX}:user:{user_id}:pack:current"


def user_pack_seq(user_id: int) -> str:
    """Counter behind pack names, so a name is never tried twice for one user."""
    return f"{PREFIX}:user:{user_id}:pack:seq"


def user_pack_lock(user_id: int) -> str:
    """One pack operation per user at a time."""
    return f"{PREFIX}:user:{user_id}:pack:lock"


def pack(name: str) -> str:
    """Hash: owner, title, count, created_at."""
    return f"{PREFIX}:pack:{name.lower()}"


def pack_added(job_id: str, index: int) -> str:
    """Pack name a result was added to: pressing the button twice adds it once."""
    return f"{PREFIX}:packadd:{job_id}:{index}"


# --- model families: a request the user's family cannot run, offered to another (bot.services.families) -----
SWITCH_OFFER_TTL = 3600
"""The "run this one with the other model" button works for an hour (its inputs live longer)."""


def switch_offer(token: str) -> str:
    """JSON of a bot.services.switches.PendingSwitch: the request, as a spec of the family that can run it."""
    return f"{PREFIX}:switch:{token}"


# --- voice messages: transcription jobs (contract.language) ---------------------------------------
VOICE_TTL = DIALOG_TTL
"""A transcription's record backs its "draw it" / "edit" buttons as long as a dialog lives."""
VOICE_BLOB_TTL = 3600
"""A recording only has to wait for a transcription job (seconds on the high queue), then it is
a user's voice: keep it briefly."""
VOICE_BUSY_TTL = 300
"""One transcription per user at a time; the mark lapses by itself if its event is ever lost."""


def voice(transcription_id: str) -> str:
    """Hash: user_id, chat_id, locale, mode, reply_to, blob, status message, text, used."""
    return f"{PREFIX}:voice:{transcription_id}"


def voice_busy(user_id: int) -> str:
    """The user's transcription in flight (VOICE_BUSY_TTL)."""
    return f"{PREFIX}:voice:busy:{user_id}"


# --- the send path: flood control shared by every bot replica (bot.telegram.flood) -------------------------
FLOOD_SLACK_MS = 1000
"""A pacing key outlives its next free slot by this: past it the chat is idle and the key is noise."""
FLOOD_GLOBAL = "all"
"""The chat name of the bot-wide budget (Telegram's ~30 messages a second over all chats)."""


def flood_pace(chat: int | str) -> str:
    """When the chat's (or FLOOD_GLOBAL's) next message may go, in Redis-clock ms (GCRA)."""
    return f"{PREFIX}:flood:pace:{chat}"


def flood_hold(chat: int | str) -> str:
    """Until when Telegram's retry_after holds the chat, in Redis-clock ms (expires with it)."""
    return f"{PREFIX}:flood:hold:{chat}"


# --- statistics: counters the workers write, /stats and the metrics read ------------------------
STATS_DAY_TTL = 8 * 24 * 3600
"""Per-day counters back "today" in /stats; a week of them is kept for looking back."""
STATS_TOTAL = f"{PREFIX}:stats:jobs:total"
"""Hash "<mode>:<outcome>" -> count since the start (no TTL: a handful of fields)."""
STATS_FAMILIES_TOTAL = f"{PREFIX}:stats:families:total"
"""Hash "<family>:<outcome>" -> count since the start: which model made how many images."""


def stats_day(day: str) -> str:
    """Hash "<mode>:<outcome>" -> count for one UTC day (YYYYMMDD)."""
    return f"{PREFIX}:stats:jobs:{day}"


def stats_families_day(day: str) -> str:
    """Hash "<family>:<outcome>" -> count for one UTC day (YYYYMMDD)."""
    return f"{PREFIX}:stats:families:{day}"


def stats_durations(mode: str) -> str:
    """List of the latest job durations (seconds) of a mode, newest first."""
    return f"{PREFIX}:stats:durations:{mode}"


DURATIONS = f"{PREFIX}:durations"
"""Recent run times of finished jobs (seconds, newest first): the wait estimate reads them."""
DURATIONS_TTL = JOB_RECORD_TTL
"""An estimate from samples older than a week says nothing about today's hardware."""
WAIT_TIMES = f"{PREFIX}:waits"
"""Recent queue waits (enqueue → start, seconds, newest first), for /stats (TTL: DURATIONS_TTL)."""

WORKER_INFO_TTL = 120
"""Device details are refreshed by a live worker; a dead worker's entry vanishes by itself."""


def worker_info(name: str) -> str:
    """Hash a worker keeps fresh (device, host): what RQ's own worker record lacks."""
    return f"{PREFIX}:workerinfo:{name}"


LORA_STYLES_TTL = WORKER_INFO_TTL
"""Styles are refreshed with the worker's info: when the last worker holding them is gone, so are they."""


def lora_styles(family: str) -> str:
    """Hash name -> style JSON (contract.loras) of the LoRA styles live workers of ``family`` loaded."""
    return f"{PREFIX}:loras:{family}"


def delivering(job_id: str) -> str:
    """Short lease a bot consumer holds while it hands a terminal event to Telegram."""
    return f"{PREFIX}:delivering:{job_id}"


# --- RQ's own keys (rq.Queue names them; tests/contract/test_keys.py holds these equal) -----------
RQ_QUEUE_PREFIX = "rq:queue:"
"""rq.Queue.redis_queue_namespace_prefix: an RQ queue's list of job ids is this plus its name."""


def rq_queue(name: str) -> str:
    """The Redis list RQ keeps a queue's waiting job ids in."""
    return f"{RQ_QUEUE_PREFIX}{name}"


RQ_QUEUES = "rq:queues"
"""rq.Queue.redis_queues_keys: the set of every queue's key (``Queue.all`` reads it)."""
RQ_JOB_PREFIX = "rq:job:"
"""rq.job.Job.redis_job_namespace_prefix: a job's hash is this plus its id."""
RQ_WORKERS_BY_QUEUE = "rq:workers:%s"
"""rq.worker_registration.WORKERS_BY_QUEUE_KEY: the workers listening on a queue."""


def rq_job(job_id: str) -> str:
    return f"{RQ_JOB_PREFIX}{job_id}"


def rq_workers(queue_name: str) -> str:
    return RQ_WORKERS_BY_QUEUE % queue_name
