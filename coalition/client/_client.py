"""``Client`` (sync) and ``AsyncClient``: the core operations of the API over httpx.

Both send the same GraphQL documents (``_Operation``) and read answers the same way; they
differ only in how they wait. Retries: a request that got no answer (a network error or a
timeout), a 503 and a 429 are sent again, up to ``max_retries`` times, after
``backoff_s * 2**attempt`` seconds (at most ``max_backoff_s``) or the ``Retry-After`` the
service sent. Every write carries an idempotency key — yours, or a fresh UUID made once per
call — and a retry sends the very same body, so the service performs it at most once.
(``claim`` has no key: a code works once, and a retry after a lost answer says so.)
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import httpx

from coalition.client._exceptions import (
    AuthenticationError,
    GraphQLError,
    HTTPStatusError,
    RateLimited,
    ServiceUnavailable,
    TransportError,
    UserError,
)
from coalition.client._models import (
    LEDGER_FIELDS,
    MEMBER_FIELDS,
    Enrollment,
    LedgerResult,
    Member,
    ledger_result,
)

T = TypeVar("T")
DEFAULT_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class _Operation(Generic[T]):
    query: str
    variables: dict[str, Any]
    root: str
    parse: Callable[[Any], T]


class _Retry(Exception):
    def __init__(self, delay: float | None, error: Exception) -> None:
        self.delay, self.error = delay, error


def _key(key: str | None) -> str:
    return key if key is not None else str(uuid.uuid4())


def _ledger(root: str, input_type: str, values: dict[str, Any]) -> _Operation[LedgerResult]:
    query = f"mutation($input: {input_type}!) {{ {root}(input: $input) {{ {LEDGER_FIELDS} }} }}"
    return _Operation(query, {"input": {k: v for k, v in values.items() if v is not None}}, root, ledger_result)


class _Operations:
    """The documents of the core operations (shared by both clients)."""

    @staticmethod
    def enroll(email: str | None, phone: str | None, referral_code: str | None,
               idempotency_key: str | None) -> _Operation[Enrollment]:
        query = ("mutation($input: EnrollMemberInput!) { enrollMember(input: $input) { member { " + MEMBER_FIELDS +
                 " } claimCode claimUrl qrCode userErrors { field code message } } }")
        values = {"email": email, "phone": phone, "referralCode": referral_code,
                  "idempotencyKey": _key(idempotency_key)}

        def parse(payload: Any) -> Enrollment:
            member = Member.parse(payload["member"])
            assert member is not None
            return Enrollment(member, payload["claimCode"], payload["claimUrl"], payload["qrCode"])

        return _Operation(query, {"input": {k: v for k, v in values.items() if v is not None}}, "enrollMember", parse)

    @staticmethod
    def member(loyalty_id: str) -> _Operation[Member | None]:
        return _Operation(f"query($lid: String!) {{ member(loyaltyId: $lid) {{ {MEMBER_FIELDS} }} }}",
                          {"lid": loyalty_id}, "member", Member.parse)

    @staticmethod
    def member_by_contact(contact: str) -> _Operation[Member | None]:
        return _Operation(f"query($c: String!) {{ memberByContact(contact: $c) {{ {MEMBER_FIELDS} }} }}",
                          {"c": contact}, "memberByContact", Member.parse)

    @staticmethod
    def me() -> _Operation[Member | None]:
        return _Operation(f"{{ viewer {{ ... on MemberViewer {{ member {{ {MEMBER_FIELDS} }} }} }} }}", {}, "viewer",
                          lambda viewer: Member.parse((viewer or {}).get("member")))

    @staticmethod
    def claim(claim_code: str) -> _Operation[str]:
        return _Operation("mutation($code: String!) { claimMemberAccess(input: {claimCode: $code}) { memberToken "
                          "userErrors { field code message } } }", {"code": claim_code}, "claimMemberAccess",
                          lambda payload: str(payload["memberToken"]))


class _Base:
    def __init__(self, base_url: str = DEFAULT_URL, api_key: str | None = None, *, timeout_s: float = 10.0,
                 max_retries: int = 3, backoff_s: float = 0.25, max_backoff_s: float = 8.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json",
                   "User-Agent": "coalition-python-client"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, 60.0)
        return float(min(self.backoff_s * 2**attempt, self.max_backoff_s))

    @staticmethod
    def _answer(operation: _Operation[T], response: httpx.Response) -> T:
        """The operation's result, or the error the response says; ``_Retry`` for what may be retried."""
        try:
            body = response.json()
        except ValueError:
            body = {}
        errors = body.get("errors") if isinstance(body, dict) else None
        first = errors[0] if errors else {}
        code = (first.get("extensions") or {}).get("code")
        message = first.get("message") or f"HTTP {response.status_code}"
        if response.status_code != 200:
            raw = response.headers.get("retry-after", "")
            retry_after = float(raw) if raw.isdigit() else None
            status = response.status_code
            if status == 401:
                raise AuthenticationError(message, status_code=status, code=code or "UNAUTHENTICATED")
            if status in (429, 503):
                cls = RateLimited if status == 429 else ServiceUnavailable
                raise _Retry(retry_after, cls(message, status_code=status, code=code, retry_after=retry_after))
            raise HTTPStatusError(message, status_code=status, code=code)
        if errors:
            raise GraphQLError(message, code=code or "GRAPHQL_ERROR")
        payload = (body.get("data") or {}).get(operation.root)
        if isinstance(payload, dict) and payload.get("userErrors"):
            error = payload["userErrors"][0]
            raise UserError(error["message"], code=error["code"], field=error.get("field"))
        return operation.parse(payload)

    def _body(self, operation: _Operation[Any]) -> dict[str, Any]:
        return {"query": operation.query, "variables": operation.variables}


