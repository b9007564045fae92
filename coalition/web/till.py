"""The till (``/console/till``): find a member, earn, redeem, claim a reward, use a voucher.

A member is found by what the cashier types (a loyalty ID, or an exact e-mail or phone number)
or by what the device's camera reads from the member's QR code (``static/till-scan.js``; the
typed form works without script). A QR code holds the network-signed card payload
(``COA1.…``, :meth:`coalition.crypto.NetworkKeys.qr_payload`): the wallet's adds the member's
current proof-of-presence code after a ``~``, which the till puts in the redeem and claim forms.
A payload whose signature does not hold finds nobody.

An earn at the till stamps the shop's stamp cards and counts quest visits
(:func:`coalition.programs.purchases.earn`), as the API's ``earnPoints`` does.

Voucher codes are never shown at the till: the member shows theirs, so a cashier cannot mark a
voucher used without the member. The member's open vouchers are listed by reward and expiry.
"""

from __future__ import annotations

import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from coalition.console.dashboard import find_at_till
from coalition.crypto import verify_qr_payload
from coalition.db import utcnow
from coalition.errors import DomainError, InvalidInput
from coalition.ledger.errors import MemberNotFound
from coalition.members.models import Member
from coalition.members.service import find_member
from coalition.programs import purchases
from coalition.programs.reward_models import VoucherStatus
from coalition.programs.rewards import is_active, list_rewards
from coalition.programs.vouchers import claim_reward, display_code, member_vouchers, use_voucher
from coalition.web.console import merchant_of, parse_amount, parse_points
from coalition.web.forms import problem, required_whole, text
from coalition.web.pages import TILL, View, form_expired, page, read_form, render

QR_PREFIX = "COA1."
REWARDS_AT_TILL = 200
VOUCHERS_AT_TILL = 20


def scanned(query: str, public_key_b64: str) -> tuple[str, str] | None:
    """``(loyalty ID, proof code or "")`` from a scanned QR payload; None when it is not a valid one."""
    payload, _, proof = query.strip().partition("~")
    if not payload.startswith(QR_PREFIX) or len(query) > 1000:
        return None
    loyalty_id = verify_qr_payload(payload, public_key_b64)
    if loyalty_id is None:
        return None
    return loyalty_id, proof if proof.isascii() and proof.isdigit() and len(proof) <= 12 else ""


async def _act(request: Request, view: View, form: Any) -> tuple[dict[str, Any], str]:
    """Do what the form asks; returns what was done and the loyalty ID it was done for."""
    services, merchant_id = view.services, merchant_of(view)
    loyalty_id = text(form, "loyalty_id", 100)
    key = text(form, "key", 100)
    action = form.get("action")
    if action == "earn":
        amount = parse_amount(str(form.get("amount", "")), services.settings.currency_exponent, view.t.lang)
        result = await purchases.earn(services.ledger, merchant_id=merchant_id, loyalty_id=loyalty_id,
                                      purchase_amount_minor=amount, idempotency_key=f"till:{key}")
        return {"kind": "earn", "points": result.entry.points}, loyalty_id
    if action == "redeem":
        points = parse_points(str(form.get("points", "")))
        result = await services.ledger.redeem(merchant_id=merchant_id, loyalty_id=loyalty_id, points=points,
                                              idempotency_key=f"till:{key}",
                                              member_proof=text(form, "proof", 64) or None)
        return {"kind": "redeem", "points": -result.entry.points}, loyalty_id
    if action == "claim":
        claimed = await claim_reward(services.ledger, reward_id=required_whole(form, "reward", "rewardId",
                                                                               "REWARD_NOT_FOUND"),
                                     loyalty_id=loyalty_id, idempotency_key=f"till:{key}", now=utcnow(),
                                     merchant_id=merchant_id, member_proof=text(form, "proof", 64) or None)
        return {"kind": "claim", "code": display_code(claimed.voucher.code), "points": claimed.voucher.points,
                "reward_id": claimed.voucher.reward_id}, claimed.member.loyalty_id
    if action == "use_voucher":
        used = await use_voucher(services.ledger, merchant_id=merchant_id, code=text(form, "code", 40),
                                 idempotency_key=f"till:{key}", now=utcnow())
        return {"kind": "used", "reward_id": used.voucher.reward_id}, used.member.loyalty_id
    raise InvalidInput("choose what to do", code="INVALID_ACTION")


async def till(request: Request, view: View) -> Response:
    services, merchant_id, t = view.services, merchant_of(view), view.t
    done: dict[str, Any] | None = None
    error: str | None = None
    query = request.query_params.get("q", "")[:1000]
    proof = ""
    member: Member | None = None
    if request.method == "POST":
        form = await read_form(request)
        if form is None:
            return form_expired(request, t)
        query = text(form, "loyalty_id", 100)
        try:
            done, query = await _act(request, view, form)
        except DomainError as refused:
            error = problem(t, refused)
        if query:
            try:
                member = await find_member(services.db, query)
            except (MemberNotFound, InvalidInput):
                member = None
    elif query:
        found = scanned(query, services.keys.public_key_b64)
        if query.strip().startswith(QR_PREFIX) and found is None:
            error = t.gettext("That QR code is not a member card of this network.")
        else:
            if found is not None:
                query, proof = found
            try:
                member = await find_at_till(services.db, services.keys, query)
            except DomainError:
                error = t.gettext("No member matches. Check the loyalty ID, e-mail or phone number.")
    rewards = await list_rewards(services.db, merchant_id=merchant_id, before_id=None, limit=REWARDS_AT_TILL)
    names = {r.id: r.name for r in rewards}
    now = utcnow()
    vouchers = []
    if member is not None:
        vouchers = [v for v in await member_vouchers(services.ledger, member_id=member.id, merchant_id=merchant_id,
                                                     before_id=None, limit=VOUCHERS_AT_TILL)
                    if v.status == VoucherStatus.ISSUED and v.expires_at > now]
    status = 400 if error and request.method == "POST" else 200
    return render(request, "console/till.html", view, status=status, q=query, member=member, done=done, error=error,
                  key=secrets.token_urlsafe(16), proof=proof, names=names,
                  rewards=[r for r in rewards if is_active(r, now)], vouchers=vouchers)


def till_routes() -> list[Route]:
    return [Route("/console/till", page(TILL, till), methods=["GET", "POST"])]
