"""Front end: updates per second the bot handles on the enqueue path, on one core.

A burst of ``/imagine <prompt>`` messages, each from a different user (so per-user quotas never
refuse one), goes through the service's real Dispatcher (bot.app.create_dispatcher with the
operations routers and middlewares, wired the way bot.app.run_bot wires them): i18n and settings
middlewares, quotas, the per-chat ordered isolation lock and the FSM in Redis, prompt validation,
the RQ enqueue with its job record, and the "queued" reply sent over HTTP by a real aiogram Bot.

How updates get in: ``dp.feed_update`` with a real Bot whose session talks HTTP to the project's
local Bot API server. That server and redis-server run as separate processes pinned to the other
core(s), and this process is pinned to one core, so the figure is the bot's own cost alone; polling
would add one getUpdates request per 100 updates (aiogram fetches them in batches), which is noise
next to the per-update work. ``--polling`` also runs the deployed path end to end (bot.app.run_bot
polling the server) for comparison.

The reference run, in the same process against the same servers: a bare aiogram Dispatcher whose
only handler replies with one sendMessage — the floor set by aiogram + aiohttp + the Bot API round
trip. The service's rate is reported as a ratio to it.

The floor, in the same rounds: the same bare Dispatcher doing only what an ``/imagine`` update
cannot do without in this design, with the bot's own Redis client: the update read (the bot's own
script), an admission script of the same shape as the bot's (rate, job record, queue push), the
answer with its cancel button, and the status SET. No routers, filters, middlewares, spec or texts:
what is between the floor and the service is the service's own Python.

Besides updates per wall-clock second (what other processes on a shared machine take away from),
it reports updates per CPU second of this process, the rate one free core would give. Goal ≥ 1000/s.

    python bench/bench_frontend.py                     # 3 rounds of 2000 updates each side, 1 core
    python bench/bench_frontend.py --updates 100 --warmup 20      # smoke size

Results go to bench/results/bench_frontend-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from bench import common
from bench.common import REPO

TOKEN = "777002:BENCH-frontend-token"
FIRST_USER_ID = 7_000_001
SERVER_START_TIMEOUT_S = 60.0
"""The Bot API child imports aiohttp and PIL and binds a port; a minute on busy cores."""
BURST_TIMEOUT_S = 600.0
"""2000 updates at even 20/s finish in under two minutes; ten means the bot is stuck."""
POLL_CHECK_S = 0.01
"""How often the polling run looks at Redis for the jobs it expects; its cost stays negligible."""
POLL_STALL_S = 10.0
"""In the polling run, no new job for this long means the remaining updates failed."""
CONCURRENCY = 100
"""Updates handled at once: aiogram's polling starts one task per update of a 100-update batch."""
GOAL_UPDATES_PER_S = 1000.0
PROMPT = "/imagine a red fox in the snow, bench update {n}"
PLAIN_PROMPT = "a red fox in the snow, bench update {n}"
"""``--plain``: a prompt typed as it is, as most users do: the bot's catch-all router takes it, after
every dialog's filters have been checked."""


# --------------------------------------------------------------------------- the Bot API child


def serve_botapi(users: int, port_file: Path) -> int:
    """Child process: a LocalBotAPI with ``users`` private chats; 'push FIRST COUNT' on stdin queues
    that many /imagine messages (for the polling run); EOF or SIGTERM stops it."""
    from devkit.botapi import LocalBotAPI

    async def main() -> None:
        async with LocalBotAPI(token=TOKEN, bot_username="kandinsky_bench_bot") as api:
            for uid in range(FIRST_USER_ID, FIRST_USER_ID + users):
                api.user(uid)
            port_file.write_text(api.base_url)
            loop = asyncio.get_running_loop()
            reader = asyncio.StreamReader()
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
            while line := (await reader.readline()).decode().strip():
                cmd, *rest = line.split()
                if cmd == "push":
                    first, count = int(rest[0]), int(rest[1])
                    for n in range(count):
                        await api.users[FIRST_USER_ID + first + n].send_text(PROMPT.format(n=first + n))
                    print(f"pushed {time.time()}", flush=True)
                elif cmd == "stats":
                    stats = {"calls": len(api.calls), "violations": api.violations,
                             "server_errors": api.server_errors,
                             "send_message_ok": sum(1 for c in api.calls if c.method.lower() == "sendmessage"
                                                    and c.ok)}
                    print(json.dumps(stats), flush=True)

    common.install_sigterm()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    return 0


