"""Webhooks end to end: outbox rows in the write's transaction, signed deliveries that survive a
receiver that fails, times out and recovers, in order per member, at least once; the SSRF guard;
disabling after the retry window; replay; tenant isolation."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import itertools
import json
import logging
import re
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from webhook_receiver import receiving

from coalition.config import load_settings
from coalition.db import Database, utcnow
from coalition.ledger.invariants import assert_ledger_consistent
from coalition.ledger.models import Entry
from coalition.ledger.service import Ledger
from coalition.webhooks import signing, ssrf
from coalition.webhooks.delivery import Deliverer
from coalition.webhooks.errors import InvalidWebhookUrl, UnknownEventType, UrlNotAllowed, WebhookDeliveryNotFound
from coalition.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from coalition.webhooks.service import EVENT_TYPE_NAMES, create_endpoint, delete_endpoint, replay_delivery

ALL = list(EVENT_TYPE_NAMES)
ALLOWED = frozenset({"127.0.0.1"})


async def deliveries(db: Database, endpoint_id: int | None = None) -> list[WebhookDelivery]:
    query = select(WebhookDelivery).order_by(WebhookDelivery.id)
    if endpoint_id is not None:
        query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
    async with db.session() as session:
        return list((await session.execute(query)).scalars())


async def drain(deliverer: Deliverer, db: Database, timeout_s: float = 60.0) -> None:
    """Run the worker's job until nothing is pending (or fail after ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        await deliverer.run_once()
        pending = [d for d in await deliveries(db) if d.status == DeliveryStatus.PENDING]
        if not pending:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{len(pending)} deliveries still pending after {timeout_s} s")


def verified(secret: str, received: Any) -> bool:
    return signing.verify(secret, received.headers["coalition-signature"], received.body, int(time.time()))


