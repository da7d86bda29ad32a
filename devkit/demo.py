"""``make demo`` / ``python -m devkit.demo``: the whole service on this machine, one command.

- Redis: ``REDIS_URL`` if set, else a real redis-server started on a free local port.
- Models: the ``KANDINSKY_*`` settings if any is set; else, on a machine with a CUDA GPU that
  reaches the Hugging Face Hub, the public checkpoints (fetched once into the cache by
  ``python -m worker prefetch``, with its progress bars); else (offline, or no GPU) the tiny
  random-weight bundle written once under ``.cache/``, said in one line: its images are noise,
  every code path is real. ``--models real|tiny`` (or ``DEMO_MODELS``) overrides the choice.
- One worker process (``python -m worker``), and the bot.
- With ``BOT_TOKEN`` the bot talks to Telegram (``TELEGRAM_API_URL``) until Ctrl-C.
  Without it the bot talks to the project's local Bot API server, a scripted user goes through
  every mode, and an HTML report with the transcript and every image is written.

Everything started here is stopped on the way out, also on Ctrl-C or an error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlparse

from contract.families import Family, describe_family
from contract.queue import family_queue
from devkit.audio import make_voice
from devkit.redis_server import RedisServer
from devkit.stack import REPO, WorkerProcess, ensure_tiny_bundle, real_models_configured

log = logging.getLogger("demo")

DEMO_TOKEN = "100001:LOCAL-DEMO-TOKEN"
DEMO_USER_ID = 4242
"""The scripted user; also the admin, so the transcript can show /stats."""
STEP_TIMEOUT_S = 300.0
"""One demo step (a job on the CPU) finishes in seconds on the tiny bundle; real weights on a CPU
take minutes."""
DEFAULT_REPORT_DIR = REPO / "demo-report"
HUB_URL = "https://huggingface.co"
"""Where the public checkpoints come from (``HF_ENDPOINT`` overrides it, as for huggingface_hub)."""
HUB_PROBE_TIMEOUT_S = 3.0
"""A TCP connect to the hub answers in well under a second online; offline it fails at once (no
DNS) or hangs, and the demo must not wait on it."""
PREFETCH_TIMEOUT_S = 3 * 3600
"""The public checkpoints are about 20 GB: hours on a slow line, after which something is wrong."""


class ModelChoice(StrEnum):
    CONFIGURED = "configured"  # the operator's KANDINSKY_* settings
    REAL = "real"  # the public checkpoints (defaults of EngineSettings)
    TINY = "tiny"  # the offline random-weight bundle


@dataclass
class Entry:
    who: str  # "user" or "bot"
    text: str = ""
    image: str | None = None  # file name inside the report folder
    note: str = ""
    video: str | None = None  # an animation's MP4, played in the page


@dataclass
class Transcript:
    out_dir: Path
    entries: list[Entry] = field(default_factory=list)
    _n: int = 0

    def save_image(self, data: bytes, suffix: str) -> str:
        self._n += 1
        name = f"{self._n:02d}.{suffix}"
        (self.out_dir / name).write_bytes(data)
        return name

    def write_html(self, title: str) -> Path:
        rows = []
        for e in self.entries:
            # Bot text is Telegram HTML that the bot already escaped; the user's text is raw.
            body = (html.escape(e.text) if e.who == "user" else e.text).replace("\n", "<br>")
            img = f'<div><img src="{e.image}" alt=""></div>' if e.image else ""
            if e.video:
                img += f'<div><video src="{e.video}" autoplay loop muted playsinline controls></video></div>'
            note = f'<div class="note">{html.escape(e.note)}</div>' if e.note else ""
            rows.append(f'<div class="msg {e.who}">{note}<div>{body}</div>{img}</div>')
        page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; background: #e6ebee; max-width: 760px; margin: 2em auto; }}
.msg {{ border-radius: 12px; padding: 8px 12px; margin: 8px 0; max-width: 80%; background: #fff; }}
.user {{ margin-left: auto; background: #dcf8c6; }}
.note {{ color: #888; font-size: 12px; }}
img, video {{ max-width: 100%; max-height: 360px; margin-top: 6px; border-radius: 8px;
       background: repeating-conic-gradient(#ccc 0 25%, #fff 0 50%) 50% / 16px 16px; }}
code {{ background: #eee; padding: 0 3px; }}
</style></head><body><h1>{html.escape(title)}</h1>
{"".join(rows)}
</body></html>
"""
        path = self.out_dir / "index.html"
        path.write_text(page, encoding="utf-8")
        return path