class BotAPIChild:
    def __init__(self, users: int, workdir: Path, cpus: set[int] | None) -> None:
        self.users = users
        self.port_file = workdir / "botapi.url"
        self.cpus = cpus
        self.proc: subprocess.Popen[str] | None = None
        self.base_url = ""

    def start(self) -> BotAPIChild:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve-botapi", "--users", str(self.users), "--port-file",
             str(self.port_file)],
            cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        if self.cpus:
            os.sched_setaffinity(self.proc.pid, self.cpus)
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while not self.port_file.exists() or not self.port_file.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the local Bot API server did not start")
            time.sleep(0.05)
        self.base_url = self.port_file.read_text()
        return self

    def command(self, line: str) -> str:
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def stop(self) -> None:
        from devkit.redis_server import stop_process

        if self.proc is not None:
            stop_process(self.proc)


# --------------------------------------------------------------------------- updates


def message_update(update_id: int, user_id: int, text: str) -> dict[str, Any]:
    """The JSON Telegram sends for a private text message (a leading command marked as one)."""
    user = {"id": user_id, "is_bot": False, "first_name": "Bench", "language_code": "en"}
    command = text.split(maxsplit=1)[0]
    entities = [{"type": "bot_command", "offset": 0, "length": len(command)}] if text.startswith("/") else []
    return {
        "update_id": update_id,
        "message": {
            "message_id": 1,
            "date": int(time.time()),
            "chat": {"id": user_id, "type": "private", "first_name": "Bench"},
            "from": user,
            "text": text,
            **({"entities": entities} if entities else {}),
        },
    }


async def feed_burst(feed: Callable[[dict[str, Any]], Awaitable[Any]], first: int, count: int,
                     concurrency: int = CONCURRENCY, prompt: str = PROMPT) -> dict[str, Any]:
    """Feed ``count`` updates, ``concurrency`` at a time; wall and CPU time and per-update latency."""
    semaphore = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    errors: list[str] = []

    async def one(n: int) -> None:
        async with semaphore:
            started = time.perf_counter()
            try:
                await feed(message_update(first + n + 1, FIRST_USER_ID + first + n,
                                          prompt.format(n=first + n)))
            except Exception as exc:  # counted and reported: a failed update is not a handled one
                errors.append(f"{type(exc).__name__}: {exc}")
            latencies.append((time.perf_counter() - started) * 1e3)

    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(one(n) for n in range(count))), BURST_TIMEOUT_S)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {
        "updates": count,
        "wall_s": wall,
        "cpu_s": cpu,
        "updates_per_s": count / wall,
        "updates_per_cpu_s": count / cpu if cpu > 0 else None,
        "latency_ms": common.summary(latencies),
        "errors": len(errors),
        "first_errors": errors[:5],
        "load_average": common.load_average(),
    }


# --------------------------------------------------------------------------- the runs


def bot_settings(base_url: str, redis_url: str) -> Any:
    """The bot's settings as its environment would give them (tiny jobs, quiet logs)."""
    from bot.config import BotSettings

    values: dict[str, object] = {"BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": base_url, "REDIS_URL": redis_url,
                                 "BOT_LONG_SIDE": 512, "BOT_STEPS": 1, "BOT_PRIOR_STEPS": 2,
                                 "LOG_LEVEL": "WARNING", "BOT_CONSUMER_NAME": "bench-frontend",
                                 # No worker drains the queue here: every measured job stays queued.
                                 "QUEUE_MAX_BACKLOG": 0}
    return BotSettings(**values)  # type: ignore[arg-type]


Feed = Callable[[dict[str, Any]], Awaitable[Any]]


