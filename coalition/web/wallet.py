"""The member wallet: ``/me``, opened from the one-time claim link a shop or an e-mail gives.

==========================  ==============================================================
``GET /me/claim?code=…``    a button that spends the claim code (a GET never spends it: mail
                            scanners and link previews open links)
``POST /me/claim``          the code → a member token in the ``coalition_member`` cookie
``GET /me``                 balance, history across partners, the proof-of-presence QR, tier
                            progress, stamp cards, open vouchers (with codes), quests, the
                            partner directory
``POST /me/revoke``         sign out everywhere: every token and claim code of the member
==========================  ==============================================================

The cookie holds a member token (:mod:`coalition.members.credentials`; stored hashed), which
the one :class:`~coalition.auth.service.Authenticator` reads like the ``Authorization`` header.
"""

from __future__ import annotations

import functools

import segno
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from coalition.console.dashboard import merchant_names, partner_directory
from coalition.db import utcnow
from coalition.ledger.presence import STEP_S, presence_code
from coalition.ledger.queries import member_history
from coalition.members.credentials import ClaimCodeInvalid, claim_member_access, revoke_member_credentials
from coalition.members.models import Member
from coalition.programs.quests import member_quests
from coalition.programs.reward_models import VoucherStatus
from coalition.programs.rewards import reward_names
from coalition.programs.stamps import member_stamp_progress, stamps_on_current_card
from coalition.programs.tier_review import tier_state
from coalition.programs.vouchers import display_code, member_vouchers
from coalition.web.auth import MEMBER_COOKIE, SESSION_CREDENTIAL
from coalition.web.i18n import formatter
from coalition.web.pages import (
    MEMBERS,
    PRE_SESSION_COOKIE,
    View,
    form_expired,
    form_token_cookie,
    page,
    read_form,
    render,
    set_cookie,
)

HISTORY_PAGE = 30
VOUCHERS_SHOWN = 30


async def claim(request: Request) -> Response:
    t = formatter(request)
    if request.method == "GET":
        holder = Response()
        token = form_token_cookie(request, holder)
        response = render(request, "me/claim.html", t=t, code=request.query_params.get("code", "")[:64],
                          form_token=token, failed=False)
        for value in holder.headers.getlist("set-cookie"):
            response.headers.append("set-cookie", value)
        return response
    form = await read_form(request)
    if form is None:
        return form_expired(request, t)
    services = request.app.state.services
    try:
        access = await claim_member_access(services.db, str(form.get("code", ""))[:64])
    except ClaimCodeInvalid:
        return render(request, "me/claim.html", t=t, status=400, code="", failed=True,
                      form_token=request.cookies.get(PRE_SESSION_COOKIE, ""))
    opened = RedirectResponse("/me", status_code=303)
    set_cookie(request, opened, MEMBER_COOKIE, access.member_token, max_age=365 * 24 * 3600)
    opened.delete_cookie(PRE_SESSION_COOKIE, path="/")
    return opened


@functools.lru_cache(maxsize=512)
def qr_data_uri(text: str) -> str:
    """The QR of ``text`` as an SVG data URI. Kept for a while: building it (segno tries the eight masks)
    is most of the wallet's CPU, and a member reloading the page within one presence step asks for the same."""
    return segno.make(text, error="m").svg_data_uri(scale=4, border=4, dark="#000", light="#fff")


async def wallet(request: Request, view: View) -> Response:
    services = view.services
    assert view.caller.member_id is not None
    async with services.db.session() as session:
        member = await session.get(Member, view.caller.member_id)
    assert member is not None  # a live token's member exists
    history = await member_history(services.db, member.id, merchant_id=None, before_id=None, limit=HISTORY_PAGE)
    now = utcnow()
    policy, state = await tier_state(services.db, member.id, now)
    above = policy.above(state.tier)
    cards = [{"name": c.name, "merchant_id": c.merchant_id, "required": c.stamps_required, "done": c.completed_cards,
              "min": c.min_purchase_minor,
              "stamps": stamps_on_current_card(c.total_stamps, c.completed_cards, c.stamps_required)}
             for c in await member_stamp_progress(services.db, member_id=member.id, merchant_id=None) if c.active]
    vouchers = [v for v in await member_vouchers(services.ledger, member_id=member.id, merchant_id=None,
                                                 before_id=None, limit=VOUCHERS_SHOWN)
                if v.status == VoucherStatus.ISSUED and v.expires_at > now]
    quests = await member_quests(services.db, member_id=member.id, merchant_id=None, now=now)
    shops = {e.merchant_id for e in history if e.merchant_id is not None}
    names = await merchant_names(services.db, sorted(shops | {c["merchant_id"] for c in cards}
                                                     | {v.merchant_id for v in vouchers}))
    code = presence_code(services.keys, member.loyalty_id, now)
    # The QR carries the signed card (the till finds the member with it) and the current code
    # (proof the member's phone is at the till): coalition/web/till.py reads both.
    qr = qr_data_uri(f"{services.keys.qr_payload(member.loyalty_id)}~{code}")
    return render(request, "me/wallet.html", view, member=member, history=history, names=names, code=code, qr=qr,
                  refresh_s=STEP_S - int(now.timestamp()) % STEP_S + 1, tier=state, next_tier=above,
                  to_next=max(0, above.threshold_points - state.qualifying_points) if above else 0,
                  cards=cards, vouchers=vouchers, quests=quests,
                  rewards=await reward_names(services.db, [v.reward_id for v in vouchers]),
                  voucher_code=display_code, partners=await partner_directory(services.db))


async def revoke(request: Request, view: View) -> Response:
    form = await read_form(request)
    if form is None:
        return form_expired(request, view.t)
    assert view.caller.member_id is not None
    await revoke_member_credentials(view.services.db, view.caller.member_id)
    request.app.state.authenticator.forget()
    request.scope[SESSION_CREDENTIAL] = None
    response = render(request, "me/signed_out.html", t=view.t)
    response.delete_cookie(MEMBER_COOKIE, path="/")
    return response


def wallet_routes() -> list[Route]:
    return [
        Route("/me", page(MEMBERS, wallet)),
        Route("/me/claim", claim, methods=["GET", "POST"]),
        Route("/me/revoke", page(MEMBERS, revoke, methods=("POST",)), methods=["POST"]),
    ]
