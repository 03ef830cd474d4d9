"""The console in a real browser (Debian's Chromium, driven by Playwright; nothing downloads a
browser) against the test stack: the broker, PostgreSQL and the five services as processes.

The centre watches a new call appear on its board without a reload; reassigns (改派) an order from
the triage queue and the heat department's inbox receives it; the department signs for it and
resolves it; the resident's answer closes it and it shows on the public board, which holds no
phone number or name. A department cannot open another's dispatch. Every page passes axe-core's
rules with no serious or critical violation, and no page asks for anything but the service
itself. Each test saves screenshots under ``reports/test-output/console/`` (``WHISTLE_TEST_OUTPUT``
moves it) and prints their paths."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, BrowserContext, Locator, Page, Route, async_playwright, expect

from shared import contract
from tests.integration.bus import Bus, cloud_event
from tests.integration.flows import PHONE, call, dispatched, uid
from tools.stack import ROOT, Stack

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
OUTPUT = Path(os.environ.get("WHISTLE_TEST_OUTPUT", ROOT / "reports" / "test-output")) / "console"
CALLER = {"name": "钱阿姨", "phone": "13900004444"}  # the console's own caller: no merge with others'
WAIT = 45_000  # ms: what a page may take to follow the events (the read model, then the stream)


@pytest.fixture(scope="module")
def keys(stack: Stack) -> dict[str, str]:
    return json.loads((stack.home / "api-keys.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def chromium() -> str:
    """Debian's Chromium: the tests never download a browser."""
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install chromium fonts-noto-cjk"
    return CHROMIUM


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium(), headless=True, args=ARGS)
        yield browser
        await browser.close()


class People:
    """Browser contexts on the console, each a person; every request any of them makes is checked
    to go to the service itself (nothing from the internet)."""

    def __init__(self, browser: Browser, base: str, keys: dict[str, str]) -> None:
        self.browser, self.base, self.keys = browser, base, keys
        self.contexts: list[BrowserContext] = []
        self.foreign: list[str] = []

    async def page(self, width: int = 1280, height: int = 900) -> Page:
        context = await self.browser.new_context(
            base_url=self.base,
            viewport={"width": width, "height": height},
            locale="zh-CN",
            timezone_id="Asia/Shanghai",
        )
        await context.route("**/*", self._only_the_service)
        self.contexts.append(context)
        return await context.new_page()

    async def _only_the_service(self, route: Route) -> None:
        if route.request.url.startswith(self.base + "/"):
            await route.continue_()
        else:
            self.foreign.append(route.request.url)
            await route.abort()

    async def signed_in(self, key: str, width: int = 1280, height: int = 900) -> Page:
        page = await self.page(width, height)
        await page.goto("/console/login")
        await page.get_by_label("API 密钥 API key").fill(self.keys[key])
        await page.get_by_role("button", name="登录 Sign in").click()
        await expect(page.get_by_role("button", name="退出 Sign out")).to_be_visible()
        return page

    async def by_keyboard(self, key: str) -> Page:
        """Signed in with the keyboard alone: Tab from the top of the page to the key's field (past
        the skip link and the menu), type, Enter."""
        page = await self.page()
        await page.goto("/console/login")
        await accessible(page)
        for _ in range(8):
            await page.keyboard.press("Tab")
            if await page.evaluate("document.activeElement.id") == "key":
                break
        else:
            raise AssertionError("Tab never reached the key's field")
        await page.keyboard.type(self.keys[key])
        await page.keyboard.press("Enter")
        await expect(page.get_by_role("button", name="退出 Sign out")).to_be_visible()
        return page

    async def close(self) -> None:
        for context in self.contexts:
            await context.close()


@pytest.fixture
async def people(browser: Browser, stack: Stack, keys: dict[str, str]) -> AsyncIterator[People]:
    people = People(browser, f"http://127.0.0.1:{stack.port('api')}", keys)
    yield people
    await people.close()
    assert people.foreign == [], f"pages asked for something beyond the service: {people.foreign}"


async def shot(page: Page, name: str) -> Path:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    path = OUTPUT / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


