"""Telegram's documented limits and the checks that enforce them, with Telegram's own error texts."""

from __future__ import annotations

import html
import io
import re
from dataclasses import dataclass
from typing import Any

from PIL import Image

from devkit.botapi.models import ApiError, bad_request

MAX_TEXT_LENGTH = 4096
"""sendMessage/editMessageText: 1-4096 characters after entities parsing."""
MAX_CAPTION_LENGTH = 1024
"""Media captions: 0-1024 characters after entities parsing."""
MAX_CALLBACK_DATA_BYTES = 64
"""InlineKeyboardButton.callback_data: 1-64 bytes."""
MAX_PHOTO_BYTES = 10 * 1024 * 1024
"""sendPhoto: the photo must be at most 10 MB."""
MAX_PHOTO_SIDES_SUM = 10000
"""sendPhoto: width and height must not exceed 10000 in total."""
MAX_PHOTO_RATIO = 20
"""sendPhoto: width and height ratio must be at most 20."""
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
"""Other files sent by the bot: at most 50 MB."""
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024
"""getFile: files of up to 20 MB can be downloaded by bots."""
STICKER_SIDE = 512
"""Static stickers: one side exactly 512 px, the other 512 px or less."""
MAX_STICKERS_IN_SET = 120
"""A regular sticker set holds at most 120 stickers."""
MAX_INITIAL_STICKERS = 50
"""createNewStickerSet: 1-50 initial stickers."""
MAX_SET_NAME_LENGTH = 64
"""Sticker set name: 1-64 characters."""
MAX_SET_TITLE_LENGTH = 64
"""Sticker set title: 1-64 characters."""
MAX_COMMANDS = 100
"""setMyCommands: at most 100 commands."""
MAX_COMMAND_DESCRIPTION = 256
"""BotCommand.description: 1-256 characters."""
MAX_CALLBACK_ANSWER_TEXT = 200
"""answerCallbackQuery.text: 0-200 characters."""
MAX_MEDIA_GROUP = 10
"""sendMediaGroup: 2-10 items."""

HTML_TAGS = frozenset(
    {
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "span",
        "tg-spoiler",
        "a",
        "code",
        "pre",
        "blockquote",
        "tg-emoji",
        "tg-time",
    }
)
HTML_ENTITY_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "span": "spoiler",
    "tg-spoiler": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
    "tg-time": "date_time",
}
_TAG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]*")
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ENTITY = re.compile(r"&(#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z]+);")
_SET_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_COMMAND = re.compile(r"[a-z0-9_]{1,32}")


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


def _decode_entities(chunk: str) -> str:
    def repl(match: re.Match[str]) -> str:
        body = match.group(1)
        if body.startswith("#"):
            return html.unescape(match.group(0))
        return _NAMED_ENTITIES.get(body, match.group(0))

    return _ENTITY.sub(repl, chunk)


