"""Files: getFile, plus the file store every upload goes through (``store_file``), InputFile
parsing (upload, ``attach://``, HTTP URL or a known file_id), generated photo sizes and the
Document/Sticker JSON objects.

To add a method: write ``async def _name(self, params: Params) -> <result>`` on
:class:`FilesMethods` and decorate it with ``@bot_method("methodName")``.
"""

from __future__ import annotations

import io
import secrets
from typing import Any

import aiohttp
from PIL import Image, ImageOps

from devkit.botapi import limits
from devkit.botapi.methods.registry import bot_method
from devkit.botapi.models import StoredFile, UploadedFile, bad_request
from devkit.botapi.params import Params
from devkit.botapi.state import ServerState

URL_FETCH_TIMEOUT_S = 10.0
"""Fetching a file by HTTP URL (sendPhoto with a URL) gives up after this long."""
PHOTO_THUMB_SIDES = (90, 320, 800, 1280, 2560)
"""The longest sides of the photo sizes Telegram generates (s, m, x, y, w)."""
USER_PHOTO_JPEG_QUALITY = 87
"""Telegram re-encodes photos sent by users as JPEG; this is close to its quality."""
WRONG_FILE = "wrong file identifier/HTTP URL specified"


class FilesMethods(ServerState):
    """The file store and getFile; the send and sticker areas build on it."""

    @bot_method("getFile")
    async def _get_file(self, params: Params) -> dict[str, Any]:
        file_id = params.req_str("file_id")
        stored = self.files.get(file_id)
        if stored is None:
            raise bad_request("invalid file_id")
        if stored.size > limits.MAX_DOWNLOAD_BYTES:
            raise bad_request("file is too big")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.size,
            "file_path": stored.file_path,
        }

    def _new_file_ids(self) -> tuple[str, str]:
        self._file_counter += 1
        n = self._file_counter
        return f"BAAC{n:06d}{secrets.token_hex(8)}", f"AQAD{n:06d}"

    def store_file(
        self,
        data: bytes,
        folder: str,
        ext: str,
        mime_type: str | None = None,
        file_name: str | None = None,
        width: int | None = None,
        height: int | None = None,
    ) -> StoredFile:
        file_id, unique = self._new_file_ids()
        path = f"{folder}/file_{self._file_counter}.{ext}"
        stored = StoredFile(file_id, unique, data, path, mime_type, file_name, width, height)
        self.files[file_id] = stored
        self._files_by_path[path] = stored
        if self.data_dir is not None:
            target = self.data_dir / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return stored

    def photo_sizes(self, data: bytes, *, reencode: bool) -> tuple[list[dict[str, Any]], StoredFile]:
        """PhotoSize list computed from the real image; the last one is the biggest.

        ``reencode`` mimics Telegram's JPEG re-encoding of user photos (EXIF orientation
        applied); bot uploads keep their original bytes in the biggest size so tests can
        inspect exactly what the bot sent.
        """
        try:
            with Image.open(io.BytesIO(data)) as opened:
                image = ImageOps.exif_transpose(opened) if reencode else opened.copy()
            image = image.convert("RGB") if image.mode not in ("RGB", "L") else image
        except Exception as exc:  # PIL raises many types for odd files; Telegram says one thing
            raise bad_request("IMAGE_PROCESS_FAILED", violation=not reencode) from exc
        width, height = image.size
        sizes: list[dict[str, Any]] = []
        main: StoredFile | None = None
        longest = max(width, height)
        limits_ = [s for s in PHOTO_THUMB_SIDES if s < longest] + [min(longest, PHOTO_THUMB_SIDES[-1])]
        for i, side in enumerate(limits_):
            last = i == len(limits_) - 1
            scale = side / longest
            w, h = max(1, round(width * scale)), max(1, round(height * scale))
            if last and not reencode:
                stored = self.store_file(data, "photos", "jpg", "image/jpeg", width=width, height=height)
                w, h = width, height
            else:
                buf = io.BytesIO()
                image.resize((w, h)).save(buf, "JPEG", quality=USER_PHOTO_JPEG_QUALITY)
                stored = self.store_file(buf.getvalue(), "photos", "jpg", "image/jpeg", width=w, height=h)
            if last:
                main = stored
            sizes.append(
                {
                    "file_id": stored.file_id,
                    "file_unique_id": stored.file_unique_id,
                    "width": w,
                    "height": h,
                    "file_size": stored.size,
                }
            )
        assert main is not None
        return sizes, main

    def document_json(self, stored: StoredFile) -> dict[str, Any]:
        out: dict[str, Any] = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.size,
        }
        if stored.file_name:
            out["file_name"] = stored.file_name
        if stored.mime_type:
            out["mime_type"] = stored.mime_type
        return out

    def voice_json(self, stored: StoredFile, duration: int) -> dict[str, Any]:
        """A Voice object: Telegram's voice notes are OGG/Opus with the duration the client measured."""
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "duration": duration,
            "mime_type": stored.mime_type or "audio/ogg",
            "file_size": stored.size,
        }

    def audio_json(self, stored: StoredFile, duration: int) -> dict[str, Any]:
        """An Audio object (a music or audio file sent as such)."""
        out = {**self.voice_json(stored, duration)}
        if stored.file_name:
            out["file_name"] = stored.file_name
        return out

    def video_note_json(self, stored: StoredFile, duration: int, length: int) -> dict[str, Any]:
        """A VideoNote object (a round video message: a square MP4 with sound)."""
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "length": length,
            "duration": duration,
            "file_size": stored.size,
        }

    def sticker_json(
        self, stored: StoredFile, emoji: str | None = None, set_name: str | None = None
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "type": "regular",
            "width": stored.width or limits.STICKER_SIDE,
            "height": stored.height or limits.STICKER_SIDE,
            "is_animated": False,
            "is_video": False,
            "file_size": stored.size,
        }
        if emoji:
            out["emoji"] = emoji
        if set_name:
            out["set_name"] = set_name
        return out

    async def _input_file(
        self, value: Any, files: dict[str, UploadedFile]
    ) -> tuple[bytes, str | None, str | None, StoredFile | None]:
        """(bytes, filename, content type, existing file) of an InputFile parameter."""
        if isinstance(value, UploadedFile):
            return value.data, value.filename, value.content_type, None
        if not isinstance(value, str) or not value:
            raise bad_request("there is no file in the request")
        if value.startswith("attach://"):
            upload = files.get(value[len("attach://") :])
            if upload is None:
                raise bad_request(f"file for {value} not found in the request")
            return upload.data, upload.filename, upload.content_type, None
        if value.startswith(("http://", "https://")):
            assert self._client is not None
            try:
                async with self._client.get(
                    value, timeout=aiohttp.ClientTimeout(total=URL_FETCH_TIMEOUT_S)
                ) as resp:
                    if resp.status != 200:
                        raise bad_request("failed to get HTTP URL content")
                    data = await resp.read()
                    return data, value.rsplit("/", 1)[-1] or None, resp.content_type, None
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise bad_request("failed to get HTTP URL content") from exc
        stored = self.files.get(value)
        if stored is None:
            raise bad_request(WRONG_FILE)
        return stored.data, stored.file_name, stored.mime_type, stored
