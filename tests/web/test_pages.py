"""The pages over HTTP: sign-in and sessions, CSRF, roles, tenant isolation, the till, the wallet, languages."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import httpx
import pytest
from page_world import PASSWORD, World, build_world, csrf_of, sign_in
from sqlalchemy import text

from coalition.console.models import ConsoleSession
from coalition.web.auth import STAFF_COOKIE

HTML = {"Accept": "text/html"}


async def test_sign_in_opens_a_session_with_a_safe_cookie_and_rotates_it(browser: Any, world: World) -> None:
    browser.cookies.set(STAFF_COOKIE, "css_planted-by-an-attacker")
    response = await sign_in(browser, world.email["ownerA"])
    assert response.status_code == 303 and response.headers["location"] == "/console"
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith(STAFF_COOKIE))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie  # http public URL
    assert "css_planted" not in cookie
    page = await browser.get("/console", headers=HTML)
    assert page.status_code == 200
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "private, no-store"


async def test_wrong_password_is_refused_the_same_way_as_an_unknown_email(browser: Any, world: World) -> None:
    wrong = await sign_in(browser, world.email["ownerA"], "not the password")
    unknown = await sign_in(browser, "nobody@example.com", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert STAFF_COOKIE not in wrong.headers.get("set-cookie", "")
    assert "Wrong e-mail or password" in wrong.text and "Wrong e-mail or password" in unknown.text


async def test_the_account_locks_after_five_wrong_passwords(browser: Any, world: World) -> None:
    for _ in range(5):
        assert (await sign_in(browser, world.email["ownerB"], "wrong password!")).status_code == 401
    locked = await sign_in(browser, world.email["ownerB"])  # the right password, while locked
    assert locked.status_code == 401


async def test_sign_in_without_the_form_token_is_refused(browser: Any, world: World) -> None:
    response = await browser.post("/login", data={"email": world.email["ownerA"], "password": PASSWORD},
                                  headers=HTML)
    assert response.status_code == 403 and "<html" in response.text


async def test_a_form_without_the_sessions_csrf_token_is_refused(browser: Any, world: World) -> None:
    await sign_in(browser, world.email["ownerA"])
    forged = await browser.post("/console/staff", data={"action": "create_key", "label": "evil", "csrf": "guess"},
                                headers=HTML)
    assert forged.status_code == 403
    page = await browser.get("/console/staff", headers=HTML)
    assert "evil" not in page.text


async def test_signing_out_ends_the_session(browser: Any, world: World) -> None:
    await sign_in(browser, world.email["ownerA"])
    page = await browser.get("/console", headers=HTML)
    out = await browser.post("/logout", data={"csrf": csrf_of(page.text)})
    assert out.status_code == 303
    again = await browser.get("/console", headers=HTML)
    assert again.status_code == 303 and again.headers["location"].startswith("/login")


async def test_an_idle_session_expires(browser: Any, world: World, db: Any, app: Any) -> None:
    await sign_in(browser, world.email["ownerA"])
    async with db.sessions.begin() as session:
        for row in (await session.execute(ConsoleSession.__table__.select())).all():
            await session.execute(ConsoleSession.__table__.update().where(ConsoleSession.id == row.id).values(
                last_seen_at=row.last_seen_at - dt.timedelta(hours=2)))
    app.state.authenticator.forget()
    page = await browser.get("/console", headers=HTML)
    assert page.status_code == 303


@pytest.mark.parametrize("path", ["/console", "/console/customers", "/console/insights", "/console/statements",
                                  "/console/staff", "/admin", "/admin/merchants", "/admin/fraud"])
async def test_a_cashier_opens_the_till_only(browser: Any, world: World, path: str) -> None:
    await sign_in(browser, world.email["cashierA"])
    assert (await browser.get("/console/till", headers=HTML)).status_code == 200
    refused = await browser.get(path, headers=HTML)
    assert refused.status_code == 403 and "<html" in refused.text and "Not allowed" in refused.text


async def test_a_merchant_never_sees_another_merchants_customer(browser: Any, world: World) -> None:
    await sign_in(browser, world.email["ownerA"])
    own = await browser.get(f"/console/customers/{world.loyalty['alice']}", headers=HTML)
    other = await browser.get(f"/console/customers/{world.loyalty['bob']}", headers=HTML)
    nobody = await browser.get("/console/customers/LX-0000-0000-0", headers=HTML)
    assert own.status_code == 200
    assert other.status_code == 404 and "Balance" not in other.text and "Not found" in other.text
    assert nobody.status_code in (400, 404)
    listing = await browser.get("/console/customers", headers=HTML)
    assert world.loyalty["alice"] in listing.text and world.loyalty["bob"] not in listing.text


async def test_the_till_earns_and_redeems(browser: Any, world: World, ledger: Any) -> None:
    await sign_in(browser, world.email["cashierA"])
    found = await browser.get("/console/till", params={"q": "alice@example.com"}, headers=HTML)
    assert world.loyalty["alice"] in found.text
    form = {"csrf": csrf_of(found.text), "loyalty_id": world.loyalty["alice"], "key": "k1", "action": "earn",
            "amount": "12.50"}
    earned = await browser.post("/console/till", data=form, headers=HTML)
    assert earned.status_code == 200 and "Added 12 points" in earned.text
    again = await browser.post("/console/till", data=form, headers=HTML)  # a double submit: the same key
    assert "Added 12 points" in again.text
    redeem = {**form, "key": "k2", "action": "redeem", "points": "5"}
    del redeem["amount"]
    redeemed = await browser.post("/console/till", data=redeem, headers=HTML)
    assert "Redeemed 5 points" in redeemed.text and 'data-testid="balance">7<' in redeemed.text
    too_much = await browser.post("/console/till", data={**redeem, "key": "k3", "points": "500"}, headers=HTML)
    assert too_much.status_code == 400 and 'role="alert"' in too_much.text


async def test_the_till_finds_by_phone_but_not_by_a_partial_one(browser: Any, world: World) -> None:
    await sign_in(browser, world.email["cashierA"])
    assert world.loyalty["alice"] in (await browser.get("/console/till?q=%2B45%2012%2034%2056%2078",
                                                        headers=HTML)).text
    assert world.loyalty["alice"] not in (await browser.get("/console/till?q=%2B451234", headers=HTML)).text


async def test_an_owner_adds_a_cashier_and_manages_keys(browser: Any, world: World, app: Any) -> None:
    await sign_in(browser, world.email["ownerA"])
    page = await browser.get("/console/staff", headers=HTML)
    added = await browser.post("/console/staff", data={"csrf": csrf_of(page.text), "action": "add_cashier",
                                                       "email": "new@example.com", "password": "a long password"})
    assert added.status_code == 200 and "new@example.com" in added.text
    created = await browser.post("/console/staff", data={"csrf": csrf_of(page.text), "action": "create_key",
                                                         "label": "till 2"})
    assert 'data-testid="new-key">coa_' in created.text
    key = created.text.split('data-testid="new-key">')[1].split("<")[0]
    api = await browser.post("/graphql", json={"query": "{ __typename }"}, headers={"Authorization": f"Bearer {key}"})
    assert api.status_code == 200


async def test_the_session_cookie_is_not_a_credential_for_graphql(browser: Any, world: World) -> None:
    await sign_in(browser, world.email["admin"])
    answer = await browser.post("/graphql", json={"query": "{ merchants(first: 1) { edges { node { id } } } }"})
    assert "UNAUTHENTICATED" in answer.text or "FORBIDDEN" in answer.text


async def test_wallet_from_a_claim_link(browser: Any, world: World) -> None:
    page = await browser.get(f"/me/claim?code={world.claim['alice']}", headers=HTML)
    assert page.status_code == 200  # a GET never spends the code
    opened = await browser.post("/me/claim", data={"code": world.claim["alice"], "csrf": csrf_of(page.text)})
    assert opened.status_code == 303 and opened.headers["location"] == "/me"
    wallet = await browser.get("/me", headers=HTML)
    assert wallet.status_code == 200 and world.loyalty["alice"] in wallet.text and "data:image/svg+xml" in wallet.text
    out = await browser.post("/me/revoke", data={"csrf": csrf_of(wallet.text)})
    assert out.status_code == 200
    assert (await browser.get("/me", headers=HTML)).status_code == 401


async def test_a_spent_claim_code_opens_nothing(browser: Any, world: World) -> None:
    page = await browser.get("/me/claim", headers=HTML)
    form = {"code": world.claim["bob"], "csrf": csrf_of(page.text)}
    assert (await browser.post("/me/claim", data=form)).status_code == 303
    browser.cookies.clear()
    page = await browser.get("/me/claim", headers=HTML)
    again = await browser.post("/me/claim", data={**form, "csrf": csrf_of(page.text)})
    assert again.status_code == 400


async def test_pages_speak_danish_and_hebrew(browser: Any, world: World) -> None:
    await sign_in(browser, world.email["ownerA"])
    danish = await browser.get("/console", headers={**HTML, "Accept-Language": "da-DK,da;q=0.9,en;q=0.5"})
    assert '<html lang="da" dir="ltr">' in danish.text and "Kunder" in danish.text
    chosen = await browser.get("/language?lang=he&next=/console")
    assert chosen.status_code == 303
    hebrew = await browser.get("/console", headers={**HTML, "Accept-Language": "da"})
    assert '<html lang="he" dir="rtl">' in hebrew.text


async def test_a_401_challenges_basic_only_where_basic_is_accepted(api: Any) -> None:
    graphql = await api.client.post("/graphql", json={"query": "{ __typename }"},
                                    headers={"Authorization": "Bearer nope"})
    assert graphql.headers.get_list("www-authenticate") == ["Bearer"]
    report = await api.client.get("/admin/settlement", headers=HTML)
    assert report.headers.get_list("www-authenticate") == ["Bearer", 'Basic realm="Coalition", charset="UTF-8"']
    console = await api.client.get("/console/till", headers={"Accept": "application/json"})
    assert console.status_code == 401 and console.headers.get_list("www-authenticate") == ["Bearer"]


async def test_a_browser_gets_a_human_404(browser: Any, world: World) -> None:
    await sign_in(browser, world.email["ownerA"])
    page = await browser.get("/console/customers/LX-ZZZZ", headers=HTML)
    assert page.status_code in (400, 404) and "<html" in page.text and "Traceback" not in page.text


async def test_the_next_parameter_never_leaves_the_site(browser: Any, world: World) -> None:
    form = await browser.get("/login?next=//evil.example/x", headers=HTML)
    response = await browser.post("/login", data={"email": world.email["ownerA"], "password": PASSWORD,
                                                  "csrf": csrf_of(form.text), "next": "//evil.example/x"})
    assert response.headers["location"] == "/console"


async def test_an_address_over_its_failure_budget_cannot_sign_in(db: Any, keys: Any, settings: Any) -> None:
    from coalition.app import create_app

    app = create_app(settings.with_overrides(auth_failures_per_min=3))
    world = await build_world(db, keys)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        for n in range(3):  # three different accounts: the per-account lock never triggers
            assert (await sign_in(client, f"nobody{n}@example.com", "guess guess")).status_code == 401
        blocked = await sign_in(client, world.email["ownerA"])  # the right password, from that address
        assert blocked.status_code == 401 and STAFF_COOKIE not in blocked.headers.get("set-cookie", "")
    await app.state.limiter.aclose()
    await app.state.services.insights.aclose()
    await app.state.services.db.dispose()


async def test_an_admin_onboards_and_suspends_a_merchant(browser: Any, world: World, db: Any) -> None:
    await sign_in(browser, world.email["admin"])
    page = await browser.get("/admin/merchants", headers=HTML)
    short = await browser.post("/admin/merchants", data={
        "csrf": csrf_of(page.text), "action": "onboard", "name": "Shop C", "email": "c@example.com", "password": "x"})
    assert short.status_code == 400 and "Shop C" not in short.text  # refused before the merchant exists
    made = await browser.post("/admin/merchants", data={
        "csrf": csrf_of(page.text), "action": "onboard", "name": "Shop C", "category": "bakery",
        "email": "c@example.com", "password": "a long enough password"})
    assert made.status_code == 200 and "Shop C joined the network" in made.text and "coa_" in made.text
    # The form carries a key drawn with the page: sent twice, it makes one merchant and one owner.
    form_key = re.search(r'name="key" value="([^"]+)"', page.text)
    assert form_key is not None
    twice = {"csrf": csrf_of(page.text), "action": "onboard", "name": "Shop D", "key": form_key.group(1),
             "email": "d@example.com", "password": "a long enough password"}
    first, resent = [await browser.post("/admin/merchants", data=twice) for _ in range(2)]
    assert "coa_" in first.text and resent.status_code == 200 and "coa_" not in resent.text
    assert "Shop D joined the network with this form before" in resent.text
    async with db.read() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM merchants WHERE name = 'Shop D'"))).scalar_one() == 1
    suspended = await browser.post("/admin/merchants", data={"csrf": csrf_of(page.text), "action": "suspend",
                                                             "merchant": str(world.merchant["B"])})
    assert suspended.status_code == 200 and "suspended" in suspended.text
    async with httpx.AsyncClient(transport=browser._transport, base_url="http://test") as owner_c:
        assert (await sign_in(owner_c, "c@example.com", "a long enough password")).headers["location"] == "/console"


async def test_fraud_decisions_are_stored_for_the_analysis(browser: Any, world: World, db: Any, keys: Any,
                                                            settings: Any) -> None:
    from planted_network import forget_cached_insights

    from coalition.members.service import enroll_member
    from coalition.network.jobs import run_analysis
    from coalition.network.reviews import load_reviews

    # Four aliases of one mailbox: the analysis flags them as one SHARED_CONTACT alert.
    await forget_cached_insights(settings.redis_url)
    aliases = ["ann.smith+1@gmail.com", "AnnSmith@googlemail.com", "a.n.n.smith@gmail.com", "annsmith+x@gmail.com"]
    ids = [(await enroll_member(db, keys, merchant_id=world.merchant["A"], idempotency_key=f"alias-{n}",
                                email=email)).member.id for n, email in enumerate(aliases)]
    await run_analysis(db, settings, draw_map=False)
    await sign_in(browser, world.email["admin"])
    page = await browser.get("/admin/fraud", headers=HTML)
    key = f"SHARED_CONTACT:{','.join(str(i) for i in sorted(ids))}"
    assert f'value="{key}"' in page.text
    decided = await browser.post("/admin/fraud", data={"csrf": csrf_of(page.text), "alert": key,
                                                       "decision": "dismiss"})
    assert decided.status_code == 200 and "Dismissed" in decided.text
    assert set(ids) <= (await load_reviews(db)).dismissed_members  # the next run leaves them out
    for alert, decision in (("SYBIL_FARM:1,2", "dismiss"), (key, "maybe")):  # no such alert; no such decision
        bad = await browser.post("/admin/fraud", data={"csrf": csrf_of(page.text), "alert": alert,
                                                       "decision": decision}, headers=HTML)
        assert bad.status_code == 400


async def test_a_bearer_key_reads_pages_but_posts_no_form(api: Any, world: World) -> None:
    bearer = {"Authorization": f"Bearer {world.key['A']}", **HTML}
    assert (await api.client.get("/console", headers=bearer)).status_code == 200
    refused = await api.client.post("/console/till", data={"action": "earn", "csrf": "", "amount": "1",
                                                           "loyalty_id": world.loyalty["alice"], "key": "x"},
                                    headers=bearer)
    assert refused.status_code == 403 and "SESSION_REQUIRED" in refused.text
