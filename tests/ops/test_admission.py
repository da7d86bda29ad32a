"""The one admission gate on real Redis: one script decides every limit and records the job.

No worker listens on this database, so admitted jobs stay queued (and in flight).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis

from bot.infra.metrics import BotMetrics
from bot.queue import JobQueue, QueueSettings, Submission
from bot.queue.gate import Backlog, Banned, InFlight, Maintenance, PerDay, PerMinute
from bot.services.admission import Admission, refusal_text
from bot.services.quotas import Limits, QuotaService
from bot.ui.i18n import I18n
from contract import keys
from contract.animation import Animation, Camera, job_timeout_s
from contract.queue import DEFAULT_QUEUE, HIGH_QUEUE, JOB_TIMEOUT_S
from contract.spec import JobSpec, Mode
from contract.stats import utc_day

USER = 901
ADMIN = 902
T0 = 1_800_000_000.0
"""A fixed clock for the rates (the records keep the real time)."""
_prompts = itertools.count()

MakeGate = Callable[..., Admission]


def spec_for(user_id: int = USER) -> JobSpec:
    return JobSpec(mode=Mode.TEXT2IMAGE, prompt=f"a red fox {next(_prompts)}", width=512, height=512,
                   user_id=user_id, chat_id=user_id)


@pytest.fixture
async def make_gate(aredis: Redis) -> AsyncIterator[MakeGate]:
    """``make_gate(limits, client=..., admin_inflight=..., metrics=...)``: one replica's Admission."""
    queues: list[JobQueue] = []

    def make(limits: Limits, *, client: Redis | None = None, admin_inflight: int = 10,
             metrics: BotMetrics | None = None, max_backlog: int = 1000) -> Admission:
        redis = client or aredis
        queue = JobQueue(redis, QueueSettings())
        queues.append(queue)
        quotas = QuotaService(redis, frozenset({ADMIN}), limits)
        return Admission(queue, quotas, admin_inflight=admin_inflight, metrics=metrics,
                         max_backlog=max_backlog)

    yield make
    for queue in queues:
        await queue.close()


async def test_concurrent_requests_on_two_replicas_never_exceed_the_limit(
    make_gate: MakeGate, aredis: Redis, redis_url: str
) -> None:
    other = Redis.from_url(redis_url)
    try:
        limits = Limits(per_minute=5, per_day=100, inflight=100)
        replicas = [make_gate(limits), make_gate(limits, client=other)]
        outcomes = await asyncio.gather(*(replicas[i % 2].admit_and_record(spec_for()) for i in range(20)))
    finally:
        await other.aclose()
    assert sum(isinstance(o, Submission) for o in outcomes) == 5
    assert {type(o) for o in outcomes if not isinstance(o, Submission)} == {PerMinute}
    assert await aredis.zcard(keys.quota_minute(USER)) == 5
    assert await aredis.llen(f"rq:queue:{DEFAULT_QUEUE}") == 5


async def test_two_submits_at_the_in_flight_limit_admit_exactly_one(
    make_gate: MakeGate, aredis: Redis, redis_url: str
) -> None:
    """The rates and the in-flight count are one script: the last slot goes to one request only,
    and the loser is charged nothing (before, a rate slot was counted by one script and the
    in-flight slot checked again by another)."""
    other = Redis.from_url(redis_url)
    try:
        limits = Limits(per_minute=10, per_day=100, inflight=1)
        replicas = [make_gate(limits), make_gate(limits, client=other)]
        for _ in range(5):
            await aredis.delete(keys.inflight(USER))  # the previous round's job is "done"
            outcomes = await asyncio.gather(*(r.admit_and_record(spec_for()) for r in replicas))
            admitted = [o for o in outcomes if isinstance(o, Submission)]
            assert len(admitted) == 1, outcomes
            assert [o for o in outcomes if not isinstance(o, Submission)] == [InFlight(limit=1)]
            assert [m.decode() for m in await aredis.smembers(keys.inflight(USER))] == [admitted[0].job_id]
    finally:
        await other.aclose()
    quotas = replicas[0].quotas
    minute, day, _ = await quotas.usage(USER)
    assert (minute, day) == (5, 5)  # five admitted, five refusals counted nothing