async def test_every_event_arrives_signed_in_order_through_failures_and_timeouts(
    db: Database, settings: Any, keys: Any, hooked_ledger: Ledger, make_merchant: Any, make_member: Any,
) -> None:
    # Given two merchants with endpoints on one receiver that fails, times out, then recovers
    def behave(n: int) -> str:
        if n < 6:
            return ("fail", "slow")[n % 2]
        return "fail" if n % 5 == 0 or n % 7 == 0 else "slow" if n % 11 == 0 else "ok"

    async with receiving(behave, slow_s=1.0) as receiver:
        a, b = (await make_merchant("A")).merchant, (await make_merchant("B")).merchant
        hook_a = await create_endpoint(db, keys, merchant_id=a.id, url=receiver.url("/a"), events=ALL,
                                       idempotency_key="a", allowed_hosts=ALLOWED)
        hook_b = await create_endpoint(db, keys, merchant_id=b.id, url=receiver.url("/b"), events=ALL,
                                       idempotency_key="b", allowed_hosts=ALLOWED)
        members = [(await make_member(a.id)).member for _ in range(4)] + [(await make_member(b.id)).member]

        # When many writes of every kind run concurrently
        async def history(member: Any, shop: Any, tag: str) -> None:
            for i in range(6):
                await hooked_ledger.earn(merchant_id=shop.id, loyalty_id=member.loyalty_id,
                                         purchase_amount_minor=10_00, idempotency_key=f"{tag}-e{i}")
                await hooked_ledger.redeem(merchant_id=shop.id, loyalty_id=member.loyalty_id, points=2,
                                           idempotency_key=f"{tag}-r{i}")
            held = await hooked_ledger.authorize(merchant_id=shop.id, loyalty_id=member.loyalty_id, points=3,
                                                 idempotency_key=f"{tag}-h")
            assert held.hold is not None
            await hooked_ledger.capture(merchant_id=shop.id, hold_id=held.hold.id, idempotency_key=f"{tag}-c")
            voided = await hooked_ledger.authorize(merchant_id=shop.id, loyalty_id=member.loyalty_id, points=1,
                                                   idempotency_key=f"{tag}-h2")
            assert voided.hold is not None
            await hooked_ledger.void(merchant_id=shop.id, hold_id=voided.hold.id, idempotency_key=f"{tag}-v")
            earned = await hooked_ledger.earn(merchant_id=shop.id, loyalty_id=member.loyalty_id,
                                              purchase_amount_minor=5_00, idempotency_key=f"{tag}-e-last")
            await hooked_ledger.reverse(merchant_id=shop.id, transaction_id=earned.entry.id,
                                        idempotency_key=f"{tag}-x")

        await asyncio.gather(*(history(m, a if i < 4 else b, f"m{i}") for i, m in enumerate(members)))
        # B's member shops at A too: A's event, B's member
        await hooked_ledger.earn(merchant_id=a.id, loyalty_id=members[4].loyalty_id, purchase_amount_minor=1_00,
                                 idempotency_key="cross")

        deliverer = Deliverer(db, settings, keys)
        try:
            await drain(deliverer, db)
        finally:
            await deliverer.aclose()

        # Then every entry of each merchant was delivered to its endpoint, once at least, signed
        async with db.read() as conn:
            entries = {m: set((await conn.execute(select(Entry.id).where(Entry.merchant_id == m))).scalars())
                       for m in (a.id, b.id)}
        for shop, hook, path in ((a, hook_a, "/a"), (b, hook_b, "/b")):
            rows = await deliveries(db, hook.endpoint.id)
            assert all(row.status == DeliveryStatus.DELIVERED for row in rows)
            got = receiver.accepted(path)
            assert all(verified(hook.secret, r) for r in got)
            assert not any(verified("whsec_wrong", r) for r in got)
            events = {r.event["id"]: r.event for r in got}
            assert len(events) == len(rows)  # none lost
            transaction_ids = {keys.global_ids.decode(e["data"]["transaction"]["id"], "Transaction")
                               for e in events.values() if "transaction" in e["data"]}
            assert transaction_ids == entries[shop.id]
            merchant_gid = keys.global_ids.encode("Merchant", shop.id)
            owners = {(e["data"].get("merchant") or e["data"]["transaction"]["merchant"])["id"]
                      for e in events.values()}
            assert owners == {merchant_gid}  # never another merchant's event
            enrolled = [e for e in events.values() if e["type"] == "member.enrolled"]
            assert len(enrolled) == (4 if shop is a else 1)
            # in order per member: the events of a member were accepted in outbox (commit) order
            by_member: dict[str, list[int]] = defaultdict(list)
            row_of = {keys.global_ids.encode("WebhookEvent", row.id): row for row in rows}
            for r in got:
                row = row_of[r.event["id"].removeprefix("evt_")]
                by_member[str(row.member_id)].append(row.id)
            for member_rows in by_member.values():
                assert member_rows == sorted(member_rows), member_rows
        # the same event id on every try of one delivery
        tries: dict[str, set[bytes]] = defaultdict(set)
        for r in receiver.requests:
            tries[r.event["id"]].add(r.body)
        assert all(len(bodies) == 1 for bodies in tries.values())
        assert any(r.answer == "fail" for r in receiver.requests) and any(r.answer == "slow" for r in receiver.requests)
        retried = [row for row in await deliveries(db) if row.attempts > 1]
        assert retried
        async with db.read() as conn:
            await assert_ledger_consistent(conn)


async def test_a_write_that_rolls_back_leaves_no_outbox_row(
    db: Database, keys: Any, hooked_ledger: Ledger, make_merchant: Any, make_member: Any,
) -> None:
    shop = (await make_merchant()).merchant
    await create_endpoint(db, keys, merchant_id=shop.id, url="http://127.0.0.1:9/x", events=ALL,
                          idempotency_key="k", allowed_hosts=ALLOWED)
    member = (await make_member(shop.id)).member
    before = len(await deliveries(db))
    with pytest.raises(Exception, match="points"):
        await hooked_ledger.redeem(merchant_id=shop.id, loyalty_id=member.loyalty_id, points=5,
                                   idempotency_key="too-many")
    assert len(await deliveries(db)) == before