@contextlib.contextmanager
def _redis() -> Iterator[str]:
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    with RedisServer(appendonly=False) as server:
        log.info("started redis-server on port %s", server.port)
        yield server.url


def hub_reachable(url: str | None = None, timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the hub opens (nothing is sent or downloaded)."""
    parsed = urlparse(url or os.environ.get("HF_ENDPOINT") or HUB_URL)
    host = parsed.hostname or ""
    port = parsed.port or (443 if parsed.scheme != "http" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def cuda_available() -> bool:
    import torch  # the worker extra is installed wherever the demo runs

    return bool(torch.cuda.is_available())


def choose_models(requested: str, env: Mapping[str, str], *, gpu: Callable[[], bool],
                  online: Callable[[], bool]) -> tuple[ModelChoice, str]:
    """Which models the demo runs, and the one line that says why (probes are called only when needed)."""
    if real_models_configured(env):
        return ModelChoice.CONFIGURED, "models: the configured KANDINSKY_* settings"
    if requested == ModelChoice.TINY:
        return ModelChoice.TINY, "models: the tiny random-weight bundle (asked for; images are noise)"
    if requested == ModelChoice.REAL:
        return ModelChoice.REAL, "models: the public Kandinsky 2.2 checkpoints (asked for)"
    if env.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        why = "HF_HUB_OFFLINE is set"
    elif not gpu():
        why = "no CUDA GPU here (real models on a CPU take minutes per image)"
    elif not online():
        why = "the Hugging Face Hub is not reachable"
    else:
        return ModelChoice.REAL, "models: the public Kandinsky 2.2 checkpoints (GPU and network found)"
    return ModelChoice.TINY, (f"models: the tiny random-weight bundle, images are noise ({why}; "
                              "--models real to override)")


def _model_env(choice: ModelChoice) -> dict[str, str]:
    """The worker's model settings for ``choice``; fetches the public checkpoints first for REAL."""
    if choice is ModelChoice.CONFIGURED:
        return {}
    if choice is ModelChoice.REAL:
        log.info("fetching the public checkpoints into the model cache (once; later runs reuse it)")
        subprocess.run([sys.executable, "-m", "worker", "prefetch"], cwd=REPO, check=True,
                       timeout=PREFETCH_TIMEOUT_S)
        return {}
    bundle = ensure_tiny_bundle()
    # Kandinsky 5.0's 24 frames a second would make 121 noise frames at 5 s: one a second shows the path.
    # SDXL's /settings offers the bundle's two LoRA styles.
    return {"KANDINSKY_MODEL_DIR": str(bundle), "HF_HUB_OFFLINE": "1", "KANDINSKY_K5_VIDEO_FPS": "1",
            "KANDINSKY_LORA_DIR": str(bundle / "loras")}


def _photo(width: int, height: int, hue: int) -> bytes:
    """A colourful gradient standing in for a user's photo."""
    import io

    from PIL import Image

    img = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    r, g, b = img.split()
    flipped = b.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    img = Image.merge("RGB", (r.point(lambda v: (v + hue) % 256), g.rotate(90), flipped))
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=90)
    return out.getvalue()


K3_TITLE = describe_family(Family.KANDINSKY3).title
K22_TITLE = describe_family(Family.KANDINSKY22).title