async def test_sliding_window_frees_a_slot_after_a_minute(make_gate: MakeGate) -> None:
    gate = make_gate(Limits(per_minute=2, per_day=100, inflight=100))
    assert isinstance(await gate.admit_and_record(spec_for(), now=T0), Submission)
    assert isinstance(await gate.admit_and_record(spec_for(), now=T0 + 30), Submission)
    refused = await gate.admit_and_record(spec_for(), now=T0 + 59)
    assert isinstance(refused, PerMinute) and refused.limit == 2
    assert refused.retry_at == pytest.approx(T0 + 60)
    assert isinstance(await gate.admit_and_record(spec_for(), now=T0 + 60.5), Submission)


async def test_each_limit_refuses_with_its_own_type_and_message(make_gate: MakeGate, aredis: Redis) -> None:
    metrics = BotMetrics()
    gate = make_gate(Limits(per_minute=2, per_day=3, inflight=1), metrics=metrics)
    quotas = gate.quotas
    t = I18n(default_locale="en").translator("en")

    await quotas.ban(USER)
    banned = await gate.admit_and_record(spec_for(), now=T0)
    assert banned == Banned() and refusal_text(t, banned) == "You cannot use this bot."
    await quotas.unban(USER)

    await quotas.set_maintenance(True, by=ADMIN)
    down = await gate.admit_and_record(spec_for(), now=T0)
    assert down == Maintenance() and refusal_text(t, down).startswith("🛠 The bot is under maintenance")
    await quotas.set_maintenance(False)

    first = await gate.admit_and_record(spec_for(), now=T0)
    assert isinstance(first, Submission)
    busy = await gate.admit_and_record(spec_for(), now=T0 + 1)
    assert busy == InFlight(limit=1)
    assert refusal_text(t, busy) == ("⏳ You already have 1 jobs in progress. "
                                     "Send the next request when one of them is done.")
    await aredis.delete(keys.inflight(USER))
    assert isinstance(await gate.admit_and_record(spec_for(), now=T0 + 2), Submission)
    await aredis.delete(keys.inflight(USER))
    fast = await gate.admit_and_record(spec_for(), now=T0 + 3)
    assert isinstance(fast, PerMinute) and fast.limit == 2 and fast.retry_at == pytest.approx(T0 + 60)
    assert refusal_text(t, fast, now=T0 + 3) == (
        f"⏳ Too many requests: 2 per minute. Next free slot at "
        f"{time.strftime('%H:%M:%S', time.gmtime(T0 + 60))} UTC (in 57 s).")

    assert isinstance(await gate.admit_and_record(spec_for(), now=T0 + 61), Submission)
    await aredis.delete(keys.inflight(USER))
    daily = await gate.admit_and_record(spec_for(), now=T0 + 200)
    assert isinstance(daily, PerDay) and daily.limit == 3
    assert refusal_text(t, daily) == ("⏳ You have used all 3 requests for today. "
                                      "Next free slot at 00:00:00 UTC.")
    assert time.gmtime(daily.retry_at)[3:6] == (0, 0, 0) and 0 < daily.retry_at - T0 <= 24 * 3600

    assert await aredis.get(keys.quota_day(USER, utc_day(T0))) == b"3"  # refusals counted nothing
    refused = {reason: metrics.registry.get_sample_value("kb_bot_requests_refused_total", {"reason": reason})
               for reason in ("banned", "maintenance", "inflight", "per_minute", "per_day")}
    assert refused == dict.fromkeys(refused, 1.0)
    assert metrics.registry.get_sample_value("kb_bot_jobs_submitted_total", {"mode": "text2image"}) == 3.0