class Client(_Base):
    """The API, synchronously. ``with Client(url, api_key=...) as client: client.earn(...)``."""

    def __init__(self, base_url: str = DEFAULT_URL, api_key: str | None = None, *,
                 transport: httpx.BaseTransport | None = None, **options: Any) -> None:
        super().__init__(base_url, api_key, **options)
        self._http = httpx.Client(base_url=self.base_url, timeout=self.timeout_s, transport=transport)

    def _run(self, operation: _Operation[T]) -> T:
        body = self._body(operation)  # built once: a retry sends the same idempotency key
        for attempt in range(self.max_retries + 1):
            try:
                response = self._http.post("/graphql", json=body, headers=self._headers())
                return self._answer(operation, response)
            except httpx.TransportError as error:
                failure: Exception = TransportError(f"no answer from {self.base_url}: {type(error).__name__}")
                delay = self._delay(attempt, None)
            except _Retry as retry:
                failure, delay = retry.error, self._delay(attempt, retry.delay)
            if attempt == self.max_retries:
                raise failure
            time.sleep(delay)
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    # --- the core operations --------------------------------------------------------------

    def enroll(self, *, email: str | None = None, phone: str | None = None, referral_code: str | None = None,
               idempotency_key: str | None = None) -> Enrollment:
        """Enroll a customer (merchant key); hand them ``claim_code``."""
        return self._run(_Operations.enroll(email, phone, referral_code, idempotency_key))

    def earn(self, loyalty_id: str, purchase_amount_minor: int, *, reference: str | None = None,
             idempotency_key: str | None = None) -> LedgerResult:
        return self._run(_ledger("earnPoints", "EarnPointsInput", {
            "loyaltyId": loyalty_id, "purchaseAmountMinor": purchase_amount_minor, "reference": reference,
            "idempotencyKey": _key(idempotency_key)}))

    def redeem(self, loyalty_id: str, points: int, *, member_proof: str | None = None, reference: str | None = None,
               idempotency_key: str | None = None) -> LedgerResult:
        return self._run(_ledger("redeemPoints", "RedeemPointsInput", {
            "loyaltyId": loyalty_id, "points": points, "memberProof": member_proof, "reference": reference,
            "idempotencyKey": _key(idempotency_key)}))

    def authorize(self, loyalty_id: str, points: int, *, expires_in_seconds: int | None = None,
                  member_proof: str | None = None, idempotency_key: str | None = None) -> LedgerResult:
        return self._run(_ledger("authorizeRedemption", "AuthorizeRedemptionInput", {
            "loyaltyId": loyalty_id, "points": points, "expiresInSeconds": expires_in_seconds,
            "memberProof": member_proof, "idempotencyKey": _key(idempotency_key)}))

    def capture(self, hold_id: str, *, points: int | None = None, idempotency_key: str | None = None) -> LedgerResult:
        return self._run(_ledger("captureRedemption", "CaptureRedemptionInput", {
            "holdId": hold_id, "points": points, "idempotencyKey": _key(idempotency_key)}))

    def void(self, hold_id: str, *, idempotency_key: str | None = None) -> LedgerResult:
        return self._run(_ledger("voidRedemption", "VoidRedemptionInput", {
            "holdId": hold_id, "idempotencyKey": _key(idempotency_key)}))

    def reverse(self, transaction_id: str, *, reason: str | None = None,
                idempotency_key: str | None = None) -> LedgerResult:
        return self._run(_ledger("reverseTransaction", "ReverseTransactionInput", {
            "transactionId": transaction_id, "reason": reason, "idempotencyKey": _key(idempotency_key)}))

    def member(self, loyalty_id: str) -> Member | None:
        """A member by loyalty ID (staff key), or None."""
        return self._run(_Operations.member(loyalty_id))

    def member_by_contact(self, contact: str) -> Member | None:
        """At the till: the member with exactly this e-mail or phone (merchant key), or None."""
        return self._run(_Operations.member_by_contact(contact))

    def balance(self, loyalty_id: str | None = None) -> int:
        """Spendable points: of ``loyalty_id`` (staff key), or of the calling member (member token)."""
        member = self.me() if loyalty_id is None else self.member(loyalty_id)
        if member is None:
            raise UserError(f"no member has loyalty ID {loyalty_id}", code="MEMBER_NOT_FOUND", field="loyaltyId")
        return member.balance

    def me(self) -> Member | None:
        """The calling member (member token)."""
        return self._run(_Operations.me())

    def claim(self, claim_code: str) -> str:
        """Exchange a claim code for the member's own token (no key needed)."""
        return self._run(_Operations.claim(claim_code))


