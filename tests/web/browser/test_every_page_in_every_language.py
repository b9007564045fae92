"""Every page in every language, in Chromium: no English left on a translated page, axe clean, no
console errors, no page wider than a phone (390 px), Hebrew right to left; screenshots of each page
in each language land in ``artifacts/screenshots/lang_<lang>_*.png`` for review.

The network runs on Copenhagen's clock, and shop A has a reward, a stamp card without a minimum
purchase, a campaign and a quest: the pages show every kind of thing they can.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
from page_world import World
from test_pages_in_chromium import ADMIN_PAGES, OWNER_PAGES, Watched, check_page, new_page, sign_in
from test_pages_in_chromium import world as world

from coalition.db import utcnow
from coalition.programs.campaigns import create_campaign
from coalition.programs.hooks import after_earn
from coalition.programs.quests import create_quest
from coalition.programs.rewards import create_reward
from coalition.programs.stamps import create_stamp_card
from coalition.programs.vouchers import claim_reward
from coalition.settlement.policy import set_policy
from coalition.web.i18n import LANGUAGES, translations

LOCALES = {"en": "en-GB", "da": "da-DK", "sv": "sv-SE", "lv": "lv-LV", "he": "he-IL"}
PHONE_PAGES = ["/console/till", "/console/programs", "/console/statements"]
SAME_IN_ENGLISH = {"Bonus", "Status", "E-mail", "Score", "score", "Type"}


def english_sentences(lang: str) -> list[str]:
    """The catalog's English texts of two words or more whose translation differs: none may show."""
    catalog = translations(lang)._catalog  # type: ignore[attr-defined]
    found = []
    for message, translated in catalog.items():
        if not isinstance(message, str) or not message or message == translated or message in SAME_IN_ENGLISH:
            continue
        for part in re.split(r"\{\w+\}", message):  # the words around the placeholders
            part = part.strip(" .,:;()\u2013-")
            if len(part.split()) >= 2 and part not in str(translated):
                found.append(part)
    return found


@pytest.fixture
async def programs(world: World, db: Any, ledger: Any, settings: Any, keys: Any, clock: Any) -> World:
    await set_policy(db, settings, timezone="Europe/Copenhagen")
    now = clock.now = utcnow() - dt.timedelta(minutes=5)
    shop = world.merchant["A"]
    reward = await create_reward(db, merchant_id=shop, name="Free bun", points_cost=5, idempotency_key="r1",
                                 now=now, valid_until=now + dt.timedelta(days=60))
    await create_stamp_card(ledger, merchant_id=shop, name="Bun card", stamps_required=6, min_purchase_minor=0,
                            reward_id=reward.id, idempotency_key="s1", now=now)
    await create_quest(db, name="Visit both shops", merchant_ids=[shop, world.merchant["B"]], visits_required=2,
                       window_days=30, bonus_points=50, funding="NETWORK", starts_at=now,
                       ends_at=now + dt.timedelta(days=30), idempotency_key="q1", now=now)
    await create_campaign(db, keys, None, merchant_id=shop, name="Double week", kind="MULTIPLIER",
                          multiplier_percent=200, bonus_points=None, segment=None, control_percent=10,
                          starts_at=now, ends_at=now + dt.timedelta(days=7), idempotency_key="k1", now=now)
    await after_earn(ledger, await ledger.earn(merchant_id=shop, loyalty_id=world.loyalty["alice"],
                                               purchase_amount_minor=12_00, idempotency_key="e-bun"))
    await claim_reward(ledger, reward_id=reward.id, loyalty_id=world.loyalty["alice"], idempotency_key="c",
                       now=now, merchant_id=shop)
    return world


async def review(watched: Watched, path: str, lang: str, axe_js: str, shots: Path, name: str,
                 english: list[str]) -> None:
    await check_page(watched, path, axe_js, shots, name)
    page = watched.page
    assert await page.evaluate("document.documentElement.lang") == lang
    assert await page.evaluate("document.documentElement.dir") == ("rtl" if lang == "he" else "ltr")
    text = await page.inner_text("body")
    left = [sentence for sentence in english if sentence in text]
    assert left == [], f"{lang} {path}: English left on the page: {left}"
    overflow = await page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{lang} {path}: the page is {overflow} px wider than the window"


@pytest.mark.parametrize("lang", list(LANGUAGES))
async def test_every_page_in_every_language(live_server: str, chromium: Any, programs: World, axe_js: str,
                                            screenshots: Path, lang: str) -> None:
    world, english = programs, english_sentences(lang) if lang != "en" else []
    locale = LOCALES[lang]
    owner = await new_page(chromium, live_server, locale=locale)
    await sign_in(owner, world.email["ownerA"])
    campaigns = "/console/campaigns"
    for path in [*OWNER_PAGES, "/console/programs", campaigns, f"/console/customers/{world.loyalty['alice']}"]:
        await review(owner, path, lang, axe_js, screenshots, f"lang_{lang}_owner{path.replace('/', '_')[:40]}",
                     english)
    phone = await new_page(chromium, live_server, locale=locale, mobile=True)
    await sign_in(phone, world.email["ownerA"])
    for path in PHONE_PAGES:
        await review(phone, path, lang, axe_js, screenshots, f"lang_{lang}_phone{path.replace('/', '_')}", english)
    admin = await new_page(chromium, live_server, locale=locale)
    await sign_in(admin, world.email["admin"])
    for path in [*ADMIN_PAGES, "/admin/policy"]:
        await review(admin, path, lang, axe_js, screenshots, f"lang_{lang}_admin{path.replace('/', '_')}", english)
    await admin.page.goto("/admin/network-map.png")
    await admin.page.screenshot(path=str(screenshots / f"lang_{lang}_admin_network-map.png"))
    member = await new_page(chromium, live_server, locale=locale, mobile=True)
    await member.page.goto(f"/me/claim?code={world.claim['alice']}")
    await member.page.click("button.primary")
    await member.page.wait_for_url("**/me")
    await review(member, "/me", lang, axe_js, screenshots, f"lang_{lang}_me_wallet", english)
    lines = await member.page.evaluate("""() => { const range = document.createRange();
        range.selectNodeContents(document.querySelector("dd.id")); return range.getClientRects().length; }""")
    assert lines == 1, f"{lang}: the loyalty ID breaks over {lines} lines on a phone"
