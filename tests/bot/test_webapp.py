"""The brush editor (Mini App) in a real browser: Debian's headless Chromium, driven by selenium
through /usr/bin/chromedriver (never a downloaded driver), against the bot's own web server in
polling mode, the local Bot API server and a real worker. A painted stroke becomes an inpaint job
with exactly that mask; forged, stale and other users' init data get nothing."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from bot.webapp import INIT_DATA_HEADER, INIT_DATA_MAX_AGE_S
from contract.spec import Mode
from devkit.botapi import LocalBotAPI
from devkit.botapi.models import SentMessage
from devkit.botapi.webapp import forged_init_data, init_data, launch_url, open_web_app, web_app_button
from devkit.redis_server import RedisServer
from tests.bot.conftest import TOKEN, Harness, running_harness
from tests.bot.images import open_image

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
"""Debian's packages (scripts/install-chromium.sh); selenium is pointed at them, so Selenium Manager
never looks for (or downloads) a browser or a driver."""
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--window-size=600,900")
PAGE_WAIT_S = 20
"""The page loads its picture in well under a second; two busy cores may take longer."""
PAINT = "🖌 Paint"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    assert CHROMIUM.exists() and CHROMEDRIVER.exists(), "run scripts/install-chromium.sh"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
        try:
            yield driver
        finally:
            driver.quit()


def webapp_bot(api: LocalBotAPI, redis_url: str) -> contextlib.AbstractAsyncContextManager[Harness]:
    port = free_port()
    return running_harness(api, redis_url, WEBAPP_URL=f"http://127.0.0.1:{port}", WEBAPP_HOST="127.0.0.1",
                           WEBAPP_PORT=port)


@pytest.fixture
async def app_bot(botapi: LocalBotAPI, bot_redis: RedisServer,
                  worker_process: object) -> AsyncIterator[Harness]:
    async with webapp_bot(botapi, bot_redis.url) as h:
        yield h


async def result_for(h: Harness, prompt: str) -> tuple[Any, SentMessage]:
    user = h.user()
    await user.send_text(f"/imagine {prompt}")
    return user, await h.wait_result(user)


def in_browser(driver: webdriver.Chrome, url: str) -> None:
    driver.get(url)
    WebDriverWait(driver, PAGE_WAIT_S).until(
        lambda d: d.execute_script("return document.body.dataset.ready === '1' || "
                                   "document.getElementById('status').textContent !== ''"))


def paint_stroke(driver: webdriver.Chrome) -> None:
    """A horizontal stroke across the middle of the picture, from 25 % to 75 % of its width."""
    canvas = driver.find_element(By.ID, "paint")
    width = canvas.size["width"]
    chain = ActionChains(driver)
    chain.move_to_element_with_offset(canvas, -width // 4, 0).click_and_hold()
    for _ in range(10):
        chain.move_by_offset(width // 20, 0)
    chain.release().perform()


async def test_a_painted_stroke_becomes_an_inpaint_job_with_that_mask(app_bot: Harness,
                                                                     browser: webdriver.Chrome) -> None:
    h = app_bot
    user, result = await result_for(h, "a harbour at noon")
    button = web_app_button(result, PAINT)
    assert button["web_app"]["url"].startswith(h.settings.webapp_url + "/webapp/edit?job=")
    known = set(await h.jobs_of(user.user_id))
    source = open_image(result.photo_bytes or b"")

    await asyncio.to_thread(in_browser, browser, open_web_app(user, result, PAINT))
    assert browser.execute_script("return document.body.dataset.ready") == "1"
    assert browser.title == "Paint what to change"
    # The picture on the page is the result, at its own size.
    size = browser.execute_script("const c = document.getElementById('picture'); return [c.width, c.height]")
    assert tuple(size) == source.size

    # Submitting before painting is refused on the page; then paint, say what, submit.
    await asyncio.to_thread(browser.find_element(By.ID, "submit").click)
    assert browser.find_element(By.ID, "status").text == "Paint over the part to change first."
    await asyncio.to_thread(paint_stroke, browser)
    await asyncio.to_thread(browser.find_element(By.ID, "undo").click)  # undo, then paint again
    assert browser.execute_script("return strokes.length") == 0
    await asyncio.to_thread(paint_stroke, browser)
    browser.find_element(By.ID, "prompt").send_keys("a red sailing boat")
    before = h.count(user)
    await asyncio.to_thread(browser.find_element(By.ID, "submit").click)
    await asyncio.to_thread(WebDriverWait(browser, PAGE_WAIT_S).until,
                            lambda d: d.execute_script("return document.body.dataset.sent === '1'"))
    assert "Sent!" in browser.find_element(By.ID, "status").text

    # The bot queued an ordinary inpaint job: its status message is in the chat ...
    await h.wait_text(user, "Your request", after=before)
    [job_id] = [j for j in await h.jobs_of(user.user_id) if j not in known]
    record = await h.queue.job(job_id)
    assert record is not None and record.spec is not None and record.spec.mode is Mode.INPAINT
    assert record.spec.prompt == "a red sailing boat" and record.spec.mask is not None
    # ... with the painted stroke as its mask: white along the middle, black far from it.
    mask_bytes = await h.redis.get(record.spec.mask)
    assert isinstance(mask_bytes, bytes)
    mask = np.asarray(Image.open(io.BytesIO(mask_bytes)).convert("L"))
    w, h_px = source.size
    assert mask.shape == (h_px, w) and set(np.unique(mask)) <= {0, 255}
    assert mask[h_px // 2, w // 3] == 255 and mask[h_px // 2, 2 * w // 3] == 255
    assert mask[h_px // 10, w // 2] == 0 and mask[h_px // 2, w // 20] == 0
    painted = (mask == 255).mean()
    assert 0.02 < painted < 0.4, painted
    # ... and its result comes back with the buttons, the brush among them.
    def is_edit(m: SentMessage) -> bool:
        return m.kind == "photo" and "a red sailing boat" in (m.caption or "")

    edited = await h.wait_message(user, is_edit, timeout=120)
    assert PAINT in [b["text"] for b in edited.inline_buttons]


async def test_forged_stale_and_foreign_init_data_get_nothing(app_bot: Harness,
                                                              browser: webdriver.Chrome) -> None:
    h = app_bot
    owner, result = await result_for(h, "a quiet street")
    stranger = h.user(first_name="Eve")
    url = web_app_button(result, PAINT)["web_app"]["url"]
    query = url.split("?", 1)[1]
    base = h.settings.webapp_url + "/webapp/api/"
    cases = {
        "forged": (forged_init_data(TOKEN, owner.to_json(), as_user_id=stranger.user_id), 401),
        "wrong bot": (init_data("1:another-bots-token", owner.to_json()), 401),
        "stale": (init_data(TOKEN, owner.to_json(), auth_date=int(time.time()) - INIT_DATA_MAX_AGE_S - 5),
                  401),
        "none": ("", 401),
        "someone else's": (init_data(TOKEN, stranger.to_json()), 403),
    }
    body = json.dumps({"prompt": "a fire", "mask": "data:image/png;base64,"})
    known = set(await h.jobs_of(owner.user_id)) | set(await h.jobs_of(stranger.user_id))
    async with aiohttp.ClientSession() as http:
        for name, (data, status) in cases.items():
            async with http.get(base + "image?" + query, headers={INIT_DATA_HEADER: data}) as response:
                assert response.status == status, name
                assert response.content_type == "application/json", name  # no picture
            headers = {INIT_DATA_HEADER: data, "Content-Type": "application/json"}
            async with http.post(base + "edit?" + query, data=body, headers=headers) as response:
                assert response.status == status, name
        async with http.get(base + "image?" + query,
                            headers={INIT_DATA_HEADER: init_data(TOKEN, owner.to_json())}) as response:
            assert response.status == 200 and response.content_type == "image/png"  # the genuine one
    assert set(await h.jobs_of(owner.user_id)) | set(await h.jobs_of(stranger.user_id)) == known

    # In the browser: the page opened with forged init data says so and offers nothing to send.
    forged = launch_url(url, forged_init_data(TOKEN, owner.to_json(), as_user_id=stranger.user_id))
    await asyncio.to_thread(in_browser, browser, forged)
    assert browser.find_element(By.ID, "status").text.startswith("This editor has expired")
    assert browser.execute_script("return document.body.dataset.ready") is None
    assert not browser.find_element(By.ID, "submit").is_enabled()
