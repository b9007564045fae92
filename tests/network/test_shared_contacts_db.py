"""Shared contact fingerprints end to end: enroll variants over the API, analyse, read the admin's alerts.

The exact blind index is unique, so one person enrolls again with a variant of their contact
(a ``+tag``, Gmail dots, googlemail.com, the national spelling of their number). The
fingerprints of those variants match, and the analysis links the members into one group.
"""

from __future__ import annotations

from typing import Any

import pytest
from planted_network import forget_cached_insights
from sqlalchemy import update

from coalition.members.models import Member
from coalition.members.service import enroll_member
from coalition.network.bulkload import load_synthetic
from coalition.network.jobs import run_analysis
from coalition.network.store import NETWORK_SCOPE, InsightStore
from coalition.network.synthetic import generate

ENROLL = """mutation($key: String!, $email: String, $phone: String) {
  enrollMember(input: {idempotencyKey: $key, email: $email, phone: $phone}) {
    member { loyaltyId } userErrors { field code message } } }"""
ALERTS = "{ insights { fraudAlerts { kind score members { loyaltyId } explanation } } }"

RING = [  # one person, three accounts: linked by e-mail (1-2) and by phone (1-3)
    {"email": "ann.smith+1@gmail.com", "phone": "+44 7700 900123"},
    {"email": "AnnSmith@googlemail.com"},
    {"email": "a.smith.home@example.org", "phone": "07700 900123"},
]
HONEST = [  # near misses that are different people
    {"email": "ann.smith@example.com", "phone": "+44 7700 900124"},
    {"email": "annsmith@example.com"},  # dots count outside Gmail
    {"email": "bob+news@example.com", "phone": "+1 415 555 0100"},
    {"email": "bob.jones@gmail.com", "phone": "+44 7700 900999"},
    {},
]
CONTACT_WORDS = ["ann", "smith", "gmail", "example", "7700", "900123"]


@pytest.fixture(autouse=True)
async def _no_cached_insights(settings: Any) -> None:
    await forget_cached_insights(settings.redis_url)


async def _enroll(api: Any, key: str, n: int, contact: dict[str, str]) -> str:
    payload = (await api.call(ENROLL, {"key": f"e-{n}", **contact}, key=key))["enrollMember"]
    assert payload["userErrors"] == [], payload
    return str(payload["member"]["loyaltyId"])


async def _shared_contact_alerts(api: Any, admin_key: str) -> list[dict[str, Any]]:
    view = (await api.call(ALERTS, key=admin_key))["insights"]
    return [a for a in view["fraudAlerts"] if a["kind"] == "SHARED_CONTACT"]


async def test_a_ring_of_variants_is_one_shared_contact_alert(api: Any, admin_key: str, make_merchant: Any, db: Any,
                                                              settings: Any, clock: Any) -> None:
    shops = [(await make_merchant(name)).api_key for name in ("Bakery", "Books", "Cafe")]
    ring = {await _enroll(api, shops[n % 3], n, contact) for n, contact in enumerate(RING)}
    honest = {await _enroll(api, shops[n % 3], 100 + n, contact) for n, contact in enumerate(HONEST)}
    again = (await api.call(ENROLL, {"key": "e-again", **RING[0]}, key=shops[1]))["enrollMember"]
    assert [e["code"] for e in again["userErrors"]] == ["CONTACT_ALREADY_ENROLLED"]  # exact repeats still refused
    assert len(ring) == 3

    await run_analysis(db, settings, now=clock.now, draw_map=False)

    alerts = await _shared_contact_alerts(api, admin_key)
    assert len(alerts) == 1
    alert = alerts[0]
    assert {m["loyaltyId"] for m in alert["members"]} == ring
    assert alert["score"] > 0.5
    assert alert["explanation"].startswith("3 separately enrolled members share 1 e-mail fingerprint and "
                                           "1 phone fingerprint")
    assert not [w for w in CONTACT_WORDS if w in alert["explanation"].lower()]
    view = (await api.call(ALERTS, key=admin_key))["insights"]
    flagged = {m["loyaltyId"] for a in view["fraudAlerts"] for m in a["members"]}
    assert not flagged & honest


async def test_members_enrolled_before_fingerprints_are_backfilled_by_the_analysis(
        api: Any, admin_key: str, make_merchant: Any, db: Any, keys: Any, settings: Any, clock: Any) -> None:
    shop = (await make_merchant("Bakery")).merchant
    ring = set()
    for n, contact in enumerate([*RING, *HONEST]):
        member = (await enroll_member(db, keys, merchant_id=shop.id, idempotency_key=f"e-{n}", **contact)).member
        if n < len(RING):
            ring.add(member.loyalty_id)
    async with db.transaction() as conn:  # as migration 0004 leaves the rows enrolled before it
        await conn.execute(update(Member).values(email_fingerprint=None, phone_fingerprint=None))

    await run_analysis(db, settings, now=clock.now, draw_map=False)

    alerts = await _shared_contact_alerts(api, admin_key)
    assert [{m["loyaltyId"] for m in a["members"]} for a in alerts] == [ring]


async def test_a_bulk_loaded_network_keeps_its_planted_shared_contacts(db: Any, keys: Any, settings: Any) -> None:
    network = generate(n_members=400, n_merchants=8, n_purchases=2000, seed=5, sybil_farms=0, collusion_pairs=0,
                       shared_groups=4)
    loaded = await load_synthetic(db, keys, network, merchant_names=[(f"Shop {i}", "test") for i in range(8)],
                                  shift_s=0)

    await run_analysis(db, settings, draw_map=False)

    stored = await InsightStore(db).latest(NETWORK_SCOPE)
    assert stored is not None
    found = {tuple(a["member_ids"]) for a in stored.payload["fraud_alerts"] if a["kind"] == "SHARED_CONTACT"}
    planted = {tuple(sorted(int(loaded.member_ids[m - 1]) for m in group))
               for group in network.truth.shared_contact_groups}
    assert found == planted