async def accessible(page: Page) -> None:
    """axe-core's rules (WCAG A and AA: labels, contrast, keyboard, names, structure) on the page as
    it is; a serious or critical violation fails, with axe's report."""
    results = await Axe().run(page)
    bad = [v for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    assert not bad, f"{page.url}: {results.generate_report()}"


def no_personal_data(html: str) -> None:
    for name in (CALLER["name"], "孙大爷"):
        assert name not in html
    for phone in (CALLER["phone"], PHONE):
        assert phone not in html
    assert not re.search(r"(?<!\d)1[3-9]\d{9}(?!\d)", html), "a mobile number in clear"


async def test_the_centre_watches_a_new_call_appear_without_a_reload(
    people: People, bus: Bus, stack: Stack
) -> None:
    board = await people.signed_in("centre")
    await expect(board.get_by_role("heading", name="总览 Board")).to_be_visible()
    await board.evaluate("window.notReloaded = true")

    call_id = uid()
    order = f"WO-H-{call_id}"
    event = call(call_id, "翠湖苑", f"7号楼门口路灯不亮好几天了，电话{CALLER['phone']}", caller=CALLER)
    await bus.send(contract.HOTLINE_CALLS, call_id, event)

    link = board.locator("#board").get_by_role("link", name=order)
    await expect(link.first).to_be_visible(timeout=WAIT)
    assert await board.evaluate("window.notReloaded === true"), "the board was reloaded"
    no_personal_data(await board.content())
    await shot(board, "01-centre-board-live")
    await accessible(board)

    await link.first.click()
    await expect(board.get_by_role("heading", name=re.compile(f"工单 {order}"))).to_be_visible()
    await expect(board.get_by_role("heading", name="时间线 Timeline")).to_be_visible()
    await expect(board.locator(".timeline")).to_contain_text("受理立单", timeout=WAIT)
    html = await board.content()
    no_personal_data(html)
    assert "139****4444" in html  # the number the caller dictated, masked
    await shot(board, "02-order-page")
    await accessible(board)

    await board.get_by_role("link", name="三率 Rates").click()
    await expect(board.get_by_role("heading", name="部门排名 By department")).to_be_visible()
    await expect(board.get_by_role("img", name=re.compile("响应率 Response"))).to_be_visible()
    await shot(board, "03-rates")
    await accessible(board)


async def test_a_triage_order_is_reassigned_answered_closed_and_shown_in_public(
    people: People, bus: Bus, stack: Stack
) -> None:
    call_id = uid()
    order = f"WO-H-{call_id}"
    event = call(
        call_id, "", f"家里那个又不行了，冻得睡不着，回电{CALLER['phone']}", address="说不清", caller=CALLER
    )
    await bus.send(contract.HOTLINE_CALLS, call_id, event)
    [desk] = await dispatched(bus, order)
    assert desk.data["department"] == "street_desk"

    centre = await people.signed_in("centre")
    heat = await people.signed_in("department:heat", width=390, height=844)  # a phone
    await expect(heat.get_by_role("heading", name=re.compile("待办 Inbox"))).to_be_visible()

    await centre.goto("/console/triage")
    card = centre.locator("article", has=centre.get_by_role("link", name=order))
    await reload_until_shown(centre, card)
    await card.locator("summary", has_text="改派 Reassign").click()
    await card.get_by_label("类别 Category").select_option("heating")
    await card.get_by_label("社区 Community").fill("杨家庄社区")
    await card.get_by_label("主办部门 Lead").fill("heat")
    await card.get_by_label("改派说明 Note (必填)").fill("回访确认：供暖问题，杨家庄社区")
    no_personal_data(await centre.content())
    await shot(centre, "04-triage-reassign")
    await accessible(centre)
    await card.get_by_role("button", name="改派 Reassign").click()
    await expect(centre.get_by_role("status").filter(has_text="已发送：改派")).to_be_visible()

    # The heat department's inbox receives it, without a reload (its stream).
    heat_card = heat.locator("article", has_text=order)
    await expect(heat_card).to_be_visible(timeout=WAIT)
    await expect(heat_card).to_contain_text("杨家庄社区")
    no_personal_data(await heat.content())
    await shot(heat, "05-heat-inbox-phone")
    await accessible(heat)

    await heat_card.get_by_role("button", name=re.compile("签收 Accept")).click()
    await expect(heat.get_by_role("status").filter(has_text="已发送：签收")).to_be_visible()
    heat_card = heat.locator("article", has_text=order)
    resolve = heat_card.locator("summary", has_text="办结 Resolve")
    await expect(resolve).to_be_visible(timeout=WAIT)
    await resolve.click()
    await heat_card.get_by_label("办理结果 Result").fill("已排气，室温恢复到二十度")
    await shot(heat, "06-heat-resolve-phone")
    await heat_card.get_by_role("button", name="提交办结 Submit").click()
    await expect(heat.get_by_role("status").filter(has_text="已发送：办结")).to_be_visible()
    await expect(heat.locator("article", has_text=order)).to_have_count(0, timeout=WAIT)

    # The resident says it is fixed: the order closes and shows on the public board.
    happy = {"work_order_id": order, "satisfaction": "satisfied", "resolved": True}
    await bus.send(contract.FEEDBACK, order, cloud_event("resident.feedback.received", happy))
    await centre.goto(f"/console/orders/{order}")
    await reload_until_shown(centre, centre.locator(".timeline li", has_text="居民评价：满意"))
    await expect(centre.locator(".timeline")).to_contain_text("改派")
    await shot(centre, "07-order-closed")

    public = await people.page()
    await public.goto("/public/?community=杨家庄社区&category=heating")
    row = public.locator("table.public-list tbody tr", has_text="杨家庄社区")
    await reload_until_shown(public, row.filter(has_text="满意"))
    await expect(row.first).to_contain_text("供暖")
    await expect(row.first).to_contain_text("已办结")
    html = await public.content()
    no_personal_data(html)
    assert "室温" not in html and "冻得" not in html  # no free text: neither the result nor the call
    await shot(public, "08-public-board")
    await accessible(public)


async def test_a_department_cannot_open_anothers_dispatch(
    people: People, bus: Bus, stack: Stack, keys: dict[str, str]
) -> None:
    call_id = uid()
    order = f"WO-H-{call_id}"
    await bus.send(contract.HOTLINE_CALLS, call_id, call(call_id, "福莱山庄", caller=CALLER))
    [lead, *_] = await dispatched(bus, order)
    assert lead.data["department"] == "heat"
    dispatch_id = lead.data["dispatch_id"]

    heat = await people.signed_in("department:heat")
    await heat.goto(f"/console/dispatches/{dispatch_id}")
    await expect(heat.get_by_role("heading", name=re.compile(f"派单 {dispatch_id}"))).to_be_visible(
        timeout=WAIT
    )
    await shot(heat, "09-heat-own-dispatch")
    await accessible(heat)

    water = await people.by_keyboard("department:water")
    answer = await water.goto(f"/console/dispatches/{dispatch_id}")
    assert answer is not None and answer.status == 403
    await expect(water.get_by_role("heading", name="无权查看 Not yours")).to_be_visible()
    assert "暖气" not in await water.content()
    await shot(water, "10-water-refused")
    await accessible(water)
    refused = await water.goto(f"/console/orders/{order}")  # the centre's page
    assert refused is not None and refused.status == 403
    # Nor may it act on it: the same answer, and nothing sent.
    csrf = await water.locator("input[name=csrf]").first.get_attribute("value")
    posted = await water.request.post(
        f"/console/dispatches/{dispatch_id}/accept", form={"csrf": csrf or "", "back": "inbox"}
    )
    assert posted.status == 403


async def test_sessions_and_forms_refuse_what_they_must(stack: Stack, keys: dict[str, str]) -> None:
    """A wrong key signs nobody in; the cookie is HttpOnly, SameSite=Strict and expires; a form
    without the session's token, or from another origin, changes nothing; each role only its
    pages; the static files and the public board need no session."""
    base = f"http://127.0.0.1:{stack.port('api')}"
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        wrong = await http.post("/console/login", data={"key": "whistle-dev-nope"})
        assert wrong.status_code == 401 and "whistle_console" not in wrong.headers.get("set-cookie", "")
        channel = await http.post("/console/login", data={"key": keys["channel"]})
        assert channel.status_code == 403
        assert (await http.get("/console/")).status_code == 303  # to the sign-in page

        signed = await http.post("/console/login", data={"key": keys["centre"]})
        assert signed.status_code == 303 and signed.headers["location"] == "/console/"
        cookie = signed.headers["set-cookie"].lower()
        assert all(flag in cookie for flag in ("httponly", "samesite=strict", "max-age=", "path=/"))
        page = await http.get("/console/triage")
        assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]

        reassign = "/console/orders/WO-H-anything/reassign"
        no_token = await http.post(reassign, data={"note": "x"})
        assert no_token.status_code == 403
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token is not None
        foreign = await http.post(
            reassign, data={"csrf": token.group(1), "note": "x"}, headers={"Origin": "http://evil.example"}
        )
        assert foreign.status_code == 403
        unknown = await http.post(reassign, data={"csrf": token.group(1), "note": "x"})
        assert unknown.status_code == 404  # checked by the JSON API's own code: no such order

        tampered = http.cookies["whistle_console"][:-2] + "xx"
        http.cookies.set("whistle_console", tampered)
        assert (await http.get("/console/")).status_code == 303

    async with httpx.AsyncClient(base_url=base, timeout=10) as anyone:
        assert (await anyone.get("/public/")).status_code == 200
        assert (await anyone.get("/console/static/console.css")).status_code == 200
        assert (await anyone.get("/console/static/../app.py")).status_code == 404
        assert (await anyone.get("/console/live/board")).status_code == 303


async def reload_until_shown(page: Page, locator: Locator) -> None:
    """Reloads ``page`` until ``locator`` shows, within ``WAIT`` (for the pages without a live
    stream: the triage queue, the public board); each look is Playwright's own auto-waiting."""
    deadline = time.monotonic() + WAIT / 1000
    while True:
        try:
            await expect(locator.first).to_be_visible(timeout=2_000)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            await page.reload()