async def test_merchants_without_endpoints_write_no_outbox_rows(
    db: Database, keys: Any, hooked_ledger: Ledger, make_merchant: Any, make_member: Any,
) -> None:
    quiet, loud = (await make_merchant("Quiet")).merchant, (await make_merchant("Loud")).merchant
    await create_endpoint(db, keys, merchant_id=loud.id, url="http://127.0.0.1:9/x", events=["points.redeemed"],
                          idempotency_key="k", allowed_hosts=ALLOWED)
    member = (await make_member(quiet.id)).member
    assert not await hooked_ledger.hooked(quiet.id, "points.earned")
    assert not await hooked_ledger.hooked(loud.id, "points.earned")  # not a type it asked for
    assert await hooked_ledger.hooked(loud.id, "points.redeemed")
    for i in range(3):
        await hooked_ledger.earn(merchant_id=quiet.id, loyalty_id=member.loyalty_id, purchase_amount_minor=100,
                                 idempotency_key=f"q{i}")
        await hooked_ledger.earn(merchant_id=loud.id, loyalty_id=member.loyalty_id, purchase_amount_minor=100,
                                 idempotency_key=f"l{i}")
    await hooked_ledger.redeem(merchant_id=loud.id, loyalty_id=member.loyalty_id, points=1, idempotency_key="r")
    rows = await deliveries(db)
    assert [(row.merchant_id, row.type) for row in rows] == [(loud.id, "points.redeemed")]


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/hook", "http://10.1.2.3/hook", "http://169.254.169.254/latest/meta-data",
    "http://[::1]:8080/hook", "http://localhost/hook", "https://192.168.0.10/x", "http://0.0.0.0/",
    "http://224.0.0.1/", "http://[::ffff:127.0.0.1]/", "http://172.16.5.4/",
])
async def test_private_and_loopback_addresses_are_refused(url: str) -> None:
    with pytest.raises(UrlNotAllowed):
        await ssrf.check_url(url, frozenset())


@pytest.mark.parametrize("url", [
    # the same loopback / metadata addresses spelled otherwise
    "http://2130706433/", "http://0177.0.0.1/", "http://0x7f.1/", "http://127.1/", "http://0/", "http://[::]/",
    "http://[::ffff:7f00:1]/", "http://[0:0:0:0:0:ffff:169.254.169.254]/", "http://[::127.0.0.1]/",
    "http://[2002:7f00:1::]/", "http://[2002:a9fe:a9fe::]/", "http://[64:ff9b::a9fe:a9fe]/",
    "http://[fe80::1%25eth0]/", "http://169.254.169.254./", "http://LOCALHOST/", "http://localhost./",
    "http://100.64.0.1/", "http://198.18.0.1/", "http://[fd00::1]/", "http://255.255.255.255/",
    "http://127.0.0.1#@93.184.216.34/",
])
async def test_other_spellings_of_private_addresses_are_refused(url: str) -> None:
    with pytest.raises((UrlNotAllowed, InvalidWebhookUrl)):
        await ssrf.check_url(url, frozenset())


async def test_a_name_is_judged_by_every_address_and_the_delivery_goes_to_the_checked_one(
    db: Database, settings: Any, keys: Any, hooked_ledger: Ledger, make_merchant: Any, make_member: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # DNS rebinding: the attacker's name answers a public address when checked, then a private one.
    answers = {"hooks.example": [["93.184.216.34"]]}

    async def resolve(host: str, port: int) -> list[str]:
        queue = answers[host]
        return queue.pop(0) if len(queue) > 1 else queue[0]

    monkeypatch.setattr(ssrf, "resolve", resolve)
    answers["mixed.example"] = [["10.0.0.5", "93.184.216.34"]]
    with pytest.raises(UrlNotAllowed):  # one private address among public ones is enough to refuse
        await ssrf.check_url("https://mixed.example/hook", frozenset())
    shop = (await make_merchant()).merchant
    await create_endpoint(db, keys, merchant_id=shop.id, url="https://hooks.example:8443/hook?x=1", events=ALL,
                          idempotency_key="k", allowed_hosts=frozenset())
    await make_member(shop.id)
    sent: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200)

    # at delivery the name answers a public address: the request goes to that address, named as the host
    answers["hooks.example"] = [["93.184.216.35"], ["127.0.0.1"]]
    deliverer = Deliverer(db, settings, keys, client=httpx.AsyncClient(transport=httpx.MockTransport(handle),
                                                                       follow_redirects=False))
    try:
        await deliverer.run_once()
        (request,) = sent
        assert request.url.host == "93.184.216.35" and request.url.port == 8443 and request.url.query == b"x=1"
        assert request.headers["host"] == "hooks.example:8443"
        assert request.extensions["sni_hostname"] == "hooks.example"  # the certificate is checked against the name
        # re-pointed at loopback afterwards: the next event is not sent anywhere
        member = (await make_member(shop.id)).member
        await hooked_ledger.earn(merchant_id=shop.id, loyalty_id=member.loyalty_id, purchase_amount_minor=100,
                                 idempotency_key="e")
        await deliverer.run_once()
    finally:
        await deliverer.aclose()
    assert len(sent) == 1
    waiting = [row for row in await deliveries(db) if row.status == DeliveryStatus.PENDING]
    assert waiting and all(str(row.last_error).startswith("URL_NOT_ALLOWED") for row in waiting if row.attempts)


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "/relative", "http://", "http://u:p@x.org/",
                                 "javascript:alert(1)", "http://exa mple.com/"])
