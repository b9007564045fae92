"""The programs pages, the till's vouchers and QR codes, the wallet's programs, the admin's policy page.

Over HTTP with a cookie-keeping client (like a browser): each form does what it says once per
key, a refused form writes nothing and says why on the page, another merchant's things answer
like missing ones, and a cashier opens none of the owner's or admin's pages.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Any

from markupsafe import escape
from page_world import World, csrf_of, sign_in
from sqlalchemy import func, select

from coalition.db import utcnow
from coalition.programs.campaign_models import Campaign, CampaignResultSnapshot
from coalition.programs.campaigns import create_campaign
from coalition.programs.quests import create_quest
from coalition.programs.reward_models import Reward, StampCard, Voucher, VoucherStatus
from coalition.programs.rewards import create_reward
from coalition.programs.stamps import create_stamp_card
from coalition.programs.tier_models import TierPolicyVersion
from coalition.programs.vouchers import claim_reward, display_code
from coalition.settlement.models import NetworkPolicy
from coalition.web.forms import problem
from coalition.web.i18n import Formatter

HTML = {"Accept": "text/html"}


async def count(db: Any, model: Any) -> int:
    async with db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(model))).scalar_one())


async def post_form(browser: Any, path: str, **fields: str) -> Any:
    page = await browser.get(path, headers=HTML)
    return await browser.post(path, data={"csrf": csrf_of(page.text), **fields}, headers=HTML)


def alert_of(html: str) -> str:
    found = re.search(r'role="alert"[^>]*>([^<]*)<', html)
    return found.group(1) if found else ""


async def test_an_owner_publishes_a_reward_once_per_form(browser: Any, world: World, db: Any) -> None:
    await sign_in(browser, world.email["ownerA"])
    future = (utcnow() + dt.timedelta(days=40)).date().isoformat()
    fields = {"action": "reward", "key": "k1", "name": "Free coffee", "points_cost": "100", "stock": "5",
              "valid_until": future, "voucher_days": "14"}
    made = await post_form(browser, "/console/programs", **fields)
    assert made.status_code == 200 and "Free coffee" in made.text and 'role="status"' in made.text
    again = await post_form(browser, "/console/programs", **fields)  # a double submit: the same key
    assert again.status_code == 200
    assert await count(db, Reward) == 1
    async with db.read() as conn:
        reward = (await conn.execute(select(Reward))).one()
    assert (reward.points_cost, reward.stock_left, reward.voucher_valid_days) == (100, 5, 14)
    assert reward.valid_until is not None and reward.valid_until.date().isoformat() > future  # the whole last day


BAD_REWARDS = [
    ("points_cost", "ten", "INVALID_POINTS"), ("points_cost", "0", "INVALID_POINTS"),
    ("stock", "-3", "INVALID_STOCK"), ("stock", "0", "INVALID_STOCK"), ("name", "", "INVALID_NAME"),
    ("valid_until", "2001-01-01", "INVALID_VALIDITY"), ("valid_until", "yesterday", "INVALID_DATE"),
    ("voucher_days", "9999", "INVALID_VALIDITY"),
]


async def test_a_bad_reward_form_writes_nothing_and_says_why(browser: Any, world: World, db: Any) -> None:
    await sign_in(browser, world.email["ownerA"])
    for field, value, code in BAD_REWARDS:
        fields = {"action": "reward", "key": f"k{field}{value}", "name": "Free coffee", "points_cost": "100",
                  field: value}
        refused = await post_form(browser, "/console/programs", **fields)
        assert refused.status_code == 400, (field, value)
        expected = problem(Formatter("en", "EUR", 2), type("E", (Exception,), {"code": code, "message": "?"})())
        assert alert_of(refused.text) == str(escape(expected)), (field, value)
        assert f'value="{value}"' in refused.text or field == "name"  # what was typed stays in the form
    assert await count(db, Reward) == 0


async def test_stamp_cards_take_only_the_merchants_own_rewards(browser: Any, world: World, db: Any) -> None:
    now = utcnow()
    own = await create_reward(db, merchant_id=world.merchant["A"], name="Cake", points_cost=50,
                              idempotency_key="r1", now=now)
    other = await create_reward(db, merchant_id=world.merchant["B"], name="B's secret", points_cost=50,
                                idempotency_key="r1", now=now)
    await sign_in(browser, world.email["ownerA"])
    page = await browser.get("/console/programs", headers=HTML)
    assert "Cake" in page.text and "B&#39;s secret" not in page.text and "B's secret" not in page.text
    fields = {"action": "card", "key": "c1", "name": "Ten coffees", "stamps": "10", "min_purchase": "2.50"}
    stolen = await post_form(browser, "/console/programs", **fields, reward=str(other.id))
    assert stolen.status_code == 400 and "Choose one of your own rewards." in stolen.text
    assert await count(db, StampCard) == 0
    made = await post_form(browser, "/console/programs", **fields, reward=str(own.id))
    assert made.status_code == 200 and "Ten coffees" in made.text
    async with db.read() as conn:
        card = (await conn.execute(select(StampCard))).one()
    assert (card.reward_id, card.stamps_required, card.min_purchase_minor) == (own.id, 10, 250)


async def test_a_campaign_is_created_and_its_result_shown(browser: Any, world: World, db: Any) -> None:
    await sign_in(browser, world.email["ownerA"])
    ends = (utcnow() + dt.timedelta(days=7)).date().isoformat()
    made = await post_form(browser, "/console/campaigns", key="k1", name="Double week", kind="MULTIPLIER",
                           offer="200", control="20", ends=ends, segment="")
    assert made.status_code == 303 and made.headers["location"].startswith("/console/campaigns/")
    result = await browser.get(made.headers["location"], headers=HTML)
    assert result.status_code == 200 and "Double week" in result.text
    assert 'data-testid="too-small"' in result.text  # one member (alice) in the audience
    # counted when first read (no worker runs here) and stored: the page says as of when
    assert 'data-testid="as-of"' in result.text and "Updated every few minutes." in result.text
    async with db.read() as conn:
        stored = (await conn.execute(select(CampaignResultSnapshot))).one()
    assert stored.treated_members + stored.control_members == 1 and not stored.final
    listing = await browser.get("/console/campaigns", headers=HTML)
    assert "Double week" in listing.text and "running" in listing.text
    clash = await post_form(browser, "/console/campaigns", key="k2", name="Again", kind="BONUS", offer="5",
                            ends=ends)
    assert clash.status_code == 400 and "Another campaign already runs" in clash.text
    assert await count(db, Campaign) == 1


BAD_CAMPAIGNS = [
    ({"kind": "MULTIPLIER", "offer": "50"}, "The multiplier is a whole percent from 101"),
    ({"kind": "BONUS", "offer": "lots"}, "Bonus points are a whole number"),
    ({"kind": "BONUS", "offer": "5", "control": "95"}, "The control group is a whole percent"),
    ({"kind": "BONUS", "offer": "5", "ends": "2001-01-01"}, "Check the dates"),
    ({"kind": "BONUS", "offer": "5", "segment": "TRULY_LOYAL"}, "Your members have not been grouped yet"),
    ({"kind": "BONUS", "offer": "5", "segment": "EVERYONE"}, "Choose a group of members"),
    ({"kind": "FREE", "offer": "5"}, "Choose a multiplier or a bonus"),
    ({"kind": "BONUS", "offer": "5", "name": ""}, "Give it a name"),
    ({"kind": "BONUS", "offer": "5", "ends": ""}, "Check the dates"),
]


async def test_a_bad_campaign_form_writes_nothing(browser: Any, world: World, db: Any) -> None:
    await sign_in(browser, world.email["ownerA"])
    for n, (fields, message) in enumerate(BAD_CAMPAIGNS):
        form = {"key": f"k{n}", "name": "Try", "ends": (utcnow() + dt.timedelta(days=7)).date().isoformat(),
                **fields}
        refused = await post_form(browser, "/console/campaigns", **form)
        assert refused.status_code == 400 and message in refused.text, (fields, alert_of(refused.text))
    assert await count(db, Campaign) == 0


async def test_the_lift_and_p_value_show_once_the_groups_are_big_enough(
        browser: Any, world: World, db: Any, keys: Any, ledger: Any, app: Any, clock: Any) -> None:
    from coalition.members.service import enroll_member

    services = app.state.services
    services.settings = dataclasses.replace(services.settings, campaign_min_group_size=2)
    members = [(await enroll_member(db, keys, merchant_id=world.merchant["A"], idempotency_key=f"m{n}")).member
               for n in range(30)]
    start = utcnow() - dt.timedelta(days=1)
    campaign = await create_campaign(db, keys, services.insights, merchant_id=world.merchant["A"], name="Half",
                                     kind="BONUS", bonus_points=3, control_percent=50, starts_at=start,
                                     ends_at=start + dt.timedelta(days=5), idempotency_key="c1", now=start)
    clock.now = utcnow() - dt.timedelta(hours=1)  # purchases during the campaign
    for n, member in enumerate(members):
        await ledger.earn(merchant_id=world.merchant["A"], loyalty_id=member.loyalty_id,
                          purchase_amount_minor=1000 + 37 * n, idempotency_key=f"e{n}")
    await sign_in(browser, world.email["ownerA"])
    page = await browser.get(f"/console/campaigns/{campaign.id}", headers=HTML)
    assert page.status_code == 200 and 'data-testid="too-small"' not in page.text
    assert "p-value" in page.text and "cross-partner lift" in page.text
    assert re.search(r'<td class="num">0\.\d+</td>', page.text)  # the spend's p-value, as a number
    treated = int(re.search(r'data-testid="treated-members">(\d+)<', page.text).group(1))  # type: ignore[union-attr]
    control = int(re.search(r'data-testid="control-members">(\d+)<', page.text).group(1))  # type: ignore[union-attr]
    assert treated + control == 31 and treated >= 2 and control >= 2


async def test_another_merchants_campaign_is_not_found(browser: Any, world: World, db: Any, keys: Any,
                                                       app: Any) -> None:
    now = utcnow()
    theirs = await create_campaign(db, keys, app.state.services.insights, merchant_id=world.merchant["B"],
                                   name="B's plan", kind="BONUS", bonus_points=3, control_percent=10, starts_at=now,
                                   ends_at=now + dt.timedelta(days=5), idempotency_key="c1", now=now)
    await sign_in(browser, world.email["ownerA"])
    for path in (f"/console/campaigns/{theirs.id}", "/console/campaigns/999999", "/console/campaigns/x1"):
        page = await browser.get(path, headers=HTML)
        assert page.status_code == 404 and "B&#39;s plan" not in page.text and "B's plan" not in page.text
    listing = await browser.get("/console/campaigns", headers=HTML)
    assert "plan" not in listing.text


async def test_a_cashier_opens_no_programs_or_policy_page_and_an_owner_no_policy(browser: Any, world: World,
                                                                                db: Any) -> None:
    await sign_in(browser, world.email["cashierA"])
    till = await browser.get("/console/till", headers=HTML)
    for path in ("/console/programs", "/console/campaigns", "/console/campaigns/1", "/admin/policy"):
        page = await browser.get(path, headers=HTML)
        assert page.status_code == 403 and "<html" in page.text, path
        posted = await browser.post(path, data={"csrf": csrf_of(till.text), "action": "reward", "name": "x",
                                                "points_cost": "1"}, headers=HTML)
        assert posted.status_code == (405 if path[-1].isdigit() else 403), path
    assert await count(db, Reward) == 0
    owner = await sign_in(browser, world.email["ownerA"])
    assert owner.status_code == 303
    assert (await browser.get("/admin/policy", headers=HTML)).status_code == 403


async def test_the_till_claims_and_uses_a_voucher(browser: Any, world: World, db: Any, ledger: Any) -> None:
    now = utcnow()
    reward = await create_reward(db, merchant_id=world.merchant["A"], name="Free cake", points_cost=10,
                                 idempotency_key="r1", now=now)
    await ledger.earn(merchant_id=world.merchant["A"], loyalty_id=world.loyalty["alice"],
                      purchase_amount_minor=40_00, idempotency_key="e1")
    await sign_in(browser, world.email["cashierA"])
    found = await browser.get("/console/till", params={"q": world.loyalty["alice"]}, headers=HTML)
    assert "Free cake (10 points)" in found.text
    form = {"csrf": csrf_of(found.text), "loyalty_id": world.loyalty["alice"], "key": "k1", "action": "claim",
            "reward": str(reward.id)}
    claimed = await browser.post("/console/till", data=form, headers=HTML)
    assert claimed.status_code == 200 and "Voucher for" in claimed.text
    again = await browser.post("/console/till", data=form, headers=HTML)  # a double submit: one voucher
    assert again.status_code == 200
    async with db.read() as conn:
        voucher = (await conn.execute(select(Voucher))).one()
    assert display_code(voucher.code) in claimed.text and 'data-testid="balance">30<' in claimed.text
    assert "Open vouchers at your shop" in claimed.text
    use = {"csrf": form["csrf"], "key": "k2", "action": "use_voucher", "code": display_code(voucher.code).lower()}
    used = await browser.post("/console/till", data=use, headers=HTML)
    assert used.status_code == 200 and "used: hand it over" in used.text and world.loyalty["alice"] in used.text
    twice = await browser.post("/console/till", data={**use, "key": "k3"}, headers=HTML)
    assert twice.status_code == 400 and "That voucher was used already." in twice.text
    bad = await browser.post("/console/till", data={**use, "key": "k4", "code": "not a code"}, headers=HTML)
    assert bad.status_code == 400 and "That is not a voucher code" in bad.text
    async with db.read() as conn:
        assert (await conn.execute(select(Voucher.status))).scalar_one() == VoucherStatus.USED


async def test_the_till_never_uses_another_merchants_voucher(browser: Any, world: World, db: Any,
                                                            ledger: Any) -> None:
    now = utcnow()
    reward = await create_reward(db, merchant_id=world.merchant["B"], name="B cake", points_cost=10,
                                 idempotency_key="r1", now=now)
    await ledger.earn(merchant_id=world.merchant["B"], loyalty_id=world.loyalty["bob"], purchase_amount_minor=40_00,
                      idempotency_key="e1")
    claimed = await claim_reward(ledger, reward_id=reward.id, loyalty_id=world.loyalty["bob"], idempotency_key="c",
                                 now=now, merchant_id=world.merchant["B"])
    await sign_in(browser, world.email["cashierA"])
    refused = await post_form(browser, "/console/till", key="k1", action="use_voucher",
                              code=display_code(claimed.voucher.code))
    assert refused.status_code == 400 and "No voucher of your rewards has that code." in refused.text
    assert world.loyalty["bob"] not in refused.text
    stolen = await post_form(browser, "/console/till", key="k2", action="claim", reward=str(reward.id),
                             loyalty_id=world.loyalty["alice"])
    assert stolen.status_code == 400 and "Choose one of your own rewards." in stolen.text


async def test_the_till_finds_a_member_by_a_scanned_card_or_wallet_code(browser: Any, world: World,
                                                                       keys: Any) -> None:
    await sign_in(browser, world.email["cashierA"])
    card = keys.qr_payload(world.loyalty["alice"])
    found = await browser.get("/console/till", params={"q": card}, headers=HTML)
    assert found.status_code == 200 and f"Member {world.loyalty['alice']}" in found.text
    with_proof = await browser.get("/console/till", params={"q": f"{card}~12345678"}, headers=HTML)
    assert 'name="proof" inputmode="numeric" autocomplete="off" value="12345678"' in with_proof.text
    body, signature = card.split(".")[1:]
    forged_body = card.replace(body, keys.qr_payload(world.loyalty["bob"]).split(".")[1])
    for fake in (forged_body, "COA1.e30.AAAA", f"COA1.{body}.{signature[:-4]}AAAA"):
        refused = await browser.get("/console/till", params={"q": fake}, headers=HTML)
        assert refused.status_code == 200 and "not a member card of this network" in refused.text
        assert "Member " not in refused.text


async def test_the_wallet_shows_tier_progress_vouchers_stamp_cards_and_quests(
        browser: Any, world: World, db: Any, ledger: Any, clock: Any) -> None:
    now = clock.now = utcnow() - dt.timedelta(minutes=5)
    reward = await create_reward(db, merchant_id=world.merchant["A"], name="Free bun", points_cost=5,
                                 idempotency_key="r1", now=now)
    await create_stamp_card(ledger, merchant_id=world.merchant["A"], name="Bun card", stamps_required=4,
                            min_purchase_minor=0, reward_id=reward.id, idempotency_key="s1", now=now)
    await create_quest(db, name="Visit two", merchant_ids=[world.merchant["A"], world.merchant["B"]],
                       visits_required=2, window_days=30, bonus_points=50, funding="NETWORK", starts_at=now,
                       ends_at=now + dt.timedelta(days=30), idempotency_key="q1", now=now)
    earned = await ledger.earn(merchant_id=world.merchant["A"], loyalty_id=world.loyalty["alice"],
                               purchase_amount_minor=20_00, idempotency_key="e1")
    from coalition.programs.hooks import after_earn

    await after_earn(ledger, earned)
    claimed = await claim_reward(ledger, reward_id=reward.id, loyalty_id=world.loyalty["alice"],
                                 idempotency_key="c", now=now, merchant_id=world.merchant["A"])
    claim_page = await browser.get("/me/claim", headers=HTML)
    opened = await browser.post("/me/claim", data={"code": world.claim["alice"], "csrf": csrf_of(claim_page.text)})
    assert opened.status_code == 303
    wallet = await browser.get("/me", headers=HTML)
    assert wallet.status_code == 200
    assert display_code(claimed.voucher.code) in wallet.text and "Free bun" in wallet.text
    assert "Bun card" in wallet.text and "1 of 4 stamps" in wallet.text
    assert "Visit two" in wallet.text and "1 of 2 partner shops visited" in wallet.text
    assert "more points to Silver" in wallet.text and "<progress" in wallet.text


async def test_an_admin_edits_the_network_policy(browser: Any, world: World, db: Any) -> None:
    await sign_in(browser, world.email["admin"])
    page = await browser.get("/admin/policy", headers=HTML)
    assert page.status_code == 200 and "90.0%" in page.text
    stored = await post_form(browser, "/admin/policy", action="network", point_value_minor="2",
                             funding_model="REDEMPTION", reimbursement_rate="0.85", breakage_share="0.5",
                             period="WEEKLY", timezone="Europe/Copenhagen", redeem_without_proof_points="300")
    assert stored.status_code == 200 and "The new policy version is stored." in stored.text
    async with db.read() as conn:
        row = (await conn.execute(select(NetworkPolicy))).one()
    assert (row.point_value_minor, row.funding_model, row.reimbursement_rate, row.period, row.timezone,
            row.redeem_without_proof_points) == (2, "REDEMPTION", "0.85", "WEEKLY", "Europe/Copenhagen", 300)
    assert "85.0%" in stored.text


async def test_a_resent_policy_form_stores_one_version(browser: Any, world: World, db: Any) -> None:
    await sign_in(browser, world.email["admin"])
    page = await browser.get("/admin/policy", headers=HTML)
    key = re.search(r'name="key" value="([^"]+n)"', page.text)
    assert key is not None  # the network form's own key, drawn when the page was rendered
    form = {"csrf": csrf_of(page.text), "key": key.group(1), "action": "network", "point_value_minor": "3"}
    for _ in range(2):  # a double click, or the browser resending the form
        sent = await browser.post("/admin/policy", data=form, headers=HTML)
        assert sent.status_code == 200 and "The new policy version is stored." in sent.text
    assert await count(db, NetworkPolicy) == 1


BAD_POLICIES = [
    ("reimbursement_rate", "1.5", "The reimbursement rate is a decimal from 0 to 1"),
    ("reimbursement_rate", "ninety", "The reimbursement rate is a decimal from 0 to 1"),
    ("breakage_share", "-0.1", "The breakage share is a decimal"),
    ("timezone", "Mars/Olympus", "The time zone is a name"),
    ("point_value_minor", "1.5", "The point value is a whole number"),
    ("period", "HOURLY", "Choose a settlement period"),
    ("funding_model", "NOBODY", "Choose who funds the points"),
    ("redeem_without_proof_points", "-1", "Points without the member"),
    ("effective_from", "2001-01-01", "The policy can only start now or later"),
    ("effective_from", "soon", "The policy can only start now or later"),
]


async def test_a_bad_policy_writes_nothing_and_says_why(browser: Any, world: World, db: Any) -> None:
    await sign_in(browser, world.email["admin"])
    first = await post_form(browser, "/admin/policy", action="network", reimbursement_rate="0.8")
    assert first.status_code == 200  # one version stored, so a date before it is refused
    for field, value, message in BAD_POLICIES:
        refused = await post_form(browser, "/admin/policy", action="network", **{field: value})
        assert refused.status_code == 400 and message in refused.text, (field, alert_of(refused.text))
        assert f'value="{value}"' in refused.text or field in ("period", "funding_model")
    assert await count(db, NetworkPolicy) == 1


async def test_an_admin_sets_the_tiers_and_bad_tiers_write_nothing(browser: Any, world: World, db: Any) -> None:
    await sign_in(browser, world.email["admin"])
    tiers = {"action": "tiers", "tier0_name": "bronze", "tier0_threshold": "0", "tier1_name": "GOLD",
             "tier1_threshold": "500", "tier1_multiplier": "150", "window": "ROLLING", "window_months": "12",
             "grace_days": "30", "bonus_funder": "NETWORK"}
    for bad, message in [({"tier1_threshold": "0"}, "Thresholds start at 0"),
                         ({"tier1_name": "Gold!"}, "Tier names are capital letters"),
                         ({"tier1_multiplier": "50"}, "A tier&#39;s multiplier is a whole percent"),
                         ({"tier1_threshold": ""}, "Thresholds start at 0"),
                         ({"grace_days": "999"}, "Grace days are a whole number"),
                         ({"window": "FOREVER"}, "The window is rolling")]:
        refused = await post_form(browser, "/admin/policy", **{**tiers, **bad})
        assert refused.status_code == 400 and message in refused.text, (bad, alert_of(refused.text))
    assert await count(db, TierPolicyVersion) == 0
    stored = await post_form(browser, "/admin/policy", **tiers)
    assert stored.status_code == 200 and "The tiers are stored" in stored.text
    assert 'value="BRONZE"' in stored.text and 'value="150"' in stored.text
    assert await count(db, TierPolicyVersion) == 1


async def test_program_forms_need_a_signed_in_browser(api: Any, world: World, db: Any) -> None:
    for path, key in (("/console/programs", world.key["A"]), ("/console/campaigns", world.key["A"])):
        machine = await api.client.post(path, data={"action": "reward", "name": "x", "points_cost": "1"},
                                        headers={**HTML, "Authorization": f"Bearer {key}"})
        assert machine.status_code == 403
    assert await count(db, Reward) == 0


async def test_every_program_error_code_has_a_sentence() -> None:
    t = Formatter("da", "EUR", 2)
    for code in ("INVALID_NAME", "INVALID_POINTS", "INVALID_STOCK", "VOUCHER_EXPIRED", "OUT_OF_STOCK",
                 "INVALID_TIMEZONE", "INVALID_THRESHOLD"):
        error = type("E", (Exception,), {"code": code, "message": "english"})()
        assert problem(t, error) not in ("english", "")