@contextlib.asynccontextmanager
async def service_feed(base_url: str, redis_url: str) -> AsyncIterator[tuple[Feed, Any]]:
    """The service's dispatcher, wired as bot.app.run_bot wires it, fed directly; and its Redis."""
    from redis.asyncio import Redis

    from bot.app import create_bot, create_dispatcher, create_services
    from bot.infra.heap import freeze_startup_heap

    settings = bot_settings(base_url, redis_url)
    freeze_startup_heap()  # as ``python -m bot`` does before run_bot (the reference run does not)
    redis = Redis.from_url(redis_url)
    bot = create_bot(settings, redis)
    services = await create_services(settings, redis, bot)
    dp = create_dispatcher(services)
    await services.start(bot)
    try:
        async def feed(raw: dict[str, Any]) -> Any:
            return await dp.feed_raw_update(bot, raw)

        yield feed, redis
    finally:
        await services.close()
        await bot.session.close()
        await dp.storage.close()
        with contextlib.suppress(Exception):
            await redis.aclose()


@contextlib.asynccontextmanager
async def bare_feed(base_url: str, handler: Callable[[Any], Awaitable[None]]) -> AsyncIterator[Feed]:
    """A bare aiogram Dispatcher whose one message handler is ``handler``, fed directly."""
    from aiogram import Bot, Dispatcher
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer

    bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(base_url)))
    dp = Dispatcher()
    dp.message.register(handler)
    try:
        async def feed(raw: dict[str, Any]) -> Any:
            return await dp.feed_raw_update(bot, raw)

        yield feed
    finally:
        await bot.session.close()


@contextlib.asynccontextmanager
async def reference_feed(base_url: str) -> AsyncIterator[Feed]:
    """A bare aiogram Dispatcher replying once per update: the framework and HTTP floor."""
    from aiogram.types import Message

    async def reply(message: Message) -> None:
        await message.answer("queued")

    async with bare_feed(base_url, reply) as feed:
        yield feed


FLOOR_ADMIT_LUA = """
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], 60)
redis.call('HSET', KEYS[2], 'record', ARGV[1])
redis.call('RPUSH', KEYS[3], ARGV[2])
return {0, redis.call('LLEN', KEYS[3])}
"""
"""The floor's admission: one script call with a job record, like the bot's (whose checks cost Redis,
not the bot's CPU)."""


@contextlib.asynccontextmanager
async def floor_feed(base_url: str, redis_url: str) -> AsyncIterator[Feed]:
    """A bare aiogram Dispatcher making the three Redis round trips and the one answer (with its
    button) that an ``/imagine`` update needs in this design, and nothing else."""
    from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, Message

    from bot.app import create_redis
    from bot.middlewares.update_read import UPDATE_READ_LUA
    from contract import keys

    redis = create_redis(bot_settings(base_url, redis_url))
    read, admit = redis.register_script(UPDATE_READ_LUA), redis.register_script(FLOOR_ADMIT_LUA)

    async def floor(message: Message) -> None:
        assert message.from_user is not None
        uid, job = message.from_user.id, f"{message.from_user.id:032x}"
        await read(keys=[f"floor:fsm:{uid}:state", f"floor:fsm:{uid}:data", keys.user_settings(uid),
                         keys.blocked(uid), "floor:users", "floor:today", keys.BANNED],
                   args=[uid, keys.USER_SETTINGS_TTL, keys.ACTIVE_DAY_TTL, "1"])
        record = json.dumps({"user": uid, "chat": message.chat.id, "prompt": message.text or ""})
        await admit(keys=[f"floor:rate:{uid}", f"floor:job:{job}", "floor:queue"], args=[record, job])
        button = InlineKeyboardButton(text="✖ Cancel", callback_data=f"job:cancel:{job}")
        sent = await message.answer("⏳ In the queue: <b>1</b>", parse_mode="HTML",
                                    reply_markup=InlineKeyboardMarkup(inline_keyboard=[[button]]))
        await redis.set(f"floor:status:{job}", sent.message_id, ex=600)

    try:
        async with bare_feed(base_url, floor) as feed:
            yield feed
    finally:
        with contextlib.suppress(Exception):
            await redis.aclose()