async def test_only_absolute_http_urls(url: str) -> None:
    with pytest.raises(InvalidWebhookUrl):
        await ssrf.check_url(url, frozenset())


async def test_allowed_hosts_skip_the_address_check() -> None:
    await ssrf.check_url("http://127.0.0.1:8080/hook", frozenset({"127.0.0.1"}))
    await ssrf.check_url("http://localhost/hook", frozenset({"localhost"}))
    with pytest.raises(UrlNotAllowed):
        await ssrf.check_url("http://localhost/hook", frozenset({"127.0.0.1"}))  # the name, not what it resolves to


async def test_the_address_is_checked_again_at_delivery_time(
    db: Database, settings: Any, keys: Any, hooked_ledger: Ledger, make_merchant: Any, make_member: Any,
) -> None:
    async with receiving() as receiver:
        shop = (await make_merchant()).merchant
        await create_endpoint(db, keys, merchant_id=shop.id, url=receiver.url(), events=ALL,
                              idempotency_key="k", allowed_hosts=ALLOWED)
        await make_member(shop.id)
        # the host is no longer allowed (as if a name had been re-pointed at a private address)
        deliverer = Deliverer(db, dataclasses.replace(settings, webhook_allowed_hosts=frozenset()), keys)
        try:
            await deliverer.run_once()
        finally:
            await deliverer.aclose()
        assert receiver.requests == []
        (row,) = await deliveries(db)
        assert row.status == DeliveryStatus.PENDING and row.attempts == 1
        assert row.last_error is not None and row.last_error.startswith("URL_NOT_ALLOWED")


async def test_redirects_are_not_followed(
    db: Database, settings: Any, keys: Any, hooked_ledger: Ledger, make_merchant: Any, make_member: Any,
) -> None:
    async with receiving(lambda n: "redirect") as receiver:
        shop = (await make_merchant()).merchant
        await create_endpoint(db, keys, merchant_id=shop.id, url=receiver.url(), events=ALL,
                              idempotency_key="k", allowed_hosts=ALLOWED)
        await make_member(shop.id)
        deliverer = Deliverer(db, settings, keys)
        try:
            await deliverer.run_once()
        finally:
            await deliverer.aclose()
        assert [r.path for r in receiver.requests] == ["/hook"]
        (row,) = await deliveries(db)
        assert row.status == DeliveryStatus.PENDING and row.last_status_code == 302


async def test_an_endpoint_failing_past_the_retry_window_is_disabled_and_the_merchant_told(
    db: Database, settings: Any, keys: Any, hooked_ledger: Ledger, make_merchant: Any, make_member: Any,
    caplog: Any,
) -> None:
    async with receiving(lambda n: "fail") as receiver:
        shop = (await make_merchant()).merchant
        hook = await create_endpoint(db, keys, merchant_id=shop.id, url=receiver.url(), events=ALL,
                                     idempotency_key="k", allowed_hosts=ALLOWED)
        member = (await make_member(shop.id)).member
        await hooked_ledger.earn(merchant_id=shop.id, loyalty_id=member.loyalty_id, purchase_amount_minor=100,
                                 idempotency_key="e")
        deliverer = Deliverer(db, dataclasses.replace(settings, webhook_retry_window_s=0.3), keys)
        caplog.set_level(logging.WARNING, logger="coalition.webhooks")
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if (await deliverer.run_once()).disabled:
                    break
                await asyncio.sleep(0.02)
        finally:
            await deliverer.aclose()
        rows = await deliveries(db)
        assert rows[0].status == DeliveryStatus.FAILED and rows[0].attempts > 2
        assert rows[1].status == DeliveryStatus.PENDING  # the member's later event waits, in order
        assert len({r.event["id"] for r in receiver.requests}) == 1  # never the later one first
        async with db.session() as session:
            endpoint = await session.get(WebhookEndpoint, hook.endpoint.id)
        assert endpoint is not None and not endpoint.active and endpoint.disabled_reason
        assert "disabled" in caplog.text


