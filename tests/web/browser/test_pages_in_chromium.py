"""The pages in a real browser: sign in, every page clean (console, axe), the till, roles, isolation, Hebrew.

Screenshots of every page land in ``artifacts/screenshots/`` for review.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from page_world import PASSWORD, World, build_world

from coalition.network.jobs import run_analysis
from coalition.settlement import report_page
from coalition.settlement.service import run_settlement

SERIOUS = {"serious", "critical"}
OWNER_PAGES = ["/console", "/console/till", "/console/customers", "/console/insights", "/console/statements",
               "/console/staff"]
ADMIN_PAGES = ["/admin", "/admin/merchants", "/admin/fraud", "/admin/network", "/admin/settlement"]


@pytest.fixture
async def world(db: Any, keys: Any, ledger: Any, settings: Any, clock: Any) -> World:
    world = await build_world(db, keys)
    for n in range(3):  # some history, a settlement and an analysis: the pages have something to show
        await ledger.earn(merchant_id=world.merchant["A"], loyalty_id=world.loyalty["alice"],
                          purchase_amount_minor=40_00 + n, idempotency_key=f"a{n}")
        await ledger.earn(merchant_id=world.merchant["B"], loyalty_id=world.loyalty["bob"],
                          purchase_amount_minor=25_00, idempotency_key=f"b{n}")
        clock.advance(hours=1)
    await ledger.redeem(merchant_id=world.merchant["B"], loyalty_id=world.loyalty["alice"], points=30,
                        idempotency_key="r1")
    clock.advance(hours=1)
    await run_settlement(db, settings, keys, period_end=clock.now, idempotency_key="s1", now=clock.now)
    await run_analysis(db, settings, now=clock.now)
    return world


class Watched:
    """A page whose console errors and uncaught exceptions are collected."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        page.on("pageerror", lambda error: self.errors.append(str(error)))


async def new_page(chromium: Any, base: str, *, locale: str = "en-GB", mobile: bool = False) -> Watched:
    size = {"width": 390, "height": 844} if mobile else {"width": 1280, "height": 900}
    context = await chromium.new_context(base_url=base, locale=locale, viewport=size)
    return Watched(await context.new_page())


async def sign_in(watched: Watched, email: str) -> None:
    page = watched.page
    await page.goto("/login")
    await page.fill("#email", email)
    await page.fill("#password", PASSWORD)
    await page.click("button.primary")
    await page.wait_for_load_state()


async def check_page(watched: Watched, path: str, axe_js: str, shots: Path, name: str) -> None:
    page = watched.page
    response = await page.goto(path)
    assert response is not None and response.status == 200, f"{path}: {response and response.status}"
    await page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
    # Through DevTools rather than a <script>: the pages' CSP rightly refuses inline scripts.
    await page.evaluate(f"() => {{ {axe_js}\n; window.axe = axe; }}")
    result = await page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    bad = [f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
           for v in result["violations"] if v["impact"] in SERIOUS]
    assert bad == [], f"{path}: {bad}"
    assert watched.errors == [], f"{path}: console errors {watched.errors}"


async def statement_link(watched: Watched) -> str:
    """The newest statement's page, as the console's statements page links it."""
    await watched.page.goto("/console/statements")
    href = await watched.page.locator("a[href^='/statements/'][href$='.html']").first.get_attribute("href")
    assert href is not None
    return href


async def test_every_page_renders_clean_for_each_role(live_server: str, chromium: Any, world: World,
                                                     axe_js: str, screenshots: Path) -> None:
    owner = await new_page(chromium, live_server)
    await sign_in(owner, world.email["ownerA"])
    assert owner.page.url.endswith("/console")
    for path in [*OWNER_PAGES, f"/console/customers/{world.loyalty['alice']}"]:
        await check_page(owner, path, axe_js, screenshots, "owner" + path.replace("/", "_"))
    await check_page(owner, await statement_link(owner), axe_js, screenshots, "owner_statement")
    assert await owner.page.locator("svg[role=img]").count() == 2  # the matrix and the net positions, drawn inline
    admin = await new_page(chromium, live_server)
    await sign_in(admin, world.email["admin"])
    for path in ADMIN_PAGES:
        await check_page(admin, path, axe_js, screenshots, "admin" + path.replace("/", "_"))
    member = await new_page(chromium, live_server, mobile=True)
    await member.page.goto(f"/me/claim?code={world.claim['alice']}")
    await check_page(member, f"/me/claim?code={world.claim['alice']}", axe_js, screenshots, "me_claim")
    await member.page.click("button.primary")
    await member.page.wait_for_url("**/me")
    await check_page(member, "/me", axe_js, screenshots, "me_wallet")
    anonymous = await new_page(chromium, live_server)
    await check_page(anonymous, "/login", axe_js, screenshots, "login")