def parse_html(source: str) -> tuple[str, list[dict[str, Any]]]:
    """Parse Telegram's HTML subset; returns the plain text and its entities.

    Raises ``Bad Request: can't parse entities: ...`` like Telegram for unknown tags,
    unbalanced tags and a stray ``<``.
    """

    def fail(reason: str) -> ApiError:
        return bad_request(f"can't parse entities: {reason}", violation=True)

    out: list[str] = []
    length = 0
    stack: list[tuple[str, int, dict[str, str]]] = []
    entities: list[dict[str, Any]] = []
    i = 0
    while i < len(source):
        lt = source.find("<", i)
        if lt < 0:
            lt = len(source)
        if lt > i:
            text = _decode_entities(source[i:lt])
            out.append(text)
            length += utf16_len(text)
        if lt >= len(source):
            break
        gt = source.find(">", lt)
        if gt < 0:
            raise fail(f"Unclosed start tag at byte offset {_byte_offset(source, lt)}")
        inner = source[lt + 1 : gt]
        if inner.startswith("/"):
            name = inner[1:].strip().lower()
            if not stack:
                raise fail(f"Unexpected end tag at byte offset {_byte_offset(source, lt)}")
            top, start, attrs = stack.pop()
            if name != top:
                raise fail(
                    f"Unmatched end tag at byte offset {_byte_offset(source, lt)}, "
                    f'expected "</{top}>", found "</{name}>"'
                )
            if length > start:
                entity: dict[str, Any] = {
                    "type": HTML_ENTITY_TYPES[top],
                    "offset": start,
                    "length": length - start,
                }
                if top == "a":
                    entity["url"] = attrs.get("href", "")
                if top == "pre" and "language" in attrs:
                    entity["language"] = attrs["language"]
                entities.append(entity)
        else:
            match = _TAG_NAME.match(inner)
            name = match.group(0).lower() if match else ""
            if name not in HTML_TAGS:
                raise fail(f'Unsupported start tag "{name}" at byte offset {_byte_offset(source, lt)}')
            attrs = {
                k.lower(): _decode_entities(v1 if v1 is not None and v1 != "" else v2)
                for k, v1, v2 in re.findall(r'([A-Za-z-]+)\s*=\s*(?:"([^"]*)"|\'?([^\'\s]*)\'?)', inner)
            }
            if name == "span" and attrs.get("class") != "tg-spoiler":
                raise fail(f'Unsupported start tag "span" at byte offset {_byte_offset(source, lt)}')
            if name == "a" and "href" not in attrs:
                attrs["href"] = ""
            stack.append((name, length, attrs))
        i = gt + 1
    if stack:
        raise fail(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


MARKDOWN_V2_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")
_MD2_MARKERS = {"*": "Bold", "_": "Italic", "__": "Underline", "~": "Strikethrough", "||": "Spoiler"}


def parse_markdown_v2(source: str) -> str:
    """Check MarkdownV2 like Telegram and return the plain text.

    Reserved characters outside entities must be escaped; every entity must be closed.
    """

    def fail(reason: str) -> ApiError:
        return bad_request(f"can't parse entities: {reason}", violation=True)

    out: list[str] = []
    stack: list[tuple[str, int]] = []  # (marker, index in source)
    i, n = 0, len(source)
    while i < n:
        ch = source[i]
        if ch == "\\":
            if i + 1 >= n:
                raise fail("Character '\\' is reserved and must be escaped with the preceding '\\'")
            out.append(source[i + 1])
            i += 2
            continue
        if ch == "`":
            fence = "```" if source.startswith("```", i) else "`"
            j = i + len(fence)
            body: list[str] = []
            while j < n and not source.startswith(fence, j):
                if source[j] == "\\" and j + 1 < n:
                    j += 1
                body.append(source[j])
                j += 1
            if j >= n:
                kind = "Pre" if fence == "```" else "Code"
                raise fail(f"Can't find end of {kind} entity at byte offset {_byte_offset(source, i)}")
            text = "".join(body)
            if fence == "```" and "\n" in text:
                first, rest = text.split("\n", 1)
                text = rest if first and " " not in first else text
            out.append(text)
            i = j + len(fence)
            continue
        if ch == "]" and stack and stack[-1][0] == "[":
            stack.pop()
            if not source.startswith("(", i + 1):
                raise fail("Character ']' is reserved and must be escaped with the preceding '\\'")
            close = i + 2
            while close < n and source[close] != ")":
                close += 2 if source[close] == "\\" else 1
            if close >= n:
                raise fail(f"Can't find end of a URL at byte offset {_byte_offset(source, i + 1)}")
            i = close + 1
            continue
        if ch == "[":
            stack.append(("[", i))
            i += 1
            continue
        if ch == ">" and (i == 0 or source[i - 1] == "\n"):
            i += 1
            continue
        marker = "__" if source.startswith("__", i) else "||" if source.startswith("||", i) else ch
        if marker in _MD2_MARKERS:
            if stack and stack[-1][0] == marker:
                stack.pop()
            else:
                stack.append((marker, i))
            i += len(marker)
            continue
        if ch in MARKDOWN_V2_RESERVED:
            raise fail(f"Character '{ch}' is reserved and must be escaped with the preceding '\\'")
        out.append(ch)
        i += 1
    if stack:
        marker, at = stack[-1]
        name = _MD2_MARKERS.get(marker, "TextUrl")
        raise fail(f"Can't find end of {name} entity at byte offset {_byte_offset(source, at)}")
    return "".join(out)


def parse_markdown(source: str) -> str:
    """Legacy Markdown: *bold*, _italic_, `code`, ```pre```, [text](url); no nesting, no escapes needed."""
    out: list[str] = []
    i, n = 0, len(source)
    while i < n:
        ch = source[i]
        if ch == "\\" and i + 1 < n and source[i + 1] in "*_`[":
            out.append(source[i + 1])
            i += 2
            continue
        if ch in "*_`":
            fence = "```" if source.startswith("```", i) else ch
            end = source.find(fence, i + len(fence))
            if end < 0:
                raise bad_request(
                    f"can't parse entities: Can't find end of the entity starting at byte offset "
                    f"{_byte_offset(source, i)}",
                    violation=True,
                )
            out.append(source[i + len(fence) : end])
            i = end + len(fence)
            continue
        if ch == "[":
            match = re.match(r"\[([^\]]*)\]\(([^)]*)\)", source[i:])
            if match:
                out.append(match.group(1))
                i += match.end()
                continue
        out.append(ch)
        i += 1
    return "".join(out)


def formatted_text(
    source: str, parse_mode: str | None, entities: list[dict[str, Any]] | None
) -> tuple[str, list[dict[str, Any]] | None]:
    """Apply ``parse_mode`` and return (plain text, entities)."""
    mode = (parse_mode or "").lower()
    if mode == "html":
        text, parsed = parse_html(source)
        return text, parsed or None
    if mode == "markdownv2":
        return parse_markdown_v2(source), None
    if mode == "markdown":
        return parse_markdown(source), None
    if mode:
        raise bad_request(f"unsupported parse_mode {parse_mode!r}", violation=True)
    return source, entities


def check_text(text: str) -> None:
    if not text.strip():
        raise bad_request("message text is empty", violation=True)
    if len(text) > MAX_TEXT_LENGTH:
        raise bad_request("message is too long", violation=True)


def check_caption(caption: str) -> None:
    if len(caption) > MAX_CAPTION_LENGTH:
        raise bad_request("message caption is too long", violation=True)


LOOPBACK_WEB_APP = re.compile(r"^http://(localhost|127\.0\.0\.1|\[::1\])(:\d+)?(/|$)")
"""This server also takes plain-http Mini Apps on this machine, so tests need no certificate."""


def check_web_app_url(web_app: Any) -> None:
    """A web_app button opens an HTTPS page (Telegram's rule; loopback http allowed here)."""
    url = web_app.get("url") if isinstance(web_app, dict) else None
    if not isinstance(url, str) or not (url.startswith("https://") or LOOPBACK_WEB_APP.match(url)):
        raise bad_request("BUTTON_URL_INVALID", violation=True)


def check_reply_markup(markup: Any) -> None:
    """Validate any of the four reply markup kinds; inline keyboards strictly."""
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object", violation=True)
    if "inline_keyboard" in markup:
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise bad_request("can't parse inline keyboard markup JSON object", violation=True)
        actions = (
            "url",
            "callback_data",
            "web_app",
            "login_url",
            "switch_inline_query",
            "switch_inline_query_current_chat",
            "switch_inline_query_chosen_chat",
            "copy_text",
            "callback_game",
            "pay",
        )
        for row in rows:
            for button in row:
                if not isinstance(button, dict):
                    raise bad_request("can't parse inline keyboard button", violation=True)
                text = button.get("text")
                if not isinstance(text, str) or not text.strip():
                    raise bad_request("BUTTON_TEXT_INVALID", violation=True)
                if not any(button.get(k) not in (None, "") for k in actions):  # "" counts as absent
                    raise bad_request(
                        "can't parse inline keyboard button: Text buttons are unallowed in the "
                        "inline keyboard",
                        violation=True,
                    )
                if "web_app" in button:
                    check_web_app_url(button["web_app"])
                if button.get("callback_data") not in (None, ""):
                    data = button["callback_data"]
                    size = len(str(data).encode("utf-8"))
                    if not isinstance(data, str) or not 1 <= size <= MAX_CALLBACK_DATA_BYTES:
                        raise bad_request("BUTTON_DATA_INVALID", violation=True)
    elif "keyboard" in markup:
        for row in markup["keyboard"]:
            for button in row:
                text = button if isinstance(button, str) else button.get("text")
                if not text:
                    raise bad_request("BUTTON_TEXT_INVALID", violation=True)
    elif not (markup.get("remove_keyboard") or markup.get("force_reply")):
        raise bad_request("can't parse reply keyboard markup JSON object", violation=True)


def image_info(data: bytes) -> tuple[str, int, int, str]:
    """(PIL format, width, height, mode) of an image, or IMAGE_PROCESS_FAILED."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return str(image.format), int(image.width), int(image.height), str(image.mode)
    except Exception as exc:
        raise bad_request("IMAGE_PROCESS_FAILED", violation=True) from exc


def check_photo(data: bytes) -> tuple[int, int]:
    """The photo rules of sendPhoto; returns (width, height)."""
    if len(data) > MAX_PHOTO_BYTES:
        raise bad_request("PHOTO_SAVE_FILE_INVALID (photo is larger than 10 MB)", violation=True)
    _, width, height, _ = image_info(data)
    ratio = max(width, height) / max(1, min(width, height))
    if width + height > MAX_PHOTO_SIDES_SUM or ratio > MAX_PHOTO_RATIO:
        raise bad_request("PHOTO_INVALID_DIMENSIONS", violation=True)
    return width, height


def check_document(data: bytes) -> None:
    if len(data) > MAX_UPLOAD_BYTES:
        raise ApiError(413, "Request Entity Too Large", violation=True)


def check_sticker_file(data: bytes, sticker_format: str = "static") -> tuple[str, int, int]:
    """The static sticker rule: PNG or WEBP, one side exactly 512, the other at most 512."""
    if sticker_format != "static":
        raise bad_request(f"sticker format {sticker_format!r} is not supported here", violation=True)
    try:
        fmt, width, height, _ = image_info(data)
    except ApiError as exc:
        raise bad_request("STICKER_PNG_NOPNG", violation=True) from exc
    if fmt not in ("PNG", "WEBP"):
        raise bad_request("STICKER_PNG_NOPNG", violation=True)
    if max(width, height) != STICKER_SIDE or min(width, height) > STICKER_SIDE:
        raise bad_request("STICKER_PNG_DIMENSIONS", violation=True)
    return fmt, width, height


def check_set_name(name: str, bot_username: str) -> None:
    suffix = f"_by_{bot_username}"
    valid = (
        1 <= len(name) <= MAX_SET_NAME_LENGTH
        and _SET_NAME.fullmatch(name) is not None
        and "__" not in name
        and name.lower().endswith(suffix.lower())
        and len(name) > len(suffix)
    )
    if not valid:
        raise bad_request("invalid sticker set name is specified", violation=True)


def check_set_title(title: str) -> None:
    if not 1 <= len(title) <= MAX_SET_TITLE_LENGTH:
        raise bad_request("STICKERSET_TITLE_INVALID (title must be 1-64 characters)", violation=True)


def check_commands(commands: Any) -> None:
    if not isinstance(commands, list) or len(commands) > MAX_COMMANDS:
        raise bad_request("BOT_COMMANDS_TOO_MUCH", violation=True)
    for command in commands:
        if not isinstance(command, dict) or not _COMMAND.fullmatch(str(command.get("command", ""))):
            raise bad_request("BOT_COMMAND_INVALID", violation=True)
        description = command.get("description")
        if not isinstance(description, str) or not 1 <= len(description) <= MAX_COMMAND_DESCRIPTION:
            raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID", violation=True)


@dataclass(frozen=True)
class AnimationFile:
    """What sendAnimation found in an upload."""

    fmt: str
    """"mp4" or "gif"."""
    width: int
    height: int
    duration: int
    """Seconds, rounded, as Telegram's Animation object gives them."""


def check_animation(data: bytes) -> AnimationFile:
    """sendAnimation's rule: a GIF, or an MP4 whose only stream is H.264 video (no sound) that every
    client plays (yuv420p, even sides), at most 50 MB. Telegram turns anything else into a plain
    file or a video; here it is refused with the reason, so a test sees it."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise ApiError(413, "Request Entity Too Large", violation=True)
    if not data:
        raise bad_request("file must be non-empty", violation=True)
    if data[:6] in (b"GIF87a", b"GIF89a"):
        _, width, height, _ = image_info(data)
        return AnimationFile("gif", width, height, 0)
    return _h264_mp4(data, "ANIMATION_INVALID", "an animation", sound=False)


def check_video(data: bytes) -> AnimationFile:
    """sendVideo's rule for the MP4s a bot sends (Telegram plays them inline and streams them): one
    H.264 video stream in yuv420p with even sides, at most 50 MB; a sound track is allowed."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise ApiError(413, "Request Entity Too Large", violation=True)
    if not data:
        raise bad_request("file must be non-empty", violation=True)
    return _h264_mp4(data, "VIDEO_INVALID", "a video", sound=True)


def _h264_mp4(data: bytes, code: str, what: str, *, sound: bool) -> AnimationFile:
    import av  # the dev kit's environment has the worker extra; the bot image never loads this

    try:
        container: Any = av.open(io.BytesIO(data), mode="r")
    except (av.FFmpegError, ValueError) as exc:
        accepted = "an MP4" if sound else "a GIF or an MP4"
        raise bad_request(f"{code}: not {accepted} ({exc})", violation=True) from None
    with container:
        if "mp4" not in container.format.name.split(","):
            raise bad_request(f"{code}: a {container.format.name} file, not an MP4", violation=True)
        if container.streams.audio and not sound:
            raise bad_request(f"{code}: {what} has no sound (this MP4 has an audio track)", violation=True)
        if len(container.streams.video) != 1:
            raise bad_request(f"{code}: an MP4 of {what} has exactly one video stream", violation=True)
        stream = container.streams.video[0]
        codec, pix_fmt = stream.codec_context.name, str(stream.codec_context.pix_fmt)
        width, height = int(stream.width), int(stream.height)
        if codec != "h264":
            raise bad_request(f"{code}: video codec {codec}, not H.264", violation=True)
        if pix_fmt != "yuv420p":
            raise bad_request(f"{code}: pixel format {pix_fmt}, not yuv420p", violation=True)
        if width <= 0 or height <= 0 or width % 2 or height % 2:
            raise bad_request(f"{code}: {width}x{height}; H.264 in yuv420p needs even sides",
                              violation=True)
        seconds = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else 0.0
        return AnimationFile("mp4", width, height, round(seconds))