async def test_admins_skip_bans_maintenance_and_rates_but_have_their_own_in_flight_cap(
    make_gate: MakeGate, aredis: Redis
) -> None:
    gate = make_gate(Limits(per_minute=0, per_day=0, inflight=0), admin_inflight=2)
    await gate.quotas.ban(ADMIN)
    await gate.quotas.set_maintenance(True, by=ADMIN)
    for _ in range(2):
        assert isinstance(await gate.admit_and_record(spec_for(ADMIN)), Submission)
    assert await gate.admit_and_record(spec_for(ADMIN)) == InFlight(limit=2)
    assert await aredis.llen(f"rq:queue:{HIGH_QUEUE}") == 2
    assert not await aredis.exists(keys.quota_minute(ADMIN))  # nothing counted against rates
    assert await gate.admit_and_record(spec_for()) == Maintenance()  # users are not exempt
    await gate.quotas.set_maintenance(False)
    refused = await gate.admit_and_record(spec_for())
    assert isinstance(refused, PerMinute) and refused.limit == 0


async def test_custom_limits_apply_in_the_script_and_unreadable_ones_fall_back_to_the_defaults(
    make_gate: MakeGate, aredis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    gate = make_gate(Limits(per_minute=2, per_day=100, inflight=100))
    quotas = gate.quotas
    await quotas.set_limits(USER, Limits(per_minute=1, per_day=100, inflight=100))
    assert isinstance(await gate.admit_and_record(spec_for(), now=T0), Submission)
    refused = await gate.admit_and_record(spec_for(), now=T0 + 1)
    assert isinstance(refused, PerMinute) and refused.limit == 1

    await quotas.set_limits(USER, Limits(per_minute=3, per_day=100, inflight=100))  # an admin's change
    assert isinstance(await gate.admit_and_record(spec_for(), now=T0 + 2), Submission)
    await quotas.reset_limits(USER)  # back to the defaults: 2 a minute, both used
    back = await gate.admit_and_record(spec_for(), now=T0 + 3)
    assert isinstance(back, PerMinute) and back.limit == 2

    other = USER + 2
    await aredis.set(keys.quota_limits(other), '{"per_minute": "lots"}')
    with caplog.at_level("WARNING", logger="bot.services.quotas"):
        assert isinstance(await gate.admit_and_record(spec_for(other), now=T0), Submission)
    assert "unreadable custom limits" in caplog.text
    assert isinstance(await gate.admit_and_record(spec_for(other), now=T0 + 1), Submission)
    defaults = await gate.admit_and_record(spec_for(other), now=T0 + 2)
    assert isinstance(defaults, PerMinute) and defaults.limit == 2  # the defaults apply


async def test_a_full_backlog_refuses_new_requests_but_not_admins(make_gate: MakeGate, aredis: Redis) -> None:
    """Three jobs wait for the family (no worker here): the fourth user request is refused, counted
    nowhere, with a message that says why; an admin's still goes (to the admins' queue)."""
    gate = make_gate(Limits(per_minute=100, per_day=100, inflight=100), max_backlog=3)
    for _ in range(3):
        assert isinstance(await gate.admit_and_record(spec_for(), now=T0), Submission)
    before = await gate.quotas.usage(USER, now=T0)
    refused = await gate.admit_and_record(spec_for(), now=T0)
    assert refused == Backlog(limit=3, waiting=3)
    assert await gate.quotas.usage(USER, now=T0) == before
    assert await aredis.llen(keys.rq_queue(DEFAULT_QUEUE)) == 3
    assert "3 requests are waiting" in refusal_text(I18n().translator("en"), refused)
    assert isinstance(await gate.admit_and_record(spec_for(ADMIN), now=T0), Submission)


async def test_nothing_is_admitted_when_the_queue_cannot_take_the_job(make_gate: MakeGate,
                                                                      aredis: Redis) -> None:
    """One script writes everything or nothing: there is no later step to fail and no refund."""
    gate = make_gate(Limits(per_minute=10, per_day=100, inflight=100))
    assert isinstance(await gate.admit_and_record(spec_for(), now=T0), Submission)
    before = await gate.quotas.usage(USER, now=T0)
    # A queue key of the wrong type: the script refuses to write anything, as a real Redis error.
    await aredis.delete(f"rq:queue:{DEFAULT_QUEUE}")
    await aredis.set(f"rq:queue:{DEFAULT_QUEUE}", "not a list")
    failing = spec_for()
    with pytest.raises(Exception, match="WRONGTYPE"):
        await gate.admit_and_record(failing, now=T0 + 1)
    assert await gate.quotas.usage(USER, now=T0 + 1) == before
    assert not await aredis.exists(keys.job(failing.job_id))
    assert failing.job_id.encode() not in await aredis.smembers(keys.inflight(USER))
    await aredis.delete(f"rq:queue:{DEFAULT_QUEUE}")
    assert isinstance(await gate.admit_and_record(spec_for(), now=T0 + 2), Submission)
    assert await gate.quotas.usage(USER, now=T0 + 2) == (2, 2, 2)


def animation_spec(seconds: int, user_id: int = USER) -> JobSpec:
    return JobSpec(mode=Mode.ANIMATE, prompt=f"a red fox {next(_prompts)}", width=512, height=512,
                   user_id=user_id, chat_id=user_id,
                   animation=Animation.for_camera(Camera.ZOOM_IN, seconds=seconds))


async def test_an_animation_counts_against_the_day_by_its_frames(make_gate: MakeGate, aredis: Redis) -> None:
    """12 frames begun count as one request of the day (ANIMATION_FRAMES_PER_REQUEST); the minute
    counts requests; a refusal counts nothing; the RQ job's timeout grows with the frames."""
    gate = make_gate(Limits(per_minute=100, per_day=10, inflight=100))
    assert gate.frames_per_request == 12
    long = animation_spec(8)  # 96 frames: 8 requests
    assert isinstance(await gate.admit_and_record(long, now=T0), Submission)
    assert await gate.quotas.usage(USER, now=T0) == (1, 8, 1)
    assert int(await aredis.hget(f"rq:job:{long.job_id}", "timeout") or 0) == job_timeout_s(JOB_TIMEOUT_S, 96)
    refused = await gate.admit_and_record(animation_spec(3), now=T0 + 1)  # 3 more, 2 left
    assert isinstance(refused, PerDay) and (refused.limit, refused.weight) == (10, 3)
    text = refusal_text(I18n().translator("en"), refused, now=T0 + 1)
    assert "counts as 3 requests" in text and "10" in text
    assert "3" in refusal_text(I18n().translator("ru"), refused, now=T0 + 1)
    assert await gate.quotas.usage(USER, now=T0 + 1) == (1, 8, 1)
    assert isinstance(await gate.admit_and_record(animation_spec(2), now=T0 + 2), Submission)  # exactly 10
    still = await gate.admit_and_record(spec_for(), now=T0 + 3)
    assert isinstance(still, PerDay) and still.weight == 1
    assert "counts as" not in refusal_text(I18n().translator("en"), still, now=T0 + 3)
    assert await gate.quotas.usage(USER, now=T0 + 3) == (2, 10, 2)


async def test_a_refunded_animation_gives_its_frames_back(make_gate: MakeGate, aredis: Redis) -> None:
    gate = make_gate(Limits(per_minute=10, per_day=100, inflight=100))
    await aredis.set(f"rq:queue:{DEFAULT_QUEUE}", "not a list")  # RQ's push fails inside its MULTI
    with pytest.raises(Exception, match="WRONGTYPE"):
        await gate.admit_and_record(animation_spec(4), now=T0)
    assert await gate.quotas.usage(USER, now=T0) == (0, 0, 0)
    await aredis.delete(f"rq:queue:{DEFAULT_QUEUE}")
    assert isinstance(await gate.admit_and_record(animation_spec(4), now=T0 + 1), Submission)
    assert await gate.quotas.usage(USER, now=T0 + 1) == (1, 4, 1)