async def _worker_holds(redis_url: str, family: Family) -> bool:
    """Whether a live worker listens to ``family``'s queue (a GPU too small for it holds none)."""
    import redis.asyncio as aioredis
    from rq.worker_registration import WORKERS_BY_QUEUE_KEY

    client = aioredis.Redis.from_url(redis_url)
    try:
        return bool(await client.scard(WORKERS_BY_QUEUE_KEY % family_queue(family, high=False)))
    finally:
        await client.aclose()


async def _scripted_conversation(out_dir: Path, redis_url: str, worker_ready: Callable[[], object],
                                 tiny: bool) -> Path:
    from bot.app import run_bot
    from bot.config import BotSettings
    from bot.ui.i18n import I18n
    from devkit.botapi import LocalBotAPI, SentMessage

    t = I18n().translator("en")
    transcript = Transcript(out_dir)
    async with LocalBotAPI(token=DEMO_TOKEN, bot_username="kandinsky_demo_bot") as api:
        overrides = {"BOT_LONG_SIDE": "512", "BOT_STEPS": "8", "BOT_PRIOR_STEPS": "4"} if tiny else {}
        settings = BotSettings(**{  # type: ignore[arg-type]
            "BOT_TOKEN": DEMO_TOKEN,
            "TELEGRAM_API_URL": api.base_url,
            "REDIS_URL": redis_url,
            "ADMIN_IDS": str(DEMO_USER_ID),
            "BOT_PROGRESS_EDIT_INTERVAL": "0.5",
            # The local server is not Telegram: the scripted user need not wait a second per message.
            "BOT_PRIVATE_CHAT_RATE": "30",
            "BOT_CHAT_BURST": "20",
            **{k: os.environ.get(k, v) for k, v in overrides.items()},
        })
        user = api.user(DEMO_USER_ID, first_name="Demo", language_code="en", username="demo_user")
        stop = asyncio.Event()
        bot_task = asyncio.create_task(run_bot(settings, stop=stop))
        await api.wait_for(lambda: bot_task.done() or bool(api.commands), timeout=30)
        if bot_task.done():
            bot_task.result()
        seen = 0

        def record_new() -> list[SentMessage]:
            nonlocal seen
            new = [m for m in api.messages_to(user.chat_id)[seen:] if not m.deleted]
            seen = len(api.messages_to(user.chat_id))
            for m in new:
                image, suffix = None, None
                if m.photo_bytes:
                    image, suffix = m.photo_bytes, "jpg" if m.photo_bytes[:2] == b"\xff\xd8" else "png"
                elif m.sticker_bytes:
                    image, suffix = m.sticker_bytes, "webp"
                elif m.document_bytes and (m.file_name or "").endswith((".png", ".jpg")):
                    image, suffix = m.document_bytes, (m.file_name or "").rsplit(".", 1)[-1]
                name = transcript.save_image(image, suffix) if image and suffix else None
                note = m.kind if m.kind in ("sticker", "document") else ""
                animated = m.kind in ("animation", "video") and m.file is not None
                video = transcript.save_image(m.file.data, "mp4") if animated and m.file else None
                transcript.entries.append(Entry("bot", m.text or m.caption or "", name, note=note,
                                                video=video))
            return new

        async def until(predicate: Callable[[SentMessage], bool], what: str) -> SentMessage:
            start = seen
            found: list[SentMessage] = []

            def check() -> bool:
                if bot_task.done():
                    return True
                found[:] = [m for m in api.messages_to(user.chat_id)[start:]
                            if not m.deleted and predicate(m)]
                return bool(found)

            try:
                await api.wait_for(check, timeout=STEP_TIMEOUT_S)
            except TimeoutError as exc:
                raise TimeoutError(f"demo step '{what}' did not finish: {exc}") from None
            if bot_task.done():
                bot_task.result()
                raise RuntimeError("the bot stopped during the demo")
            record_new()
            log.info("demo: %s ✓", what)
            return found[0]

        def record_previews(since: int) -> None:
            """The live previews the status message showed before the result replaced it."""
            for m in api.messages_to(user.chat_id)[since:]:
                if m.kind == "photo" and m.photo_bytes and (m.caption or "").startswith("Drawing"):
                    shown = [v.photo_bytes for v in (*m.edits, m) if v.photo_bytes]
                    for version in dict.fromkeys(shown):
                        name = transcript.save_image(version, "jpg")
                        transcript.entries.append(Entry("bot", m.caption or "", name,
                                                        note="live preview (replaced by the result)"))
            log.info("demo: live previews ✓")

        def said(text: str, image: bytes | None = None, note: str = "") -> None:
            name = transcript.save_image(image, "jpg") if image else None
            transcript.entries.append(Entry("user", text, name, note))

        def has_button(label: str) -> Callable[[SentMessage], bool]:
            return lambda m: any(b.get("text") == label for b in m.inline_buttons)

        def is_kind(kind: str) -> Callable[[SentMessage], bool]:
            return lambda m: m.kind == kind

        def is_result(m: SentMessage) -> bool:
            """A delivered picture (its buttons), not the status message's live preview."""
            return m.kind == "photo" and has_button(t("btn-again"))(m)

        async def press(message: SentMessage, label: str) -> None:
            said(f"[presses “{label}”]")
            await user.press(message, button_text=label)

        try:
            said("/start")
            await user.send_text("/start")
            await until(has_button(t("btn-settings")), "start menu")
            await asyncio.to_thread(worker_ready)

            prompt = "a red fox in a snowy forest, golden hour"
            said(prompt, note="text → image")
            await user.send_text(prompt)
            fox = await until(is_result, "text → image")

            # Editing a result: zoom out (with the live previews it showed), edit by words, pan.
            since = len(api.messages_to(user.chat_id))
            await press(fox, t("btn-zoom-out-2"))
            zoomed = await until(lambda m: is_result(m) and t("mode-zoom_out") in (m.caption or ""),
                                 "zoom out 2×")
            record_previews(since)
            await press(fox, t("btn-edit-words"))
            await until(lambda m: m.kind == "text" and "What should I change" in (m.text or ""), "edit asks")
            said("the sky -> a stormy sky with lightning", note="edit a result by words")
            await user.send_text("the sky -> a stormy sky with lightning")
            # The tiny bundle's segmentation net may find no sky in its own noise: then it says so.
            await until(lambda m: (is_result(m) and t("mode-edit") in (m.caption or ""))
                        or m.text == t("failed-region_not_found"), "edit a result by words")
            edit_photo = _photo(512, 512, 0)
            said("/edit the sky -> a stormy sky with lightning", edit_photo, note="edit by words")
            await user.send_text("/edit")
            await until(lambda m: m.kind == "text" and "Send me the photo to edit" in (m.text or ""),
                        "/edit asks for the photo")
            await user.send_photo(edit_photo, caption="the sky -> a stormy sky with lightning")
            await until(lambda m: is_result(m) and t("mode-edit") in (m.caption or ""), "edit by words")
            await press(zoomed, t("btn-pan-left"))
            await until(lambda m: is_result(m) and t("mode-pan") in (m.caption or ""), "pan left")

            said("/settings")
            await user.send_text("/settings")
            menu = await until(has_button(t("settings-btn-style")), "settings")
            await press(menu, t("settings-btn-style"))
            anime = t("style-anime")
            await api.wait_for(lambda: has_button(anime)(api.message(menu.chat_id, menu.message_id)))
            await press(api.message(menu.chat_id, menu.message_id), anime)
            await api.wait_for(lambda: anime in (api.message(menu.chat_id, menu.message_id).text or ""))
            transcript.entries.append(Entry("bot", api.message(menu.chat_id, menu.message_id).text or "",
                                            note="settings (edited)"))

            said("/mix", note="mix two images")
            await user.send_text("/mix")
            await until(lambda m: m.kind == "text", "mix asks for photos")
            first, second = fox.photo_bytes or _photo(512, 512, 0), _photo(640, 480, 90)
            said("[album of two photos]", first)
            said("", second)
            await user.send_album([first, second])
            await until(is_result, "mix")

            said("/blend", note="image + text")
            await user.send_text("/blend")
            await until(lambda m: m.kind == "text", "blend asks for a photo")
            blend_photo = _photo(480, 480, 160)
            said("as a stained glass window", blend_photo)
            await user.send_photo(blend_photo, caption="as a stained glass window")
            await until(is_result, "blend")

            said("/variations", note="variations")
            await user.send_text("/variations")
            await until(lambda m: m.kind == "text", "variations asks for a photo")
            said("", first)
            await user.send_photo(first)
            await until(is_result, "variations")

            said("/sticker", note="sticker")
            await user.send_text("/sticker")
            await until(lambda m: m.kind == "text", "sticker asks for a prompt")
            said("a happy cat astronaut")
            await user.send_text("a happy cat astronaut")
            await until(is_kind("sticker"), "sticker")
            card = await until(has_button(t("btn-add-to-pack")), "sticker card")
            await press(card, t("btn-add-to-pack"))
            # The pack flow may first ask for an emoji; the default one is the first button.
            await api.wait_for(lambda: bool(api.sticker_sets) or any(
                m.inline_buttons for m in api.messages_to(user.chat_id)[seen:]), timeout=STEP_TIMEOUT_S)
            if not api.sticker_sets:
                ask = next(m for m in api.messages_to(user.chat_id)[seen:] if m.inline_buttons)
                await press(ask, ask.inline_buttons[0]["text"])
            await api.wait_for(lambda: bool(api.sticker_sets), timeout=STEP_TIMEOUT_S)
            await asyncio.sleep(0.5)
            record_new()
            log.info("demo: sticker added to pack %s ✓", ", ".join(api.sticker_sets))

            # The second model family: /model → Kandinsky 3.0 for one image, then back to 2.2.
            if await _worker_holds(redis_url, Family.KANDINSKY3):
                said("/model", note="Kandinsky 3.0 next to 2.2")
                await user.send_text("/model")
                picker = await until(has_button(K3_TITLE), "model picker")
                await press(picker, K3_TITLE)
                await api.wait_for(lambda: f"• {K3_TITLE}" in [
                    b["text"] for b in api.message(picker.chat_id, picker.message_id).inline_buttons],
                    timeout=STEP_TIMEOUT_S)
                prompt_k3 = "a lighthouse on a cliff in a storm, oil painting"
                said(prompt_k3, note="text → image with Kandinsky 3.0")
                await user.send_text(prompt_k3)
                await until(lambda m: m.kind == "photo" and K3_TITLE in (m.caption or ""),
                            "Kandinsky 3.0 image")
                await press(api.message(picker.chat_id, picker.message_id), K22_TITLE)
                await api.wait_for(lambda: f"• {K22_TITLE}" in [
                    b["text"] for b in api.message(picker.chat_id, picker.message_id).inline_buttons],
                    timeout=STEP_TIMEOUT_S)
            else:
                log.info("demo: no worker holds Kandinsky 3.0 (it did not fit): its step is skipped")

            depth_photo = _photo(384, 512, 40)
            said("/depth a bronze statue in a museum", depth_photo, note="keep depth, change look")
            await user.send_photo(depth_photo, caption="/depth a bronze statue in a museum")
            await until(is_result, "depth")

            # Prompts as people write and say them: Russian, then a voice message.
            prompt_ru = "рыжая лиса в заснеженном лесу, золотой час"
            said(prompt_ru, note="a prompt in Russian: the model reads its English translation")
            await user.send_text(prompt_ru)
            ru = await until(lambda m: m.kind == "photo" and has_button(t("btn-model-read"))(m),
                             "Russian prompt")
            await press(ru, t("btn-model-read"))
            await until(lambda m: m.kind == "text" and "The model read" in (m.text or ""),
                        "what the model read")
            said("[a voice message, 2 s]", note="a voice message as the prompt")
            await user.send_voice(make_voice(2))
            heard_text = t("voice-empty")
            heard = await until(lambda m: has_button(t("btn-voice-draw"))(m) or m.text == heard_text,
                                "voice message transcribed")
            if heard.inline_buttons:  # a real speech model may hear no words in the demo's tone
                await press(heard, t("btn-voice-draw"))
                await until(lambda m: m.kind == "photo" and has_button(t("btn-again"))(m), "voice → image")

            # A short animation: the prompt, a camera button, a length; an MP4 comes back.
            said("/animate a lighthouse on a cliff at dusk", note="animation (camera, then length)")
            await user.send_text("/animate a lighthouse on a cliff at dusk")
            cameras = await until(has_button(t("animate-camera-zoom_in")), "animation asks for the camera")
            await press(cameras, t("animate-camera-zoom_in"))
            two_seconds = t("animate-seconds", seconds=2)
            def lengths() -> SentMessage:
                return api.message(cameras.chat_id, cameras.message_id)

            await api.wait_for(lambda: has_button(two_seconds)(lengths()), timeout=STEP_TIMEOUT_S)
            await press(lengths(), two_seconds)
            await until(is_kind("animation"), "animation")

            # Kandinsky 5.0 Video: a prompt becomes a clip (where a worker holds the family).
            if await _worker_holds(redis_url, Family.KANDINSKY5):
                said("/video a red fox running through the snow", note="a video (Kandinsky 5.0)")
                await user.send_text("/video a red fox running through the snow")
                await until(is_kind("video"), "video")

            said("/stats", note="admin")
            await user.send_text("/stats")
            await until(lambda m: m.kind == "text", "admin stats")
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(bot_task, timeout=30)
        problems = [*api.violations, *api.server_errors]
        title = "Kandinsky bot — offline demo"
        if tiny:
            title += " (tiny random-weight bundle: images are noise)"
        report = transcript.write_html(title)
        if problems:
            raise RuntimeError(f"the local Bot API server saw problems: {problems}")
        return report