class AsyncClient(_Base):
    """The API, asynchronously: the same methods as :class:`Client`, awaited."""

    def __init__(self, base_url: str = DEFAULT_URL, api_key: str | None = None, *,
                 transport: httpx.AsyncBaseTransport | None = None, **options: Any) -> None:
        super().__init__(base_url, api_key, **options)
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout_s, transport=transport)

    async def _run(self, operation: _Operation[T]) -> T:
        body = self._body(operation)
        for attempt in range(self.max_retries + 1):
            try:
                response = await self._http.post("/graphql", json=body, headers=self._headers())
                return self._answer(operation, response)
            except httpx.TransportError as error:
                failure: Exception = TransportError(f"no answer from {self.base_url}: {type(error).__name__}")
                delay = self._delay(attempt, None)
            except _Retry as retry:
                failure, delay = retry.error, self._delay(attempt, retry.delay)
            if attempt == self.max_retries:
                raise failure
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None:
        await self.aclose()

    async def enroll(self, *, email: str | None = None, phone: str | None = None, referral_code: str | None = None,
                     idempotency_key: str | None = None) -> Enrollment:
        return await self._run(_Operations.enroll(email, phone, referral_code, idempotency_key))

    async def earn(self, loyalty_id: str, purchase_amount_minor: int, *, reference: str | None = None,
                   idempotency_key: str | None = None) -> LedgerResult:
        return await self._run(_ledger("earnPoints", "EarnPointsInput", {
            "loyaltyId": loyalty_id, "purchaseAmountMinor": purchase_amount_minor, "reference": reference,
            "idempotencyKey": _key(idempotency_key)}))

    async def redeem(self, loyalty_id: str, points: int, *, member_proof: str | None = None,
                     reference: str | None = None, idempotency_key: str | None = None) -> LedgerResult:
        return await self._run(_ledger("redeemPoints", "RedeemPointsInput", {
            "loyaltyId": loyalty_id, "points": points, "memberProof": member_proof, "reference": reference,
            "idempotencyKey": _key(idempotency_key)}))

    async def authorize(self, loyalty_id: str, points: int, *, expires_in_seconds: int | None = None,
                        member_proof: str | None = None, idempotency_key: str | None = None) -> LedgerResult:
        return await self._run(_ledger("authorizeRedemption", "AuthorizeRedemptionInput", {
            "loyaltyId": loyalty_id, "points": points, "expiresInSeconds": expires_in_seconds,
            "memberProof": member_proof, "idempotencyKey": _key(idempotency_key)}))

    async def capture(self, hold_id: str, *, points: int | None = None,
                      idempotency_key: str | None = None) -> LedgerResult:
        return await self._run(_ledger("captureRedemption", "CaptureRedemptionInput", {
            "holdId": hold_id, "points": points, "idempotencyKey": _key(idempotency_key)}))

    async def void(self, hold_id: str, *, idempotency_key: str | None = None) -> LedgerResult:
        return await self._run(_ledger("voidRedemption", "VoidRedemptionInput", {
            "holdId": hold_id, "idempotencyKey": _key(idempotency_key)}))

    async def reverse(self, transaction_id: str, *, reason: str | None = None,
                      idempotency_key: str | None = None) -> LedgerResult:
        return await self._run(_ledger("reverseTransaction", "ReverseTransactionInput", {
            "transactionId": transaction_id, "reason": reason, "idempotencyKey": _key(idempotency_key)}))

    async def member(self, loyalty_id: str) -> Member | None:
        return await self._run(_Operations.member(loyalty_id))

    async def member_by_contact(self, contact: str) -> Member | None:
        return await self._run(_Operations.member_by_contact(contact))

    async def balance(self, loyalty_id: str | None = None) -> int:
        member = await (self.me() if loyalty_id is None else self.member(loyalty_id))
        if member is None:
            raise UserError(f"no member has loyalty ID {loyalty_id}", code="MEMBER_NOT_FOUND", field="loyaltyId")
        return member.balance

    async def me(self) -> Member | None:
        return await self._run(_Operations.me())

    async def claim(self, claim_code: str) -> str:
        return await self._run(_Operations.claim(claim_code))