async def test_retries_back_off_exponentially_for_at_least_72_hours_then_disable(
    db: Database, settings: Any, keys: Any, hooked_ledger: Ledger, make_merchant: Any, make_member: Any,
) -> None:
    # The schedule a deployment gets (COALITION_WEBHOOK_* unset), on a clock that jumps to each next try;
    # the receiver never answers 2xx.
    defaults = load_settings({"COALITION_DATABASE_URL": settings.database_url, "COALITION_SECRET_KEY": "x"})
    assert defaults.webhook_retry_window_s >= 72 * 3600
    settings = dataclasses.replace(settings, webhook_retry_window_s=defaults.webhook_retry_window_s,
                                   webhook_backoff_base_s=defaults.webhook_backoff_base_s,
                                   webhook_backoff_cap_s=defaults.webhook_backoff_cap_s)
    now = [utcnow() + dt.timedelta(seconds=1)]
    bodies: list[bytes] = []

    def handle(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        return httpx.Response(500)

    shop = (await make_merchant()).merchant
    hook = await create_endpoint(db, keys, merchant_id=shop.id, url="http://127.0.0.1:9/x", events=ALL,
                                 idempotency_key="k", allowed_hosts=ALLOWED)
    await make_member(shop.id)
    deliverer = Deliverer(db, settings, keys, clock=lambda: now[0],
                          client=httpx.AsyncClient(transport=httpx.MockTransport(handle)))
    tries: list[dt.datetime] = []
    try:
        for _ in range(500):
            tries.append(now[0])
            report = await deliverer.run_once()
            (row,) = await deliveries(db)
            if row.status != DeliveryStatus.PENDING:
                break
            assert report.failed == 1 and row.attempts == len(tries)
            now[0] = row.next_attempt_at.replace(tzinfo=dt.UTC) if row.next_attempt_at.tzinfo is None \
                else row.next_attempt_at
    finally:
        await deliverer.aclose()
    assert row.status == DeliveryStatus.FAILED and report.disabled == 1
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(tries)]
    base, cap = settings.webhook_backoff_base_s, settings.webhook_backoff_cap_s
    for n, gap in enumerate(gaps):  # base doubling per try, capped, +/-20 % jitter
        expected = min(cap, base * 2**n)
        assert 0.8 * expected - 0.01 <= gap <= 1.2 * expected + 0.01, (n, gap, expected)
    assert gaps[-1] > 0.7 * cap and (tries[-1] - tries[0]).total_seconds() >= 72 * 3600
    assert len(bodies) == len(tries) and len(set(bodies)) == 1  # the same event (id, body) on every try
    async with db.session() as session:
        endpoint = await session.get(WebhookEndpoint, hook.endpoint.id)
    assert endpoint is not None and not endpoint.active and "72 h" in str(endpoint.disabled_reason)


