"""Offline demo: run the local Bot API server and chat with the bot from this terminal.

    python -m devkit.botapi --port 8081 --data-dir demo-out
    # in another shell: TELEGRAM_API_URL=http://127.0.0.1:8081 BOT_TOKEN=123456:TEST-TOKEN python -m bot

Type a line to send it as the user. Commands: ``:photo PATH [caption]``, ``:doc PATH``,
``:album PATH PATH...``, ``:press MESSAGE_ID BUTTON TEXT``, ``:block``, ``:unblock``, ``:quit``.
Files the bot sends are saved under ``--data-dir``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import mimetypes
import shlex
import sys
from pathlib import Path

from PIL import Image

from devkit.botapi.models import SentMessage
from devkit.botapi.server import LocalBotAPI
from devkit.botapi.sim import SimUser

PRINT_INTERVAL_S = 0.2
"""How often the console shows new and edited bot messages; fast enough to read along."""


def _describe(msg: SentMessage, out_dir: Path) -> str:
    parts = [f"[bot #{msg.message_id}{' edited' if msg.edits else ''}{' deleted' if msg.deleted else ''}]"]
    if msg.file is not None:
        ext = msg.file.file_path.rsplit(".", 1)[-1]
        target = out_dir / f"{msg.chat_id}_{msg.message_id}_{len(msg.edits)}.{ext}"
        target.write_bytes(msg.file.data)
        size = ""
        with contextlib.suppress(Exception), Image.open(io.BytesIO(msg.file.data)) as image:
            size = f" {image.width}x{image.height} {image.format}"
        parts.append(f"<{msg.kind}{size} saved to {target}>")
    if msg.text is not None:
        parts.append(msg.text)
    if msg.caption:
        parts.append(msg.caption)
    buttons = [b.get("text", "") for b in msg.inline_buttons]
    if buttons:
        parts.append("buttons: " + " | ".join(buttons))
    return " ".join(parts)


async def _printer(api: LocalBotAPI, chat_id: int, out_dir: Path) -> None:
    shown: dict[int, tuple[int, bool]] = {}
    while True:
        for msg in api.messages_to(chat_id):
            state = (len(msg.edits), msg.deleted)
            if shown.get(msg.message_id) != state:
                shown[msg.message_id] = state
                print(_describe(msg, out_dir), flush=True)
        await asyncio.sleep(PRINT_INTERVAL_S)


async def _handle_line(api: LocalBotAPI, user: SimUser, line: str) -> bool:
    """Run one console line; False means quit."""
    if not line.startswith(":"):
        await user.send_text(line)
        return True
    words = shlex.split(line)
    command, args = words[0], words[1:]
    if command == ":quit":
        return False
    if command == ":photo" and args:
        await user.send_photo(Path(args[0]).read_bytes(), caption=" ".join(args[1:]) or None)
    elif command == ":doc" and args:
        path = Path(args[0])
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        await user.send_document(path.read_bytes(), path.name, mime)
    elif command == ":album" and len(args) >= 2:
        await user.send_album([Path(a).read_bytes() for a in args])
    elif command == ":press" and len(args) >= 2:
        message = api.message(user.chat_id, int(args[0]))
        await user.press(message, " ".join(args[1:]))
    elif command == ":block":
        api.block_bot(user.user_id)
    elif command == ":unblock":
        api.unblock_bot(user.user_id)
    else:
        print(f"unknown command {line!r}; see python -m devkit.botapi --help", flush=True)
    return True


async def _main(args: argparse.Namespace) -> None:
    out_dir = Path(args.data_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    api = LocalBotAPI(
        token=args.token, bot_username=args.bot_username, host=args.host, port=args.port, data_dir=out_dir
    )
    await api.start()
    user = api.user(args.user_id, first_name=args.first_name, language_code=args.lang)
    print(f"TELEGRAM_API_URL={api.base_url}", flush=True)
    printer = asyncio.create_task(_printer(api, user.chat_id, out_dir))
    try:
        while True:
            line = await asyncio.to_thread(sys.stdin.readline)
            if line == "":  # no terminal (EOF): keep serving until interrupted
                await asyncio.Event().wait()
            line = line.strip()
            if not line:
                continue
            try:
                if not await _handle_line(api, user, line):
                    break
            except (ValueError, OSError, KeyError) as exc:
                print(f"! {exc}", flush=True)
            for violation in api.violations:
                print(f"! Telegram limit broken: {violation}", flush=True)
            api.violations.clear()
    finally:
        printer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await printer
        await api.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m devkit.botapi",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--token", default="123456:TEST-TOKEN")
    parser.add_argument("--bot-username", default="kandinsky_test_bot")
    parser.add_argument("--user-id", type=int, default=1001)
    parser.add_argument("--first-name", default="Demo")
    parser.add_argument("--lang", default="en")
    parser.add_argument("--data-dir", default="demo-out")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