async def alternate(reference: Feed, floor: Feed, service: Feed, redis: Any,
                    args: argparse.Namespace) -> dict[str, Any]:
    """Warm all up, then ``--rounds`` bursts of each, taking turns: what the neighbours of this core
    do to its speed moves every side of a round alike, and the median of the rounds' ratios is the
    figure. Each burst's users are new ones (per-user quotas never refuse one)."""
    first = 0

    async def burst(feed: Feed, count: int) -> dict[str, Any]:
        nonlocal first
        result = await feed_burst(feed, first, count, prompt=PLAIN_PROMPT if args.plain else PROMPT)
        first += count
        return result

    for feed in (reference, floor, service):
        await burst(feed, args.warmup)
    jobs_before = await _count_jobs(redis)
    references, floors, services = [], [], []
    commands: dict[str, int] = {}
    profile_top = None
    for number in range(args.rounds):
        references.append(await burst(reference, args.updates))
        floors.append(await burst(floor, args.updates))
        profiler = cProfile.Profile() if args.profile and number == args.rounds - 1 else None
        before = await _redis_commands(redis)
        if profiler is not None:
            profiler.enable()
        services.append(await burst(service, args.updates))
        if profiler is not None:
            profiler.disable()
            profile_top = _profile_top(profiler)  # the last round's: it goes with the best one
        for name, calls in (await _redis_commands(redis)).items():
            commands[name] = commands.get(name, 0) + calls - before.get(name, 0)
    measured = args.rounds * args.updates
    # The service's own commands, less the one INFO each count adds.
    commands["info"] = commands.get("info", 0) - args.rounds
    per_update = {name: calls / measured for name, calls in commands.items() if calls > 0}
    jobs_queued = await _count_jobs(redis) - jobs_before

    def ratios(sides: list[dict[str, Any]], base: list[dict[str, Any]], key: str) -> list[float]:
        return [s[key] / b[key] for s, b in zip(sides, base, strict=True) if s[key] and b[key]]

    def best(sides: list[dict[str, Any]]) -> dict[str, Any]:
        top = max(sides, key=lambda s: s["updates_per_cpu_s"] or 0)
        top["rounds_per_cpu_s"] = [s["updates_per_cpu_s"] for s in sides]
        return top

    cpu_ratios = ratios(services, references, "updates_per_cpu_s")
    floor_ratios = ratios(floors, references, "updates_per_cpu_s")
    over_floor = ratios(services, floors, "updates_per_cpu_s")
    service_run = best(services)
    service_run.update({
        "redis_commands_per_update": dict(sorted(per_update.items(), key=lambda kv: -kv[1])),
        "redis_commands_per_update_total": sum(per_update.values()),
        "jobs_queued": jobs_queued,
        # Updates answered without a queued job: the bot's error handler caught a failure.
        "not_queued": measured - jobs_queued,
    })
    if profile_top is not None:
        service_run["profile_top"] = profile_top
    return {"reference": best(references), "floor": best(floors), "service": service_run,
            "rounds": args.rounds,
            "round_ratios_cpu": cpu_ratios,
            "service_vs_reference_cpu": statistics.median(cpu_ratios) if cpu_ratios else None,
            "service_vs_reference": statistics.median(ratios(services, references, "updates_per_s")),
            "round_floor_ratios_cpu": floor_ratios,
            "floor_vs_reference_cpu": statistics.median(floor_ratios) if floor_ratios else None,
            "service_vs_floor_cpu": statistics.median(over_floor) if over_floor else None}


async def run_polling(child: BotAPIChild, redis_url: str, first: int, count: int) -> dict[str, Any]:
    """The deployed path: bot.app.run_bot polls the server; time from push to the last job queued."""
    from redis.asyncio import Redis

    from bot.app import run_bot

    settings = bot_settings(child.base_url, redis_url)
    redis = Redis.from_url(redis_url)
    stop = asyncio.Event()
    task = asyncio.create_task(run_bot(settings, stop=stop))
    try:
        before = await _count_jobs(redis)
        await asyncio.sleep(2.0)  # startup: setMyCommands, deleteWebhook, the first long poll
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.to_thread(child.command, f"push {first} {count}")
        handled, progress_at = 0, time.perf_counter()
        while handled < count:
            now_handled = await _count_jobs(redis) - before
            if now_handled > handled:
                handled, progress_at = now_handled, time.perf_counter()
            elif task.done() or time.perf_counter() - progress_at > POLL_STALL_S:
                break  # the rest failed (the bot logged why); report what was handled
            await asyncio.sleep(POLL_CHECK_S)
        cpu, wall = time.process_time() - cpu0, progress_at - wall0
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 30)
        await redis.aclose()
    return {"updates": count, "handled": handled, "errors": count - handled, "wall_s": wall, "cpu_s": cpu,
            "updates_per_s": handled / wall, "updates_per_cpu_s": handled / cpu if cpu > 0 else None,
            "load_average": common.load_average(),
            "note": "wall time includes the server child pushing the updates and this process's Redis checks"}


