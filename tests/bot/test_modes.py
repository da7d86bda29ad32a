"""The bot's modes come from their descriptions (contract.modes): routers, states, menu, commands.

A description is all a mode needs on this side: the last test gives the bot a mode it has never
offered (outpaint, engine-only today) from a description and its texts alone, and drives it
over the real Bot API wire to a queued job.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from aiogram.filters import Command, StateFilter
from aiogram.fsm.state import State
from aiogram.utils.keyboard import InlineKeyboardBuilder
from redis.asyncio import Redis

from bot.app import COMMANDS, create_bot, create_dispatcher, create_services
from bot.routers import build_root_router, mode_router
from bot.ui import keyboards
from bot.ui.callbacks import MenuCb
from bot.ui.i18n import LOCALES_DIR, SUPPORTED_LOCALES, I18n
from bot.ui.states import mode_state
from contract.modes import MODES, Mode, ModeDescription, bot_modes, menu_modes
from devkit.botapi import LocalBotAPI
from devkit.redis_server import RedisServer
from tests.bot.conftest import Harness, make_settings, press
from tests.bot.images import photo

EN = I18n().translator("en")


def first_ask(mode: ModeDescription) -> str:
    """What the dialog says first: the prompt question, or the (first) photo question."""
    return EN(mode.ask_photo_key if mode.images else mode.ask_prompt_key)


def test_commands_and_menu_are_derived_and_unchanged() -> None:
    derived = ("start", "help", *(d.command for d in bot_modes()), "settings", "model", "cancel", "packs")
    assert derived == COMMANDS == ("start", "help", "imagine", "mix", "blend", "variations", "sticker",
                                   "depth", "edit", "animate", "video", "settings", "model", "cancel",
                                   "packs")
    menu = (*((d.mode.value, d.button_key) for d in menu_modes()), ("settings", "btn-settings"))
    assert menu == keyboards.MENU_MODES
    buttons = [b for row in keyboards.main_menu(EN).inline_keyboard for b in row]
    assert [(b.text, b.callback_data) for b in buttons] == [
        ("🎨 Text to image", "m:text2image"), ("🔀 Mix two images", "m:mix"), ("🖼 Image + text", "m:blend"),
        ("🔁 Variations", "m:variations"), ("🏷 Sticker", "m:sticker"), ("🗿 Keep depth", "m:depth"),
        ("✏️ Edit a photo", "m:edit"), ("🎞 Animation", "m:animate"), ("🎬 Video", "m:video"),
        ("⚙️ Settings", "m:settings"),
    ]


def test_every_bot_mode_has_one_router_and_its_state() -> None:
    by_command: dict[str, list[set[str]]] = {}
    for router in build_root_router().sub_routers:
        handlers = router.message.handlers
        commands = {c for h in handlers for f in h.filters or [] if isinstance(f.callback, Command)
                    for c in f.callback.commands if isinstance(c, str)}
        states = {state.state for h in handlers for f in h.filters or []
                  if isinstance(f.callback, StateFilter)
                  for state in f.callback.states if isinstance(state, State) and state.state}
        for command in commands:
            by_command.setdefault(command, []).append(states)
    for mode in bot_modes():
        assert mode.command is not None
        assert by_command.get(mode.command) == [{mode.state_name}], mode.mode
        assert mode_state(mode) == mode.state_name
    assert {d.mode for d in MODES} - {d.mode for d in bot_modes()} == {Mode.INPAINT, Mode.OUTPAINT,
                                                                       Mode.ZOOM_OUT, Mode.PAN,
                                                                       Mode.IMAGE2VIDEO}
    assert not {"inpaint", "outpaint", "zoom_out", "pan"} & set(by_command)


def test_every_filter_is_awaited_in_place() -> None:
    """aiogram runs a filter that is not a coroutine in a worker thread on every check
    (asyncio.to_thread): a bare State or ``F`` filter must be wrapped (StateFilter, Matches)."""
    threaded = []
    routers = [build_root_router()]
    while routers:
        router = routers.pop()
        routers += router.sub_routers
        for event, observer in router.observers.items():
            for handler in [observer._handler, *observer.handlers]:  # the router's own filters first
                threaded += [(router.name, event, repr(f.callback)) for f in handler.filters or []
                             if not f.awaitable]
    assert threaded == []


async def test_every_command_and_menu_button_opens_its_dialog(harness: Harness) -> None:
    h = harness
    user = h.user()
    for mode in bot_modes():
        before = h.count(user)
        await user.send_text(f"/{mode.command}")
        await h.wait_text(user, first_ask(mode), after=before)
        state_keys = h.redis.scan_iter(match=f"kb:fsm:*:{user.user_id}:state")
        state = [await h.redis.get(k) async for k in state_keys]
        assert state == [mode.state_name.encode()], (mode.mode, state)
    await user.send_text("/start")
    menu = await h.wait_text(user, "Hi, ")
    for mode in menu_modes():
        before = h.count(user)
        await press(h, user, menu, EN(mode.button_key))
        await h.wait_text(user, first_ask(mode), after=before)


def _locales_with(texts: dict[str, str], target: Path) -> Path:
    """The bot's locale files plus ``texts`` in every locale: what adding a mode's texts does."""
    for locale in SUPPORTED_LOCALES:
        (target / locale).mkdir(parents=True)
        ftl = target / locale / "messages.ftl"
        shutil.copy(LOCALES_DIR / locale / "messages.ftl", ftl)
        with ftl.open("a", encoding="utf-8") as out:
            out.writelines(f"\n{key} = {text}\n" for key, text in texts.items())
    return target


async def test_a_described_mode_needs_nothing_else(botapi: LocalBotAPI, idle_redis: RedisServer,
                                                   tmp_path: Path) -> None:
    """Outpaint offered in the bot: a description and its texts; the router, state and job follow."""
    mode = ModeDescription(mode=Mode.OUTPAINT, images=1, prompt=True, command="outpaint", menu=True)
    assert mode not in MODES
    i18n = I18n()
    texts = {key: f"[{key}]" for key in mode.text_keys if not i18n.bundles["en"].has_message(key)}
    assert set(texts) == {"cmd-outpaint", "btn-outpaint", "outpaint-ask-photo",
                          "outpaint-ask-photo-after-text", "outpaint-ask-text"}
    settings = make_settings(botapi, idle_redis.url)
    redis = Redis.from_url(idle_redis.url)
    bot = create_bot(settings)
    with_texts = I18n(locales_dir=_locales_with(texts, tmp_path))
    services = await create_services(settings, redis, bot, i18n=with_texts)
    queue = services.queue
    dp = create_dispatcher(services, extra_routers=[mode_router(mode)])
    user = botapi.user(int(time.time() * 1000) % 10**9 + 10**9, first_name="Ann", language_code="en")
    offset: int | None = None

    async def deliver() -> None:
        nonlocal offset
        for update in await bot.get_updates(offset=offset, timeout=0):
            offset = update.update_id + 1
            await dp.feed_update(bot, update)

    def last_text() -> str:
        return botapi.messages_to(user.chat_id)[-1].text or ""

    try:
        await user.send_text("/outpaint")
        await deliver()
        assert last_text() == "[outpaint-ask-photo]"
        kb = InlineKeyboardBuilder()
        kb.button(text="[btn-outpaint]", callback_data=MenuCb(mode=mode.mode.value))
        await bot.send_message(user.chat_id, "menu", reply_markup=kb.as_markup())
        await user.press(botapi.messages_to(user.chat_id)[-1], button_text="[btn-outpaint]")
        await deliver()
        assert last_text() == "[outpaint-ask-photo]"
        await user.send_photo(photo(320, 320), caption="a wider view of the bay")
        await deliver()
        assert "Your request is in the queue" in last_text()
        jobs = await queue.user_jobs(user.user_id)
        assert len(jobs) == 1
        record = await queue.job(jobs[0])
        assert record is not None and record.spec is not None
        assert record.spec.mode is Mode.OUTPAINT and len(record.spec.inputs) == 1
        assert record.spec.prompt == "a wider view of the bay"
        await queue.cancel(jobs[0], user.user_id)
    finally:
        await services.close()
        await bot.session.close()
        await redis.aclose()
    assert not botapi.violations and not botapi.server_errors


@pytest.mark.parametrize("d", MODES, ids=lambda d: d.mode.value)
def test_the_buttons_under_a_result_are_its_description_s(d: ModeDescription) -> None:
    """keyboards.result reads the description: its buttons, in order, and the edit rows only with EDIT."""
    from bot.ui.callbacks import ResultAction, ResultCb
    from contract.modes import Button

    markup = keyboards.result(EN, "job1", 0, buttons=d.result_buttons, output=d.output, read=True)
    actions = [ResultCb.unpack(b.callback_data).action for row in markup.inline_keyboard for b in row
               if b.callback_data is not None]
    wanted = [keyboards.RESULT_BUTTONS[b][0] for b in d.result_buttons if b is not Button.EDIT]
    assert actions[:len(wanted)] == wanted and actions[len(wanted)] is ResultAction.READ
    edits = {ResultAction.EDIT, ResultAction.ZOOM_1_5, ResultAction.PAN_LEFT}
    assert edits <= set(actions) if Button.EDIT in d.result_buttons else not edits & set(actions)


def test_an_edit_of_an_exact_ratio_result_keeps_its_exact_size() -> None:
    """Zoom, pan and edits of a 16:9 result generate its bucket and come back at the result's 512x288."""
    from bot.config import BotSettings
    from bot.services.editing import edit_spec
    from contract.editing import PanDirection
    from contract.spec import JobSpec, Mode, bucket_size, exact_size

    width, height = bucket_size("16:9", 512)
    result = JobSpec(mode=Mode.TEXT2IMAGE, prompt="a harbour", width=width, height=height, aspect="16:9",
                     steps=2, prior_steps=2, seed=1)
    config = BotSettings(BOT_TOKEN="1:x", BOT_STEPS=2, BOT_PRIOR_STEPS=2)  # type: ignore[call-arg]
    for mode, extra in ((Mode.ZOOM_OUT, {"zoom": 2.0}), (Mode.PAN, {"pan": PanDirection.UP}),
                        (Mode.EDIT, {"region": "the sky", "prompt": "stars"})):
        edit = edit_spec(result, config, mode=mode, inputs=("blob",), **extra)  # type: ignore[arg-type]
        assert (edit.width, edit.height, edit.aspect) == (width, height, "16:9")
        assert edit.output_size() == exact_size("16:9", 512) == (512, 288)