def _run_real_telegram(redis_url: str, model_env: dict[str, str], out_dir: Path) -> int:
    """Worker + ``python -m bot`` against Telegram until Ctrl-C."""
    env = {**os.environ, "REDIS_URL": redis_url}
    with WorkerProcess(redis_url, out_dir / "worker.log", env=model_env):
        bot = subprocess.Popen([sys.executable, "-m", "bot"], cwd=REPO, env=env)
        log.info("bot running against %s; Ctrl-C to stop", os.environ.get("TELEGRAM_API_URL", "Telegram"))
        try:
            return bot.wait()
        except KeyboardInterrupt:
            bot.send_signal(signal.SIGINT)
            return bot.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devkit.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_REPORT_DIR, help="report folder")
    parser.add_argument("--models", choices=["auto", ModelChoice.REAL.value, ModelChoice.TINY.value],
                        default=os.environ.get("DEMO_MODELS", "auto"),
                        help="auto (default): public checkpoints with a GPU and network, else tiny")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("aiogram.event", "httpx", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    out_dir: Path = args.out
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    choice, why = choose_models(args.models, os.environ, gpu=cuda_available, online=hub_reachable)
    log.info("%s", why)
    model_env = _model_env(choice)
    started = time.monotonic()
    with _redis() as redis_url:
        if os.environ.get("BOT_TOKEN"):
            return _run_real_telegram(redis_url, model_env, out_dir)
        # The worker loads its models while the bot starts; the conversation waits for it before
        # the first job.
        worker = WorkerProcess(redis_url, out_dir / "worker.log", env=model_env).launch()
        try:
            report = asyncio.run(_scripted_conversation(out_dir, redis_url, worker.wait_ready,
                                                        tiny=choice is ModelChoice.TINY))
        finally:
            worker.stop()
    print(f"\nDemo finished in {time.monotonic() - started:.0f} s. Report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