async def _count_jobs(redis: Any) -> int:
    from contract.queue import DEFAULT_QUEUE, HIGH_QUEUE

    lengths = [int(await redis.llen(f"rq:queue:{name}")) for name in (DEFAULT_QUEUE, HIGH_QUEUE)]
    return sum(lengths)


def _profile_top(profiler: cProfile.Profile, limit: int = 30) -> dict[str, str]:
    """The hottest functions by own time, and the project's own functions by cumulative time."""
    out: dict[str, str] = {}
    views = (("tottime", "tottime", ""), ("project_cumulative", "cumulative", "/main/(bot|contract)/"))
    for key, sort, restrict in views:
        buf = io.StringIO()
        stats = pstats.Stats(profiler, stream=buf).sort_stats(sort)
        if restrict:
            stats.print_stats(restrict, limit)
        else:
            stats.print_stats(limit)
        out[key] = buf.getvalue()
    return out


async def _redis_commands(redis: Any) -> dict[str, int]:
    """Calls per Redis command so far (INFO commandstats), to count what one update costs."""
    info = await redis.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in info.items()}


async def run(args: argparse.Namespace) -> dict[str, Any]:


    meta = common.metadata()
    cpus = sorted(os.sched_getaffinity(0))
    bot_cpus = {cpus[0]}
    other_cpus = set(cpus[1:]) or None
    os.sched_setaffinity(0, bot_cpus)
    try:
        return await _run_pinned(args, meta, bot_cpus, other_cpus)
    finally:
        os.sched_setaffinity(0, cpus)  # a caller (a test) keeps its cores


async def _run_pinned(args: argparse.Namespace, meta: dict[str, Any], bot_cpus: set[int],
                      other_cpus: set[int] | None) -> dict[str, Any]:
    import tempfile

    from devkit.redis_server import RedisServer

    fed_users = 3 * (args.warmup + args.rounds * args.updates)  # alternate()'s, all three sides
    total_users = fed_users + (args.updates if args.polling else 0)
    report: dict[str, Any] = {
        **meta,
        "bench": "bench_frontend",
        "setup": {
            "path": "dp.feed_raw_update with a real aiogram Bot over HTTP to devkit.botapi (own process)",
            "bot_cpus": sorted(bot_cpus),
            "servers_cpus": sorted(other_cpus) if other_cpus else "shared with the bot (1 usable core)",
            "concurrency": CONCURRENCY,
            "update": f"{'a plain-text prompt' if args.plain else '/imagine <prompt>'} from a new private "
                      "user each",
        },
        "goal_updates_per_s": GOAL_UPDATES_PER_S,
    }
    with tempfile.TemporaryDirectory(prefix="bench-frontend-") as tmp, RedisServer() as redis_server:
        if redis_server.proc is not None and other_cpus:
            os.sched_setaffinity(redis_server.proc.pid, other_cpus)
        child = BotAPIChild(total_users, Path(tmp), other_cpus).start()
        try:
            async with reference_feed(child.base_url) as reference, \
                    floor_feed(child.base_url, redis_server.url) as floor, \
                    service_feed(child.base_url, redis_server.url) as (service, redis):
                report.update(await alternate(reference, floor, service, redis, args))
            service = report["service"]
            report["goal_met"] = service["updates_per_s"] >= GOAL_UPDATES_PER_S
            report["bound_by"] = bound_by(service, bot_settings(child.base_url, redis_server.url))
            if args.polling:
                report["polling"] = await run_polling(child, redis_server.url, fed_users, args.updates)
            stats = json.loads(child.command("stats"))
            report["botapi"] = stats
        finally:
            child.stop()
    report["load_average_end"] = common.load_average()
    return report


