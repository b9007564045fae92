"""Dates on the network's clock: the pages show instants in the settlement policy's time zone, and the
date inputs of the programs and policy forms are days in that zone (named next to the input).

Both ways across the two DST changes of 2026 in Copenhagen: 29 March has 23 hours, 25 October 25.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from page_world import World, csrf_of, sign_in
from sqlalchemy import select

from coalition.console.dashboard import Week
from coalition.db import utcnow
from coalition.programs.reward_models import Reward
from coalition.programs.rewards import create_reward
from coalition.programs.stamps import create_stamp_card
from coalition.settlement.policy import set_policy
from coalition.web.charts import weekly_bars
from coalition.web.forms import day_end, day_start
from coalition.web.i18n import Formatter

HTML = {"Accept": "text/html"}
COPENHAGEN, RIGA = ZoneInfo("Europe/Copenhagen"), ZoneInfo("Europe/Riga")
UTC = dt.UTC


def at(*fields: int) -> dt.datetime:
    return dt.datetime(*fields, tzinfo=UTC)


@pytest.mark.parametrize(("day", "zone", "start", "end"), [
    (dt.date(2026, 3, 29), COPENHAGEN, at(2026, 3, 28, 23), at(2026, 3, 29, 22)),  # 23 hours: clocks go forward
    (dt.date(2026, 10, 25), COPENHAGEN, at(2026, 10, 24, 22), at(2026, 10, 25, 23)),  # 25 hours: back
    (dt.date(2026, 6, 1), COPENHAGEN, at(2026, 5, 31, 22), at(2026, 6, 1, 22)),
    (dt.date(2026, 12, 31), RIGA, at(2026, 12, 30, 22), at(2026, 12, 31, 22)),
    (dt.date(2026, 3, 29), UTC, at(2026, 3, 29), at(2026, 3, 30)),
])
def test_a_typed_day_runs_from_local_midnight_to_local_midnight(day: dt.date, zone: Any, start: dt.datetime,
                                                                 end: dt.datetime) -> None:
    assert day_start(day, zone) == start and day_end(day, zone) == end
    assert day_start(day, zone).tzinfo == UTC


@pytest.mark.parametrize("zone", ["Europe/Copenhagen", "Europe/Riga", "Asia/Jerusalem", "UTC"])
def test_every_typed_day_of_a_year_reads_back_as_the_same_day(zone: str) -> None:
    t = Formatter("en", "EUR", 2, zone=zone)
    day = dt.date(2026, 1, 1)
    while day.year == 2026:
        written = f"{day:%b} {day.day}, {day.year}"
        assert t.date(day_start(day, t.tzinfo)) == written, day
        assert t.last_day(day_end(day, t.tzinfo)) == written, day  # "until" names the last day included
        day += dt.timedelta(days=1)


def test_instants_are_shown_on_the_zones_clock_across_the_dst_change() -> None:
    copenhagen = Formatter("en", "EUR", 2, zone="Europe/Copenhagen")
    assert copenhagen.datetime(at(2026, 3, 29, 0, 30)) == "3/29/26, 1:30\u202fAM"  # UTC+1 before the change
    assert copenhagen.datetime(at(2026, 3, 29, 1, 30)) == "3/29/26, 3:30\u202fAM"  # UTC+2 after it
    assert copenhagen.date(at(2026, 12, 31, 23, 30)) == "Jan 1, 2027"  # already the new year in Copenhagen
    assert Formatter("en", "EUR", 2).date(at(2026, 12, 31, 23, 30)) == "Dec 31, 2026"
    assert Formatter("da", "EUR", 2, zone="Europe/Riga").datetime(at(2026, 7, 1, 9)) == "01.07.2026 12.00"
    assert copenhagen.zone_label == "Denmark Time"
    assert Formatter("lv", "EUR", 2, zone="Europe/Riga").zone_label == "Laika josla: Latvija"
    assert Formatter("da", "EUR", 2).zone_label == "UTC"


async def copenhagen_network(db: Any, settings: Any) -> None:
    await set_policy(db, settings, timezone="Europe/Copenhagen")


async def test_a_rewards_dates_are_days_in_the_networks_zone(browser: Any, world: World, db: Any,
                                                             settings: Any) -> None:
    await copenhagen_network(db, settings)
    await sign_in(browser, world.email["ownerA"])
    year = utcnow().year + 1
    page = await browser.get("/console/programs", headers=HTML)
    assert "Days run from midnight to midnight, Denmark Time." in page.text
    assert 'aria-describedby="r-zone"' in page.text
    made = await browser.post("/console/programs", headers=HTML, data={
        "csrf": csrf_of(page.text), "action": "reward", "key": "k1", "name": "Summer cake", "points_cost": "10",
        "valid_from": f"{year}-03-29", "valid_until": f"{year}-10-25", "voucher_days": "14"})
    assert made.status_code == 200
    async with db.read() as conn:
        reward = (await conn.execute(select(Reward))).one()
    assert reward.valid_from == day_start(dt.date(year, 3, 29), COPENHAGEN)
    assert reward.valid_until == day_end(dt.date(year, 10, 25), COPENHAGEN)
    assert reward.valid_from.astimezone(UTC).hour in (22, 23)  # local midnight, not UTC's
    assert f"from Mar 29, {year}" in made.text and f"until Oct 25, {year}" in made.text


async def test_a_campaigns_period_is_shown_as_typed(browser: Any, world: World, db: Any, settings: Any) -> None:
    await copenhagen_network(db, settings)
    await sign_in(browser, world.email["ownerA"])
    ends = (utcnow() + dt.timedelta(days=9)).astimezone(COPENHAGEN).date()
    page = await browser.get("/console/campaigns", headers=HTML)
    assert "Days run from midnight to midnight, Denmark Time." in page.text
    made = await browser.post("/console/campaigns", headers=HTML, data={
        "csrf": csrf_of(page.text), "key": "k1", "name": "Nine days", "kind": "BONUS", "offer": "5",
        "ends": ends.isoformat()})
    assert made.status_code == 303
    listing = await browser.get("/console/campaigns", headers=HTML)
    assert f"{ends:%b} {ends.day}, {ends.year}</td>" in listing.text  # the last day, not the day after


async def test_the_policy_start_is_midnight_in_the_zone_in_force(browser: Any, world: World, db: Any,
                                                                 settings: Any) -> None:
    await copenhagen_network(db, settings)
    await sign_in(browser, world.email["admin"])
    year = utcnow().year + 1
    page = await browser.get("/admin/policy", headers=HTML)
    assert "From midnight, Denmark Time (the time zone in force now)." in page.text
    stored = await browser.post("/admin/policy", headers=HTML, data={
        "csrf": csrf_of(page.text), "action": "network", "key": "p1", "effective_from": f"{year}-01-01"})
    assert stored.status_code == 200 and 'role="status"' in stored.text
    # stored as 31 December 23:00 UTC, shown as midnight on the network's clock
    assert f"1/1/{year % 100}, 12:00\u202fAM" in stored.text


async def test_a_card_without_a_minimum_says_any_purchase(browser: Any, world: World, db: Any, ledger: Any,
                                                          clock: Any) -> None:
    now = clock.now = utcnow() - dt.timedelta(minutes=5)
    reward = await create_reward(db, merchant_id=world.merchant["A"], name="Free bun", points_cost=5,
                                 idempotency_key="r1", now=now)
    for key, minimum in (("any", 0), ("big", 250)):
        await create_stamp_card(ledger, merchant_id=world.merchant["A"], name=f"Card {key}", stamps_required=4,
                                min_purchase_minor=minimum, reward_id=reward.id, idempotency_key=key, now=now)
    await sign_in(browser, world.email["ownerA"])
    page = await browser.get("/console/programs", headers=HTML)
    assert ">any purchase</td>" in page.text and ">€2.50</td>" in page.text and "€0.00" not in page.text
    browser.cookies.set("lang", "da")
    danish = await browser.get("/console/programs", headers=HTML)
    assert ">ethvert køb</td>" in danish.text and "0,00" not in danish.text
    earned = await ledger.earn(merchant_id=world.merchant["A"], loyalty_id=world.loyalty["alice"],
                               purchase_amount_minor=3_00, idempotency_key="e1")
    from coalition.programs.hooks import after_earn

    await after_earn(ledger, earned)
    browser.cookies.clear()
    claim = await browser.get("/me/claim", headers=HTML)
    await browser.post("/me/claim", data={"code": world.claim["alice"], "csrf": csrf_of(claim.text)})
    wallet = await browser.get("/me", headers={**HTML, "Accept-Language": "sv"})
    assert "Minsta köp som ger stämpel: alla köp" in wallet.text
    assert "Minsta köp som ger stämpel: 2,50\xa0€" in wallet.text and "0,00" not in wallet.text
    # a tier's name is the admin's data, shown as set; the words around it are Swedish
    assert "poäng kvar till Silver." in wallet.text and "more points to" not in wallet.text


def test_the_dashboards_weeks_are_named_by_their_monday_in_every_zone() -> None:
    monday = dt.datetime(2026, 12, 7, tzinfo=UTC)  # a UTC week's start, as the dashboard counts weeks
    week = Week(monday, issued=10, honored=5)
    for zone in ("UTC", "America/Los_Angeles", "Pacific/Auckland"):
        chart = weekly_bars([week], Formatter("en", "EUR", 2, zone))
        assert "Dec 7, 2026" in chart and "Dec 6, 2026" not in chart and "Dec 8, 2026" not in chart


async def test_the_dashboards_week_table_names_each_week_by_its_monday(browser: Any, world: World, db: Any,
                                                                       settings: Any) -> None:
    await set_policy(db, settings, timezone="America/Los_Angeles")  # UTC Monday 00:00 is Sunday evening here
    await sign_in(browser, world.email["ownerA"])
    page = (await browser.get("/console", headers=HTML)).text
    table = page.split("<tbody>")[1].split("</tbody>")[0]
    for cell in re.findall(r"<tr><td>([^<]+)</td>", table):
        assert dt.datetime.strptime(cell, "%b %d, %Y").weekday() == 0, cell  # every row is a Monday
