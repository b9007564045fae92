"""coalition.client: the core operations against the app, retries with the same key, coded errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from coalition.client import (
    AsyncClient,
    AuthenticationError,
    Client,
    GraphQLError,
    RateLimited,
    ServiceUnavailable,
    TransportError,
    UserError,
)
from coalition.client import _client as client_module
from coalition.ledger.invariants import assert_ledger_consistent

OK_EARN = {"data": {"earnPoints": {"transaction": {"id": "T1", "kind": "EARN", "points": 10, "amountMinor": 1000,
                                                   "reference": None, "createdAt": "2026-01-01T00:00:00+00:00"},
                                   "member": None, "hold": None, "userErrors": []}}}


def scripted(*answers: Any) -> tuple[httpx.MockTransport, list[dict[str, Any]]]:
    """A transport answering in turn: an httpx.Response, or an exception to raise."""
    seen: list[dict[str, Any]] = []
    queue = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[no-any-return]

    return httpx.MockTransport(handle), seen


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(client_module.time, "sleep", slept.append)
    return slept


def test_a_503_is_retried_with_backoff_and_the_same_idempotency_key(sleeps: list[float]) -> None:
    transport, seen = scripted(httpx.Response(503, json={"errors": [{"message": "down",
                                                                     "extensions": {"code": "SERVICE_UNAVAILABLE"}}]}),
                               httpx.ConnectError("refused"), httpx.Response(200, json=OK_EARN))
    with Client("http://pos", api_key="k", transport=transport, backoff_s=0.5) as client:
        result = client.earn("AAAA-BBBB-CCCC", 1000)
    assert result.transaction is not None and result.transaction.points == 10
    keys = {body["variables"]["input"]["idempotencyKey"] for body in seen}
    assert len(seen) == 3 and len(keys) == 1  # made once, sent on every try
    assert sleeps == [0.5, 1.0]


def test_retry_after_is_honoured_on_429_and_503(sleeps: list[float]) -> None:
    transport, _ = scripted(httpx.Response(429, headers={"Retry-After": "3"}, json={}),
                            httpx.Response(503, headers={"Retry-After": "2"}, json={}),
                            httpx.Response(200, json=OK_EARN))
    with Client("http://pos", api_key="k", transport=transport) as client:
        client.earn("AAAA-BBBB-CCCC", 1000, idempotency_key="mine")
    assert sleeps == [3.0, 2.0]


def test_retries_end_with_the_last_error_carrying_its_code(sleeps: list[float]) -> None:
    down = httpx.Response(503, json={"errors": [{"message": "down", "extensions": {"code": "SERVICE_UNAVAILABLE"}}]})
    transport, seen = scripted(down, down, down)
    with Client("http://pos", transport=transport, max_retries=2) as client, pytest.raises(ServiceUnavailable) as error:
        client.earn("AAAA-BBBB-CCCC", 1000)
    assert error.value.code == "SERVICE_UNAVAILABLE" and error.value.status_code == 503 and len(seen) == 3
    transport, _ = scripted(*[httpx.ReadTimeout("slow")] * 2)
    with Client("http://pos", transport=transport, max_retries=1) as client, pytest.raises(TransportError) as lost:
        client.redeem("AAAA-BBBB-CCCC", 5)
    assert lost.value.code == "TRANSPORT_ERROR"
    transport, _ = scripted(httpx.Response(429, headers={"Retry-After": "1"}, json={}))
    with Client("http://pos", transport=transport, max_retries=0) as client, pytest.raises(RateLimited) as limited:
        client.redeem("AAAA-BBBB-CCCC", 5)
    assert limited.value.retry_after == 1.0


@pytest.mark.parametrize(("response", "error_type", "code"), [
    (httpx.Response(401, json={"errors": [{"message": "bad key", "extensions": {"code": "UNAUTHENTICATED"}}]}),
     AuthenticationError, "UNAUTHENTICATED"),
    (httpx.Response(200, json={"data": {"earnPoints": None}, "errors": [
        {"message": "no", "extensions": {"code": "FORBIDDEN"}}]}), GraphQLError, "FORBIDDEN"),
    (httpx.Response(200, json={"data": {"earnPoints": {"userErrors": [
        {"field": "loyaltyId", "code": "INVALID_LOYALTY_ID", "message": "typo"}]}}}), UserError, "INVALID_LOYALTY_ID"),
])
def test_errors_are_exceptions_carrying_the_code(response: httpx.Response, error_type: type, code: str,
                                                 sleeps: list[float]) -> None:
    transport, seen = scripted(response)
    with Client("http://pos", transport=transport) as client, pytest.raises(error_type) as error:
        client.earn("AAAA-BBBB-CCCC", 1000)
    assert error.value.code == code and len(seen) == 1 and sleeps == []  # never retried
    if isinstance(error.value, UserError):
        assert error.value.field == "loyaltyId"


async def test_the_async_client_retries_the_same_way(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    async def sleep(delay: float) -> None:
        slept.append(delay)

    monkeypatch.setattr(client_module.asyncio, "sleep", sleep)
    seen: list[str] = []
    answers = [httpx.ConnectError("refused"), httpx.Response(200, json=OK_EARN)]

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content)["variables"]["input"]["idempotencyKey"])
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async with AsyncClient("http://pos", transport=httpx.MockTransport(handle), backoff_s=0.1) as client:
        await client.earn("AAAA-BBBB-CCCC", 1000)
    assert len(seen) == 2 and seen[0] == seen[1] and slept == [0.1]


async def test_the_core_operations_against_the_app(app: Any, db: Any, make_merchant: Callable[..., Any]) -> None:
    bakery, books = await make_merchant("Bakery", earn_rate=2), await make_merchant("Books")

    def client(key: str | None) -> AsyncClient:
        return AsyncClient("http://test", key, transport=httpx.ASGITransport(app=app))

    async with client(bakery.api_key) as shop, client(books.api_key) as other:
        enrolled = await shop.enroll(email="cli@example.com", idempotency_key="enroll-1")
        assert enrolled.claim_code and enrolled.member.balance == 0
        lid = enrolled.member.loyalty_id
        earned = await shop.earn(lid, 5000, reference="R-1", idempotency_key="sale-1")
        assert earned.member is not None and earned.member.balance == 100
        assert (await shop.earn(lid, 5000, reference="R-1", idempotency_key="sale-1")).transaction == earned.transaction
        with pytest.raises(UserError) as conflict:
            await shop.earn(lid, 6000, idempotency_key="sale-1")
        assert conflict.value.code == "IDEMPOTENCY_KEY_CONFLICT"
        assert (await other.redeem(lid, 10)).member.balance == 90  # type: ignore[union-attr]
        hold = (await other.authorize(lid, 30, expires_in_seconds=300)).hold
        assert hold is not None and hold.status == "AUTHORIZED"
        captured = await other.capture(hold.id, points=20)
        assert captured.hold is not None and captured.hold.captured_points == 20
        second = (await other.authorize(lid, 5)).hold
        assert second is not None and (await other.void(second.id)).hold.status == "VOIDED"  # type: ignore[union-attr]
        reversed_ = await shop.reverse(earned.transaction.id, reason="refund")  # type: ignore[union-attr]
        assert reversed_.transaction is not None and reversed_.transaction.kind == "REVERSAL"
        assert await shop.balance(lid) == 0 and (await shop.member(lid)) is not None
        assert (await shop.member_by_contact("cli@example.com")).loyalty_id == lid  # type: ignore[union-attr]
        assert await shop.member_by_contact("nobody@example.com") is None
        with pytest.raises(UserError) as missing:
            await shop.balance("0000-0000-0000")
        assert missing.value.code == "MEMBER_NOT_FOUND"
    async with client(None) as anonymous:
        token = await anonymous.claim(enrolled.claim_code)  # type: ignore[arg-type]
    async with client(token) as member:
        me = await member.me()
        assert me is not None and me.loyalty_id == lid and await member.balance() == 0
        with pytest.raises(GraphQLError) as forbidden:
            await member.earn(lid, 100)
        assert forbidden.value.code == "FORBIDDEN"
    async with client("coa_not-a-key") as stranger:
        with pytest.raises(AuthenticationError):
            await stranger.member(lid)
    async with db.read() as conn:
        await assert_ledger_consistent(conn)