PACE_BOUND = 0.9
"""A burst whose wall rate reaches this share of the bot-wide pace was held back by the pace."""


def bound_by(service: dict[str, Any], settings: Any) -> str:
    """What limited the service run: each update answers its own private chat once, so the bot-wide
    pace (Telegram's ~30 messages/s, BOT_GLOBAL_RATE) caps the wall rate; below it, the bot's CPU did.
    Raise the pace (BOT_GLOBAL_RATE=1000 BOT_PRIVATE_CHAT_RATE=30 BOT_CHAT_BURST=20) to measure the CPU."""
    if service["updates_per_s"] >= PACE_BOUND * settings.global_rate:
        return f"the bot-wide pace of {settings.global_rate:g} messages/s (BOT_GLOBAL_RATE)"
    return "the bot's CPU"


def print_report(report: dict[str, Any]) -> None:
    print(f"bench_frontend on {report['machine']['cpu']}: bot pinned to cpu {report['setup']['bot_cpus']}, "
          f"load average at start {report['load_average_start']}")
    rows = []
    for name in ("reference", "floor", "service", "polling"):
        r = report.get(name)
        if r is None:
            continue
        lat = r.get("latency_ms", {})
        failed = r.get("not_queued", r.get("errors", 0))
        rows.append([name, r["updates"], f"{r['updates_per_s']:.0f}", f"{r['updates_per_cpu_s'] or 0:.0f}",
                     lat.get("p50", "-"), lat.get("p99", "-"), failed])
    common.print_table("updates handled (enqueue path)",
                       ["run", "updates", "per s", "per cpu s", "p50 ms", "p99 ms", "failed"], rows)
    print(f"best of {report['rounds']} rounds each; per CPU second by round: reference "
          f"{[round(x or 0) for x in report['reference']['rounds_per_cpu_s']]}, floor "
          f"{[round(x or 0) for x in report['floor']['rounds_per_cpu_s']]}, service "
          f"{[round(x or 0) for x in report['service']['rounds_per_cpu_s']]}, service / reference "
          f"{[round(x, 3) for x in report['round_ratios_cpu']]}")
    print(f"service / bare aiogram reference (median of the rounds): "
          f"{report.get('service_vs_reference_cpu') or 0:.2f}x per CPU "
          f"second, {report['service_vs_reference']:.2f}x per second of wall time; bound by "
          f"{report['bound_by']}; goal {report['goal_updates_per_s']:.0f}/s "
          f"{'met' if report['goal_met'] else 'MISSED'}")
    floor, over_floor = report.get("floor_vs_reference_cpu") or 0, report.get("service_vs_floor_cpu") or 0
    print(f"the floor (three Redis round trips and the answer, nothing else) / reference: {floor:.2f}x "
          f"per CPU second; service / floor {over_floor:.2f}x")


def main(argv: list[str] | None = None) -> int:
    parser = common.parser(__doc__)
    parser.add_argument("--updates", type=int, default=2000, help="updates in the measured burst")
    parser.add_argument("--warmup", type=int, default=200, help="unmeasured updates first")
    parser.add_argument("--rounds", type=int, default=3,
                        help="measured bursts of each side, taking turns (the median ratio is reported)")
    parser.add_argument("--plain", action="store_true", help="plain-text prompts instead of /imagine")
    parser.add_argument("--polling", action="store_true", help="also run the deployed polling path")
    parser.add_argument("--profile", action="store_true", help="cProfile the service burst (slower)")
    parser.add_argument("--serve-botapi", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--users", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--port-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_botapi:
        return serve_botapi(args.users, args.port_file)
    if args.updates < 1 or args.warmup < 0 or args.rounds < 1:
        parser.error("--updates and --rounds must be at least 1 and --warmup at least 0")
    return common.run_and_write(run, args, print_report, "bench_frontend")


if __name__ == "__main__":
    sys.exit(main())
