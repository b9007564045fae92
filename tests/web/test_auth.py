"""The one authentication backend, through the real application: every credential kind, refusals, budgets."""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.requests import HTTPConnection

from coalition.app import create_app
from coalition.config import Settings
from coalition.ratelimit import InProcessRateLimiter
from coalition.web.auth import AuthBackend, AuthRefused, client_address

VIEWER = "{ viewer { __typename } }"
BASIC_CHALLENGE = 'Basic realm="Coalition", charset="UTF-8"'


def basic(password: str, user: str = "admin") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


def code_of(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"errors"} and len(body["errors"]) == 1, body
    error = body["errors"][0]
    assert error["message"] and set(error) == {"message", "extensions"}, error
    return str(error["extensions"]["code"])


class Apps:
    """Applications built from the test settings with overrides, closed at the end."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.built: list[Any] = []

    def client(self, address: str = "198.51.100.7", **overrides: Any) -> httpx.AsyncClient:
        app = self.app(**overrides)
        return self.client_of(app, address)

    def app(self, **overrides: Any) -> Any:
        app = create_app(self.settings.with_overrides(**overrides))
        self.built.append(app)
        return app

    @staticmethod
    def client_of(app: Any, address: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(address, 40000)),
                                 base_url="http://coalition.test")


@pytest.fixture
async def apps(settings: Settings, db: Any) -> AsyncIterator[Apps]:
    made = Apps(settings)
    yield made
    for app in made.built:
        await app.state.limiter.aclose()
        await app.state.services.insights.aclose()
        await app.state.services.db.dispose()


async def test_each_credential_kind_reaches_graphql_as_its_caller(
        api: Any, admin_key: str, make_merchant: Any, make_member: Any) -> None:
    shop = await make_merchant("Shop")
    member = await make_member(shop.merchant.id)
    for credential, typename in ((admin_key, "AdminViewer"), (shop.api_key, "MerchantViewer"),
                                 (member.member_token, "MemberViewer")):
        response = await api.client.post("/graphql", json={"query": VIEWER}, headers=bearer(credential))
        assert response.status_code == 200, response.text
        assert response.json()["data"]["viewer"]["__typename"] == typename
    anonymous = await api.client.post("/graphql", json={"query": "{ network { name } }"})
    assert anonymous.status_code == 200 and anonymous.json()["data"]["network"]["name"]


async def test_a_bad_credential_on_graphql_is_a_401_in_the_graphql_shape(api: Any, admin_key: str) -> None:
    for headers in (bearer("coa_nonsense"), bearer(""), bearer("x" * 5000), {"Authorization": "Token abc"},
                    # Basic is for pages a browser opens, not for the API.
                    basic(admin_key)):
        response = await api.client.post("/graphql", json={"query": VIEWER},
                                         headers={**headers, "Accept": "application/graphql-response+json"})
        assert response.status_code == 401, headers
        assert response.headers["content-type"] == "application/graphql-response+json; charset=utf-8"
        assert response.headers.get_list("www-authenticate") == ["Bearer"]
        assert code_of(response) == "UNAUTHENTICATED"
    legacy = await api.client.post("/graphql", json={"query": VIEWER}, headers=bearer("coa_nonsense"))
    assert legacy.headers["content-type"] == "application/json; charset=utf-8" and code_of(legacy) == "UNAUTHENTICATED"


async def test_pages_take_basic_with_the_key_as_password_and_challenge_on_two_lines(
        api: Any, admin_key: str) -> None:
    for headers in (basic(admin_key), basic("", user=admin_key), bearer(admin_key)):
        page = await api.client.get("/admin/settlement", headers=headers)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for headers in ({}, basic("coa_wrong"), {"Authorization": "Basic !!"}, bearer("coa_wrong")):
        refused = await api.client.get("/admin/settlement", headers=headers)
        assert refused.status_code == 401, headers
        # Two header lines: Chromium ignores a Basic challenge that shares its line with Bearer.
        assert refused.headers.get_list("www-authenticate") == ["Bearer", BASIC_CHALLENGE]
        assert refused.headers["content-type"] == "application/json" and code_of(refused) == "UNAUTHENTICATED"


async def test_a_member_token_or_a_merchant_key_is_refused_on_admin_pages(
        api: Any, admin_key: str, make_merchant: Any, make_member: Any) -> None:
    shop = await make_merchant("Shop")
    member = await make_member(shop.merchant.id)
    for credential in (member.member_token, shop.api_key):
        for path in ("/admin/settlement", "/admin/settlement/1/report.csv", "/admin/network-map.svg",
                     "/admin/settlement/simulate.html"):
            for headers in (bearer(credential), basic(credential)):
                response = await api.client.get(path, headers=headers)
                assert response.status_code == 403, (path, response.text)
                assert code_of(response) == "FORBIDDEN"
                assert "www-authenticate" not in response.headers


async def test_a_browser_gets_a_small_html_error_page_with_the_status(
        api: Any, admin_key: str, make_merchant: Any) -> None:
    shop = await make_merchant("Shop")
    html = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    asked = await api.client.get("/admin/settlement", headers=html)
    assert asked.status_code == 401 and asked.headers["content-type"].startswith("text/html")
    assert asked.headers.get_list("www-authenticate") == ["Bearer", BASIC_CHALLENGE]
    assert "UNAUTHENTICATED" in asked.text and "<script" not in asked.text
    assert "default-src 'none'" in asked.headers["content-security-policy"]
    forbidden = await api.client.get("/admin/network-map.svg", headers={**html, **basic(shop.api_key)})
    assert forbidden.status_code == 403 and "FORBIDDEN" in forbidden.text
    missing = await api.client.get("/statements/99.html", headers={**html, **basic(shop.api_key)})
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
    # A message that echoes the request is escaped.
    odd = await api.client.get("/statements/<b>x</b>.html", headers={**html, **basic(shop.api_key)})
    assert odd.status_code == 404 and "<b>" not in odd.text
    # The API is JSON whatever the Accept header says.
    graphql = await api.client.post("/graphql", json={"query": VIEWER}, headers={**html, **bearer("coa_bad")})
    assert graphql.status_code == 401 and code_of(graphql) == "UNAUTHENTICATED"


def fresh_address() -> str:
    """An address no earlier run counted against (budgets live a minute in Redis): a random /64."""
    return f"2001:db8:{secrets.randbelow(0xFFFF):x}:{secrets.randbelow(0xFFFF):x}::1"


async def test_guessing_keys_is_refused_after_the_failure_budget(apps: Apps, admin_key: str) -> None:
    app = apps.app(auth_failures_per_min=30)
    lookups = 0
    authenticate = app.state.authenticator.authenticate

    async def counted(credential: str) -> Any:
        nonlocal lookups
        lookups += 1
        return await authenticate(credential)

    app.state.authenticator.authenticate = counted
    statuses: list[int] = []
    started = time.time()
    async with apps.client_of(app, fresh_address()) as attacker:
        for guess in range(500):
            path, headers = (("/graphql", bearer(f"coa_guess{guess}")) if guess % 2 else
                             ("/admin/settlement", basic(f"coa_guess{guess}")))
            response = await (attacker.post(path, json={"query": VIEWER}, headers=headers) if path == "/graphql"
                              else attacker.get(path, headers=headers))
            statuses.append(response.status_code)
            if response.status_code == 429:
                assert int(response.headers["Retry-After"]) >= 1 and code_of(response) == "RATE_LIMITED"
        # Even the right key waits, from this address: the address is refused before any lookup.
        assert (await attacker.post("/graphql", json={"query": VIEWER}, headers=bearer(admin_key))).status_code == 429
        # Without a credential the address is only held to the request limit.
        assert (await attacker.post("/graphql", json={"query": "{ network { name } }"})).status_code == 200
    if int(time.time() // 60) == int(started // 60):  # a run across a minute boundary gets a second budget
        assert statuses.count(401) == 30 and statuses.count(429) == 470
        assert lookups == 30
    assert statuses[:30] == [401] * 30 and set(statuses) == {401, 429}
    async with apps.client_of(app, fresh_address()) as shop:
        response = await shop.post("/graphql", json={"query": VIEWER}, headers=bearer(admin_key))
        assert response.status_code == 200 and response.json()["data"]["viewer"]["__typename"] == "AdminViewer"


async def test_every_route_is_rate_limited(apps: Apps, admin_key: str) -> None:
    async with apps.client(rate_limit_per_s=3) as client:
        for path, headers in (("/admin/network-map.svg", bearer(admin_key)),  # was not limited
                              ("/admin/settlement", basic(admin_key)),
                              ("/healthz", {}), ("/graphql", {"Accept": "text/html"})):
            refused = None
            for _ in range(12):  # 3 a second: 12 within two windows cannot all pass
                response = await client.get(path, headers=headers)
                if response.status_code == 429:
                    refused = response
                    break
            assert refused is not None, path
            assert int(refused.headers["Retry-After"]) >= 1 and code_of(refused) == "RATE_LIMITED"


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def connection(headers: dict[str, str], path: str = "/graphql", client: str = "203.0.113.9") -> HTTPConnection:
    return HTTPConnection({"type": "http", "path": path, "query_string": b"", "client": (client, 1),
                           "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
                           "server": ("coalition.test", 80), "scheme": "http", "method": "GET"})


async def test_the_failure_budget_turns_over_with_its_minute(db: Any, admin_key: str, app: Any) -> None:
    clock = FakeClock(6_000.0)  # the start of a minute
    limiter = InProcessRateLimiter(1000, clock=clock)
    backend = AuthBackend(app.state.authenticator, limiter, limiter.companion(3, window_s=60, prefix="t:"))
    for _ in range(3):
        with pytest.raises(AuthRefused) as refused:
            await backend.authenticate(connection(bearer("coa_wrong")))
        assert refused.value.status == 401
    with pytest.raises(AuthRefused) as refused:
        await backend.authenticate(connection(bearer(admin_key)))
    assert refused.value.status == 429 and refused.value.headers == {"Retry-After": "60"}
    assert await backend.authenticate(connection(bearer(admin_key), client="203.0.113.10")) is not None
    clock.now += 60
    found = await backend.authenticate(connection(bearer(admin_key)))
    assert found is not None and found[0].scopes == ["authenticated", "admin"]


def test_an_ipv6_client_is_counted_by_its_64() -> None:
    assert client_address(connection({}, client="2001:db8:1:2:aaaa::1")) == "2001:db8:1:2::/64"
    assert client_address(connection({}, client="2001:db8:1:2:bbbb::9")) == "2001:db8:1:2::/64"
    assert client_address(connection({}, client="::ffff:192.0.2.1")) == "192.0.2.1"
    assert client_address(connection({}, client="192.0.2.1")) == "192.0.2.1"


async def test_a_database_outage_during_the_lookup_is_a_503_and_one_log_line(
        api: Any, app: Any, admin_key: str, caplog: pytest.LogCaptureFixture) -> None:
    from sqlalchemy.exc import OperationalError

    async def down(credential: str, digest: str) -> Any:
        raise OperationalError("SELECT api_keys", {}, ConnectionRefusedError("connection refused"))

    working = app.state.authenticator._lookup
    app.state.authenticator._lookup = down
    for _ in range(5):
        for response in (await api.client.post("/graphql", json={"query": VIEWER}, headers=bearer(admin_key)),
                         await api.client.get("/admin/settlement", headers=basic(admin_key))):
            assert response.status_code == 503 and response.headers["Retry-After"] == "2"
            assert code_of(response) == "SERVICE_UNAVAILABLE"
    app.state.authenticator._lookup = working
    assert (await api.client.post("/graphql", json={"query": VIEWER}, headers=bearer(admin_key))).status_code == 200
    # The outage is the database tracker's to log (once per change: tests/test_outage.py); nothing per request.
    assert [r.getMessage() for r in caplog.records if r.name == "coalition.auth"] == []
    assert not any(r.exc_info for r in caplog.records)


async def test_a_bug_in_the_lookup_is_a_500_in_the_one_shape(api: Any, app: Any, admin_key: str) -> None:
    async def broken(credential: str, digest: str) -> Any:
        raise KeyError("bug")

    app.state.authenticator._lookup = broken
    response = await api.client.post("/graphql", json={"query": VIEWER}, headers=bearer(admin_key))
    assert response.status_code == 500 and code_of(response) == "INTERNAL_SERVER_ERROR"
    assert "bug" not in response.text