async def test_replaying_after_the_endpoint_was_disabled_sends_every_waiting_event_in_order(
    db: Database, settings: Any, keys: Any, hooked_ledger: Ledger, make_merchant: Any, make_member: Any,
) -> None:
    # Given an endpoint disabled after its receiver failed for the whole retry window
    healthy = False
    async with receiving(lambda n: "ok" if healthy else "fail") as receiver:
        shop, other = (await make_merchant("S")).merchant, (await make_merchant("O")).merchant
        hook = await create_endpoint(db, keys, merchant_id=shop.id, url=receiver.url(), events=ALL,
                                     idempotency_key="k", allowed_hosts=ALLOWED)
        members = [(await make_member(shop.id)).member for _ in range(2)]
        for i, member in enumerate(members):
            for n in range(3):
                await hooked_ledger.earn(merchant_id=shop.id, loyalty_id=member.loyalty_id,
                                         purchase_amount_minor=100 + n, idempotency_key=f"e{i}-{n}")
        deliverer = Deliverer(db, dataclasses.replace(settings, webhook_retry_window_s=0.3,
                                                      webhook_backoff_base_s=0.05), keys)
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not (await deliverer.run_once()).disabled:
                await asyncio.sleep(0.02)
            rows = await deliveries(db)
            failed = [row for row in rows if row.status == DeliveryStatus.FAILED]
            assert failed and len(rows) == 8  # two enrolments, six earns: each member's first may have failed
            async with db.session() as session:
                endpoint = await session.get(WebhookEndpoint, hook.endpoint.id)
            assert endpoint is not None and not endpoint.active and "replayWebhookDelivery" in str(
                endpoint.disabled_reason)
            # another merchant cannot replay it (nor enable the endpoint)
            with pytest.raises(Exception, match="no such webhook delivery"):
                await replay_delivery(db, other.id, failed[0].id)
            # When the receiver answers again and the merchant replays one failed event
            healthy = True
            replayed = await replay_delivery(db, shop.id, failed[0].id)
            assert replayed.status == DeliveryStatus.PENDING
            await drain(deliverer, db)
        finally:
            await deliverer.aclose()
        # Then the endpoint is active again and every event arrived, each member's in order
        async with db.session() as session:
            endpoint = await session.get(WebhookEndpoint, hook.endpoint.id)
        assert endpoint is not None and endpoint.active and endpoint.disabled_reason is None
        assert all(row.status == DeliveryStatus.DELIVERED for row in await deliveries(db))
        accepted = receiver.accepted("/hook")
        assert {r.event["id"] for r in accepted} == {f"evt_{keys.global_ids.encode('WebhookEvent', row.id)}"
                                                     for row in rows}
        for member in members:
            gid = keys.global_ids.encode("Member", member.id)
            ids = [keys.global_ids.decode(r.event["id"].removeprefix("evt_"), "WebhookEvent") for r in accepted
                   if (r.event["data"].get("member") or r.event["data"].get("transaction", {}).get("member") or {})
                   .get("id") == gid]
            assert len(ids) == 4 and ids == sorted(ids)
        # a deleted endpoint's deliveries are gone with it: not replayed
        await delete_endpoint(db, shop.id, hook.endpoint.id)
        with pytest.raises(WebhookDeliveryNotFound):
            await replay_delivery(db, shop.id, rows[0].id)


async def test_a_slow_endpoint_does_not_hold_up_another_merchants_deliveries(
    db: Database, settings: Any, keys: Any, hooked_ledger: Ledger, make_merchant: Any, make_member: Any,
) -> None:
    seen: list[int] = []
    async with receiving(lambda n: "slow", slow_s=1.0) as rogue_receiver, \
            receiving(lambda n: seen.append(len(rogue_receiver.requests)) or "ok") as honest_receiver:
        rogue, honest = (await make_merchant("Rogue")).merchant, (await make_merchant("Honest")).merchant
        await create_endpoint(db, keys, merchant_id=rogue.id, url=rogue_receiver.url(), events=ALL,
                              idempotency_key="k", allowed_hosts=ALLOWED)
        await create_endpoint(db, keys, merchant_id=honest.id, url=honest_receiver.url(), events=ALL,
                              idempotency_key="k", allowed_hosts=ALLOWED)
        for _ in range(40):  # forty members' events, each answered only after the sender's timeout
            await make_member(rogue.id)
        await make_member(honest.id)
        deliverer = Deliverer(db, settings, keys)
        try:
            await deliverer.run_once()
        finally:
            await deliverer.aclose()
    # the honest merchant's event went out before the rogue's queue had taken the tick's slots
    assert seen and seen[0] < 8, seen


