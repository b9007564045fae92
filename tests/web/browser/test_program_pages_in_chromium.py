"""The programs pages, the policy page, the wallet's programs and the till's camera, in Chromium.

Each page renders without console errors and with 0 serious or critical axe violations, at
desktop and at phone width (screenshots in ``artifacts/screenshots/``); forms work when a person
fills them in; a cashier is refused; the till reads a member's QR code from the camera (a fake
camera that films a QR code: Chromium's ``--use-file-for-fake-video-capture``).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path
from typing import Any

import segno
from page_world import World
from test_pages_in_chromium import Watched, check_page, new_page, sign_in
from test_pages_in_chromium import world as world

from coalition.db import utcnow
from coalition.programs.hooks import after_earn
from coalition.programs.quests import create_quest
from coalition.programs.rewards import create_reward
from coalition.programs.stamps import create_stamp_card
from coalition.programs.vouchers import claim_reward

PROGRAM_PAGES = ["/console/programs", "/console/campaigns"]


async def both_widths(chromium: Any, base: str, email: str, paths: list[str], axe_js: str, shots: Path,
                      prefix: str, locale: str = "en-GB") -> None:
    for mobile in (False, True):
        watched = await new_page(chromium, base, locale=locale, mobile=mobile)
        await sign_in(watched, email)
        for path in paths:
            name = prefix + path.replace("/", "_") + ("_phone" if mobile else "")
            await check_page(watched, path, axe_js, shots, name)


async def test_an_owner_builds_programs_in_the_browser(live_server: str, chromium: Any, world: World,
                                                      axe_js: str, screenshots: Path) -> None:
    owner = await new_page(chromium, live_server)
    await sign_in(owner, world.email["ownerA"])
    page = owner.page
    await page.goto("/console/programs")
    await page.fill("#r-name", "Free coffee")
    await page.fill("#r-points", "50")
    await page.fill("#r-stock", "20")
    await page.click("form:has(#r-name) button")
    await page.wait_for_load_state()
    assert "Free coffee" in await page.inner_text("[role=status]")
    await page.fill("#c-name", "Ten coffees")
    await page.fill("#c-stamps", "10")
    await page.select_option("#c-reward", label="Free coffee")
    await page.click("form:has(#c-name) button")
    await page.wait_for_load_state()
    assert "Ten coffees" in await page.inner_text("main")
    await page.fill("#r-name", "Cake")  # refused on the page (the browser's own checks pass), nothing lost
    await page.fill("#r-points", "10")
    await page.fill("#r-stock", "0")
    await page.click("form:has(#r-name) button")
    await page.wait_for_load_state()
    assert "Stock is a whole number" in await page.inner_text("[role=alert]")
    assert await page.input_value("#r-name") == "Cake"
    assert owner.errors == ["Failed to load resource: the server responded with a status of 400 (Bad Request)"]
    owner.errors.clear()  # the refusal's 400, as meant
    await page.screenshot(path=str(screenshots / "owner_programs_refused.png"), full_page=True)
    await page.goto("/console/campaigns")
    await page.fill("#k-name", "Double week")
    await page.check("input[value=MULTIPLIER]")
    await page.fill("#k-offer", "200")
    await page.fill("#k-ends", (utcnow() + dt.timedelta(days=10)).date().isoformat())
    await page.click("form:has(#k-name) button")
    await page.wait_for_url("**/console/campaigns/*")
    assert "Too small to report" in await page.inner_text("main")
    campaign = page.url.split(live_server)[1]
    assert owner.errors == []
    await both_widths(chromium, live_server, world.email["ownerA"], [*PROGRAM_PAGES, campaign], axe_js,
                      screenshots, "owner")
    await both_widths(chromium, live_server, world.email["ownerA"], ["/console/programs", campaign], axe_js,
                      screenshots, "owner_he", locale="he-IL")
    cashier = await new_page(chromium, live_server)
    await sign_in(cashier, world.email["cashierA"])
    for path in [*PROGRAM_PAGES, campaign, "/admin/policy"]:
        response = await cashier.page.goto(path)
        assert response is not None and response.status == 403, path
    other = await new_page(chromium, live_server)
    await sign_in(other, world.email["ownerB"])
    response = await other.page.goto(campaign)
    assert response is not None and response.status == 404


async def test_an_admin_edits_the_policy_in_the_browser(live_server: str, chromium: Any, world: World,
                                                       axe_js: str, screenshots: Path) -> None:
    await both_widths(chromium, live_server, world.email["admin"], ["/admin/policy"], axe_js, screenshots, "admin")
    admin = await new_page(chromium, live_server)
    await sign_in(admin, world.email["admin"])
    page = admin.page
    await page.goto("/admin/policy")
    await page.fill("#p-rate", "1.7")
    await page.click("form:has(#p-rate) button")
    await page.wait_for_load_state()
    assert "reimbursement rate" in (await page.inner_text("[role=alert]")).lower()
    assert await page.input_value("#p-rate") == "1.7"
    await page.screenshot(path=str(screenshots / "admin_policy_refused.png"), full_page=True)
    assert admin.errors == ["Failed to load resource: the server responded with a status of 400 (Bad Request)"]
    admin.errors.clear()  # the refusal's 400, as meant
    await page.fill("#p-rate", "0.8")
    await page.click("form:has(#p-rate) button")
    await page.wait_for_load_state()
    assert "stored" in await page.inner_text("[role=status]")
    await page.fill("input[name=tier1_threshold]", "700")
    await page.click("form:has(#t-grace) button.primary")
    await page.wait_for_load_state()
    assert "every member was reviewed" in await page.inner_text("[role=status]")
    assert await page.input_value("input[name=tier1_threshold]") == "700"
    danish = await new_page(chromium, live_server, locale="da-DK")
    await sign_in(danish, world.email["admin"])
    await check_page(danish, "/admin/policy", axe_js, screenshots, "admin_policy_da")
    assert admin.errors == []


async def test_the_wallet_shows_programs_on_a_phone(live_server: str, chromium: Any, world: World, db: Any,
                                                   ledger: Any, clock: Any, axe_js: str, screenshots: Path) -> None:
    now = clock.now = utcnow() - dt.timedelta(minutes=5)
    reward = await create_reward(db, merchant_id=world.merchant["A"], name="Free bun", points_cost=5,
                                 idempotency_key="r1", now=now)
    await create_stamp_card(ledger, merchant_id=world.merchant["A"], name="Bun card", stamps_required=6,
                            min_purchase_minor=0, reward_id=reward.id, idempotency_key="s1", now=now)
    await create_quest(db, name="Visit both shops", merchant_ids=[world.merchant["A"], world.merchant["B"]],
                       visits_required=2, window_days=30, bonus_points=50, funding="NETWORK", starts_at=now,
                       ends_at=now + dt.timedelta(days=30), idempotency_key="q1", now=now)
    for n in range(2):
        await after_earn(ledger, await ledger.earn(merchant_id=world.merchant["A"], loyalty_id=world.loyalty["alice"],
                                                   purchase_amount_minor=30_00, idempotency_key=f"w{n}"))
    await claim_reward(ledger, reward_id=reward.id, loyalty_id=world.loyalty["alice"], idempotency_key="c",
                       now=now, merchant_id=world.merchant["A"])
    member = await new_page(chromium, live_server, mobile=True)
    # The wallet reloads itself when its code changes (static/wallet.js, as little as a second away):
    # a reload in the middle of a check aborts it, so this test serves the page without that script.
    await member.page.context.route("**/static/wallet.js", lambda route: route.fulfill(
        body="", content_type="text/javascript"))
    await member.page.goto(f"/me/claim?code={world.claim['alice']}")
    await member.page.click("button.primary")
    await member.page.wait_for_url("**/me")
    for lang in ("en", "he", "lv", "sv", "da"):
        await member.page.context.add_cookies([{"name": "lang", "value": lang, "url": live_server}])
        await check_page(member, "/me", axe_js, screenshots, f"me_wallet_programs_{lang}")
        text = await member.page.inner_text("main")
        assert "Bun card" in text and "Free bun" in text and "Visit both shops" in text
        assert await member.page.evaluate("document.documentElement.dir") == ("rtl" if lang == "he" else "ltr")
        if lang == "en":
            assert "2 of 6 stamps" in text and "1 of 2 partner shops visited" in text


def qr_video(text: str, path: Path, width: int = 640, height: int = 480) -> Path:
    """A two-frame Y4M video of the QR code of ``text`` on white: what a fake camera films."""
    matrix = segno.make(text, error="m").matrix
    size = len(matrix)
    scale = min(width, height) * 3 // 4 // size
    left, top = (width - size * scale) // 2, (height - size * scale) // 2
    luma = bytearray(b"\xff" * (width * height))
    for y, row in enumerate(matrix):
        for x, dark in enumerate(row):
            if dark:
                for dy in range(scale):
                    start = (top + y * scale + dy) * width + left + x * scale
                    luma[start:start + scale] = b"\x00" * scale
    chroma = b"\x80" * (width // 2 * height // 2)
    frame = b"FRAME\n" + bytes(luma) + chroma + chroma
    path.write_bytes(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode() + frame + frame)
    return path


async def test_the_till_reads_the_members_qr_code_from_the_camera(live_server: str, chromium: Any, world: World,
                                                                  keys: Any, tmp_path: Path, screenshots: Path) -> None:
    # ``chromium`` (the shared one) skips or fails the test where Chromium is missing; this test needs
    # its own with a fake camera, from the same executable.
    executable = os.environ.get("COALITION_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    from playwright.async_api import async_playwright

    video = qr_video(keys.qr_payload(world.loyalty["alice"]) + "~12345678", tmp_path / "qr.y4m")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=[
            "--no-sandbox", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={video}"])
        try:
            context = await browser.new_context(base_url=live_server, viewport={"width": 390, "height": 844},
                                                permissions=["camera"])
            cashier = Watched(await context.new_page())
            await sign_in(cashier, world.email["cashierA"])
            page = cashier.page
            assert page.url.endswith("/console/till")
            await page.click("[data-scan-start]")
            await page.wait_for_url("**/console/till?q=*", timeout=20_000)
            assert f"Member {world.loyalty['alice']}" in await page.inner_text("main")
            assert await page.input_value("#proof") == "12345678"  # the wallet's code, ready for a redemption
            await page.screenshot(path=str(screenshots / "till_scanned_phone.png"), full_page=True)
            # the decoder itself, on a QR code drawn in the page (jsQR here: no BarcodeDetector on Linux)
            decoded = await page.evaluate("""async (src) => {
                const img = new Image(); img.src = src; await img.decode();
                return await window.coalitionDecodeQR(img); }""",
                                          segno.make("COA1.test.value", error="m").png_data_uri(scale=6, border=4))
            assert decoded == "COA1.test.value"
            assert cashier.errors == []
        finally:
            await browser.close()


async def test_the_till_works_without_script(live_server: str, chromium: Any, world: World) -> None:
    context = await chromium.new_context(base_url=live_server, java_script_enabled=False)
    page = await context.new_page()
    await page.goto("/login")
    await page.fill("#email", world.email["cashierA"])
    from page_world import PASSWORD

    await page.fill("#password", PASSWORD)
    await page.click("button.primary")
    await page.wait_for_load_state()
    assert not await page.is_visible("[data-scan-start]")  # hidden until the script shows it
    await page.fill("#q", world.loyalty["alice"])
    await page.click("form[role=search] button")
    await page.wait_for_load_state()
    assert f"Member {world.loyalty['alice']}" in await page.inner_text("main")