async def test_the_till_earns_and_redeems_on_a_phone(live_server: str, chromium: Any, world: World,
                                                    screenshots: Path) -> None:
    cashier = await new_page(chromium, live_server, mobile=True)
    await sign_in(cashier, world.email["cashierA"])
    page = cashier.page
    assert page.url.endswith("/console/till")
    await page.fill("#q", "alice@example.com")
    await page.click("form[role=search] button")
    before = int((await page.inner_text("[data-testid=balance]")).replace(",", ""))
    await page.fill("#amount", "20.00")
    await page.click("form:has(#amount) button")
    await page.wait_for_load_state()
    assert "Added 20 points" in await page.inner_text("[role=status]")
    await page.fill("#points", "15")
    await page.click("form:has(#points) button")
    await page.wait_for_load_state()
    assert "Redeemed 15 points" in await page.inner_text("[role=status]")
    assert int((await page.inner_text("[data-testid=balance]")).replace(",", "")) == before + 20 - 15
    await page.screenshot(path=str(screenshots / "till_phone.png"), full_page=True)
    assert cashier.errors == []


async def test_a_cashier_cannot_open_admin_or_owner_pages(live_server: str, chromium: Any, world: World) -> None:
    cashier = await new_page(chromium, live_server)
    await sign_in(cashier, world.email["cashierA"])
    for path in [p for p in OWNER_PAGES if p != "/console/till"] + ADMIN_PAGES[:4]:
        response = await cashier.page.goto(path)
        assert response is not None and response.status == 403, path
        assert "Not allowed" in await cashier.page.inner_text("h1")


async def test_a_merchant_never_sees_another_merchants_customers(live_server: str, chromium: Any,
                                                               world: World) -> None:
    owner = await new_page(chromium, live_server)
    await sign_in(owner, world.email["ownerB"])
    listing = await owner.page.goto("/console/customers")
    assert listing is not None and listing.status == 200
    text = await owner.page.inner_text("main")
    assert world.loyalty["bob"] in text
    assert world.loyalty["alice"] in text  # alice redeemed at B: B's customer too
    response = await owner.page.goto(f"/console/customers/{world.loyalty['alice']}")
    assert response is not None and response.status == 200
    other = await new_page(chromium, live_server)
    await sign_in(other, world.email["ownerA"])
    response = await other.page.goto(f"/console/customers/{world.loyalty['bob']}")
    assert response is not None and response.status == 404
    assert world.loyalty["bob"] not in await other.page.inner_text("main")


async def test_hebrew_is_laid_out_right_to_left(live_server: str, chromium: Any, world: World, axe_js: str,
                                                screenshots: Path) -> None:
    owner = await new_page(chromium, live_server, locale="he-IL")
    await sign_in(owner, world.email["ownerA"])
    await check_page(owner, "/console", axe_js, screenshots, "owner_console_he")
    page = owner.page
    assert await page.evaluate("document.documentElement.dir") == "rtl"
    assert await page.evaluate("document.documentElement.lang") == "he"
    width = await page.evaluate("document.documentElement.clientWidth")
    brand = await page.locator(".brand").bounding_box()
    assert brand is not None and brand["x"] > width / 2, "the brand starts on the right in Hebrew"
    assert "לוח בקרה" in await page.inner_text("h1")
    await check_page(owner, "/console/statements", axe_js, screenshots, "owner_statements_he")
    await check_page(owner, await statement_link(owner), axe_js, screenshots, "owner_statement_he")
    assert await page.evaluate("document.documentElement.dir") == "rtl"
    chart = page.locator("#positions-chart svg")
    assert "פוזיציות נטו" in (await chart.locator("title").first.text_content() or "")
    # A merchant's name in the bar chart ends where the bars begin: its label stays left of the plot.
    label, bar = chart.locator("text").nth(1), chart.locator("rect").first
    label_box, bar_box = await label.bounding_box(), await bar.bounding_box()
    assert label_box is not None and bar_box is not None and label_box["x"] + label_box["width"] <= bar_box["x"] + 1
    danish = await new_page(chromium, live_server, locale="da-DK")
    await sign_in(danish, world.email["ownerA"])
    await check_page(danish, "/console/statements", axe_js, screenshots, "owner_statements_da")
    assert await danish.page.evaluate("document.documentElement.dir") == "ltr"


async def test_a_long_report_shows_its_lines_a_page_at_a_time(live_server: str, chromium: Any, world: World,
                                                              axe_js: str, screenshots: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report_page, "LINES_PER_PAGE", 1)  # the world's batch has a few lines: one a page
    admin = await new_page(chromium, live_server, locale="he-IL")
    await sign_in(admin, world.email["admin"])
    await admin.page.goto("/admin/settlement")
    href = await admin.page.locator("a[href$='report.html']").first.get_attribute("href")
    assert href is not None
    await check_page(admin, f"/admin/{href}", axe_js, screenshots, "admin_report_paged_he")
    pager = admin.page.locator("nav.pager")
    assert await admin.page.locator("html").get_attribute("dir") == "rtl"
    assert (await pager.inner_text()).startswith("שורות 1 עד 1 מתוך")
    await pager.locator("a[rel=next]").click()
    await admin.page.wait_for_load_state()
    assert "linesFrom=2" in admin.page.url and (await pager.inner_text()).startswith("שורות 2 עד 2 מתוך")
    assert await admin.page.locator("#lines tbody tr").count() == 1
    assert admin.errors == []