async def test_a_tick_waits_a_bounded_time_and_a_hanging_send_finishes_in_the_background(
    db: Database, settings: Any, keys: Any, hooked_ledger: Ledger, make_merchant: Any, make_member: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from coalition.webhooks import delivery

    monkeypatch.setattr(delivery, "TICK_GRACE_S", 0.1)
    release = asyncio.Event()
    sent: list[str] = []

    async def handle(request: httpx.Request) -> httpx.Response:
        await release.wait()  # a receiver that hangs (the client's own timeout is not in play here)
        sent.append(json.loads(request.content)["id"])
        return httpx.Response(200)

    shop = (await make_merchant()).merchant
    await create_endpoint(db, keys, merchant_id=shop.id, url="http://127.0.0.1:9/x", events=ALL,
                          idempotency_key="k", allowed_hosts=ALLOWED)
    await make_member(shop.id)
    deliverer = Deliverer(db, settings, keys, client=httpx.AsyncClient(transport=httpx.MockTransport(handle)))
    try:
        started = time.monotonic()
        assert (await deliverer.run_once()).sent == 0
        assert time.monotonic() - started < settings.webhook_timeout_s + 0.1 + 2.0  # bounded, not the hang
        assert (await deliverer.run_once()).sent == 0  # claimed and running: not started again
        release.set()
        for _ in range(100):
            await asyncio.sleep(0.02)
            if sent:
                break
        await asyncio.sleep(0.1)
        assert (await deliverer.run_once()).sent == 1 and len(sent) == 1  # counted by the tick it ended in
        # and a send still hanging when the deliverer closes is cancelled, not left behind
        release.clear()
        await make_member(shop.id)
        await deliverer.run_once()
    finally:
        await deliverer.aclose()
    assert not deliverer._running and len(sent) == 1


async def test_replay_sends_the_same_event_again(
    db: Database, settings: Any, keys: Any, hooked_ledger: Ledger, make_merchant: Any, make_member: Any,
) -> None:
    async with receiving() as receiver:
        shop, other = (await make_merchant("S")).merchant, (await make_merchant("O")).merchant
        await create_endpoint(db, keys, merchant_id=shop.id, url=receiver.url(), events=["member.enrolled"],
                              idempotency_key="k", allowed_hosts=ALLOWED)
        await make_member(shop.id)
        deliverer = Deliverer(db, settings, keys)
        try:
            await drain(deliverer, db)
            (row,) = await deliveries(db)
            with pytest.raises(Exception, match="no such webhook delivery"):
                await replay_delivery(db, other.id, row.id)  # another merchant's: not found
            replayed = await replay_delivery(db, shop.id, row.id)
            assert replayed.status == DeliveryStatus.PENDING
            await drain(deliverer, db)
        finally:
            await deliverer.aclose()
        assert len(receiver.requests) == 2 and receiver.requests[0].body == receiver.requests[1].body


async def test_registration_refuses_bad_input_and_replays_a_retry(db: Database, keys: Any, make_merchant: Any) -> None:
    shop = (await make_merchant()).merchant
    with pytest.raises(UrlNotAllowed):
        await create_endpoint(db, keys, merchant_id=shop.id, url="http://127.0.0.1/x", events=ALL,
                              idempotency_key="k", allowed_hosts=frozenset())
    with pytest.raises(UnknownEventType):
        await create_endpoint(db, keys, merchant_id=shop.id, url="http://127.0.0.1/x", events=["points.stolen"],
                              idempotency_key="k", allowed_hosts=ALLOWED)
    with pytest.raises(UnknownEventType, match="at least one"):
        await create_endpoint(db, keys, merchant_id=shop.id, url="http://127.0.0.1/x", events=[],
                              idempotency_key="k", allowed_hosts=ALLOWED)
    first = await create_endpoint(db, keys, merchant_id=shop.id, url="http://127.0.0.1/x", events=ALL,
                                  idempotency_key="k", allowed_hosts=ALLOWED)
    again = await create_endpoint(db, keys, merchant_id=shop.id, url="http://127.0.0.1/x", events=ALL,
                                  idempotency_key="k", allowed_hosts=ALLOWED)
    assert (again.endpoint.id, again.secret) == (first.endpoint.id, first.secret)
    with pytest.raises(Exception, match="already used with a different input"):
        await create_endpoint(db, keys, merchant_id=shop.id, url="http://127.0.0.1/y", events=ALL,
                              idempotency_key="k", allowed_hosts=ALLOWED)
    async with db.read() as conn:
        stored = (await conn.execute(select(WebhookEndpoint.secret_encrypted))).scalar_one()
    assert first.secret.encode() not in stored  # encrypted at rest
    await delete_endpoint(db, shop.id, first.endpoint.id)
    async with db.read() as conn:
        assert (await conn.execute(select(func.count()).select_from(WebhookEndpoint)
                                   .where(WebhookEndpoint.active))).scalar_one() == 0


def test_the_docs_snippet_verifies_a_signature() -> None:
    text = (Path(__file__).parents[2] / "docs" / "webhooks.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S)
    assert code is not None
    namespace: dict[str, Any] = {}
    exec(code.group(1), namespace)  # the snippet as printed
    body = json.dumps({"id": "evt_1", "type": "points.earned", "createdAt": "2026-12-07T00:00:00Z",
                       "data": {}}).encode()
    now = int(time.time())
    header = signing.signature("whsec_test", now, body)
    verify = namespace["verify"]
    assert verify("whsec_test", header, body) is True
    assert verify("whsec_other", header, body) is False
    assert verify("whsec_test", header, body + b" ") is False
    assert verify("whsec_test", signing.signature("whsec_test", now - 3600, body), body) is False  # too old


@pytest.mark.parametrize(("url", "address", "expected", "host", "sni"), [
    ("https://hooks.example.com/x?y=1", "93.184.216.34", "https://93.184.216.34/x?y=1", "hooks.example.com",
     "hooks.example.com"),
    ("http://hooks.example.com:8080/x", "2606:2800:220:1::1", "http://[2606:2800:220:1::1]:8080/x",
     "hooks.example.com:8080", None),
])
def test_a_delivery_connects_to_the_address_that_was_checked(url: str, address: str, expected: str, host: str,
                                                             sni: str | None) -> None:
    # (a second DNS answer, after the check, cannot send the request elsewhere)
    pinned_url, headers, extensions = ssrf.pinned(url, address)
    assert pinned_url == expected and headers == {"Host": host}
    assert extensions.get("sni_hostname") == sni


async def test_the_one_statement_earn_and_redeem_write_their_outbox_rows_themselves(
    db: Database, keys: Any, hooked_ledger: Ledger, make_merchant: Any, make_member: Any, monkeypatch: Any,
) -> None:
    if db.is_sqlite:
        pytest.skip("the one-statement path is PostgreSQL's: set COALITION_TEST_DATABASE_URL")
    shop = (await make_merchant()).merchant
    hook = await create_endpoint(db, keys, merchant_id=shop.id, url="http://127.0.0.1:9/x", events=ALL,
                                 idempotency_key="k", allowed_hosts=ALLOWED)
    member = (await make_member(shop.id)).member

    def no_fallback(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the multi-statement path ran")

    from coalition.ledger import core
    monkeypatch.setattr(core, "insert_entry", no_fallback)
    earned = await hooked_ledger.earn(merchant_id=shop.id, loyalty_id=member.loyalty_id, purchase_amount_minor=500,
                                      idempotency_key="e")
    redeemed = await hooked_ledger.redeem(merchant_id=shop.id, loyalty_id=member.loyalty_id, points=2,
                                          idempotency_key="r")
    rows = [row for row in await deliveries(db, hook.endpoint.id) if row.type != "member.enrolled"]
    assert [(row.type, json.loads(row.data)["entry_id"], json.loads(row.data)["points"]) for row in rows] == [
        ("points.earned", earned.entry.id, 5), ("points.redeemed", redeemed.entry.id, -2)]
    assert all(row.member_id == member.id for row in rows)


async def test_a_settlement_run_tells_each_merchant_in_it(
    db: Database, settings: Any, keys: Any, hooked_ledger: Ledger, make_merchant: Any, make_member: Any,
) -> None:
    import datetime as dt

    from coalition.settlement.service import run_settlement

    shop, quiet = (await make_merchant("S")).merchant, (await make_merchant("Q")).merchant
    hook = await create_endpoint(db, keys, merchant_id=shop.id, url="http://127.0.0.1:9/x",
                                 events=["settlement.closed"], idempotency_key="k", allowed_hosts=ALLOWED)
    await create_endpoint(db, keys, merchant_id=quiet.id, url="http://127.0.0.1:9/y", events=["settlement.closed"],
                          idempotency_key="k", allowed_hosts=ALLOWED)
    member = (await make_member(shop.id)).member
    await hooked_ledger.earn(merchant_id=shop.id, loyalty_id=member.loyalty_id, purchase_amount_minor=500,
                             idempotency_key="e")
    now = dt.datetime.now(dt.UTC)
    run = await run_settlement(db, settings, keys, period_end=now, idempotency_key="s", now=now)
    rows = await deliveries(db)
    assert {(row.endpoint_id, row.type) for row in rows} >= {(hook.endpoint.id, "settlement.closed")}
    mine = [row for row in rows if row.endpoint_id == hook.endpoint.id]
    assert json.loads(mine[0].data)["batch_id"] == run.batch.id
    assert all(row.merchant_id in (shop.id, quiet.id) for row in rows)


@pytest.mark.parametrize("event_type", ["giftcard.redeemed", "voucher.issued", "fraud.alert"])
async def test_every_event_type_the_contract_names_can_be_subscribed_to(
    db: Database, keys: Any, make_merchant: Any, event_type: str,
) -> None:
    shop = (await make_merchant()).merchant
    made = await create_endpoint(db, keys, merchant_id=shop.id, url="http://127.0.0.1:9/x", events=[event_type],
                                 idempotency_key="k", allowed_hosts=ALLOWED)
    assert made.endpoint.events == f",{event_type},"
