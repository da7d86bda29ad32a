"""Mini App buttons on the local Bot API server: web_app buttons need an HTTPS page (loopback http
for tests), and a simulated user opening one gets the page with init data signed as Telegram signs
it, which aiogram's own check accepts and the forged and stale variants fail."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, WebAppInfo
from aiogram.utils.web_app import check_webapp_signature, safe_parse_webapp_init_data

from devkit.botapi import LocalBotAPI
from devkit.botapi.webapp import forged_init_data, init_data, open_web_app

TOKEN = "777:webapp-test-token"


@pytest.fixture
async def api_bot() -> AsyncIterator[tuple[LocalBotAPI, Bot]]:
    async with LocalBotAPI(token=TOKEN) as api:
        bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(api.base_url)))
        try:
            yield api, bot
        finally:
            await bot.session.close()


def markup(url: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="🖌 Paint",
                                                                        web_app=WebAppInfo(url=url))]])


async def test_web_app_buttons_need_https_or_this_machine(api_bot: tuple[LocalBotAPI, Bot]) -> None:
    api, bot = api_bot
    user = api.user(501)
    for url in ("https://bot.example.com/webapp/edit?job=a", "http://127.0.0.1:8081/webapp/edit"):
        await bot.send_message(user.chat_id, "paint", reply_markup=markup(url))
    with pytest.raises(TelegramBadRequest, match="BUTTON_URL_INVALID"):
        await bot.send_message(user.chat_id, "paint", reply_markup=markup("http://bot.example.com/webapp"))
    assert len(api.violations) == 1 and "BUTTON_URL_INVALID" in api.violations[0]
    api.violations.clear()


async def test_opening_a_web_app_gives_signed_init_data(api_bot: tuple[LocalBotAPI, Bot]) -> None:
    api, bot = api_bot
    user = api.user(502, first_name="Ann", language_code="ru")
    page = "https://bot.example.com/webapp/edit?job=abc&i=0"
    sent = await bot.send_message(user.chat_id, "paint", reply_markup=markup(page))
    url = open_web_app(user, api.message(user.chat_id, sent.message_id), "🖌 Paint")
    base, fragment = url.split("#", 1)
    assert base == page
    launch = parse_qs(fragment)
    assert launch["tgWebAppPlatform"] == ["tdesktop"] and launch["tgWebAppVersion"]
    data = launch["tgWebAppData"][0]
    parsed = safe_parse_webapp_init_data(TOKEN, data)
    assert parsed.user is not None and (parsed.user.id, parsed.user.language_code) == (502, "ru")
    assert abs(parsed.auth_date.timestamp() - time.time()) < 60 and parsed.query_id
    assert not check_webapp_signature("778:another-token", data)
    assert not check_webapp_signature(TOKEN, forged_init_data(TOKEN, user.to_json(), as_user_id=503))
    stale = init_data(TOKEN, user.to_json(), auth_date=1)
    assert check_webapp_signature(TOKEN, stale)  # genuine, but old: the bot's age check refuses it
    with pytest.raises(ValueError, match="no web_app button"):
        open_web_app(user, api.message(user.chat_id, sent.message_id), "✏️ Edit")
    assert urlsplit(base).query == "job=abc&i=0"
