"""The merchant console's programs: rewards, stamp cards, campaigns and what each campaign did.

====================================  ========  ==============================================
``GET/POST /console/programs``        owners    rewards and stamp cards: the list, and a new one
``GET/POST /console/campaigns``       owners    campaigns: the list, and a new one
``GET /console/campaigns/{id}``       owners    one campaign: treated vs control, lift, p-value (stored)
====================================  ========  ==============================================

The pages read forms and call :mod:`coalition.programs` (which checks and writes); each form
carries an idempotency key drawn when the page was rendered, so a double click or a resent
form creates the reward, card or campaign once. Another merchant's campaign answers 404, like
one that does not exist.
"""

from __future__ import annotations

import secrets

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from coalition.db import utcnow
from coalition.errors import DomainError, InvalidInput
from coalition.programs.campaign_snapshots import latest_result
from coalition.programs.campaigns import SEGMENTS, campaign_by_id, create_campaign, list_campaigns
from coalition.programs.errors import CampaignNotFound
from coalition.programs.rewards import create_reward, is_active, list_rewards
from coalition.programs.stamps import create_stamp_card, list_stamp_cards
from coalition.web.console import merchant_of, parse_amount
from coalition.web.forms import day, day_end, day_start, problem, required_whole, text, whole
from coalition.web.pages import OWNERS, View, form_expired, page, read_form, render

LIST_LIMIT = 200
DEFAULT_CONTROL_PERCENT = 10


async def programs(request: Request, view: View) -> Response:
    services, merchant_id = view.services, merchant_of(view)
    error: str | None = None
    done: str | None = None
    status = 200
    sent: dict[str, str] = {}
    if request.method == "POST":
        form = await read_form(request)
        if form is None:
            return form_expired(request, view.t)
        sent = {k: str(v)[:200] for k, v in form.items() if k != "csrf"}
        key = text(form, "key", 100)
        now = utcnow()
        try:
            if form.get("action") == "reward":
                valid_from, valid_until = (day(form, "valid_from", "validFrom", "INVALID_DATE"),
                                           day(form, "valid_until", "validUntil", "INVALID_DATE"))
                reward = await create_reward(
                    services.db, merchant_id=merchant_id, name=text(form, "name", 200),
                    points_cost=required_whole(form, "points_cost", "pointsCost", "INVALID_POINTS"),
                    stock=whole(form, "stock", "stock", "INVALID_STOCK"),
                    valid_from=day_start(valid_from, view.t.tzinfo) if valid_from else None,
                    valid_until=day_end(valid_until, view.t.tzinfo) if valid_until else None,
                    voucher_valid_days=whole(form, "voucher_days", "voucherValidDays", "INVALID_VALIDITY"),
                    description=text(form, "description", 500) or None,
                    idempotency_key=f"page:{key}", now=now)
                done = view.t.gettext("Reward “{name}” published.", name=reward.name)
            elif form.get("action") == "card":
                minimum = text(form, "min_purchase", 40)
                card = await create_stamp_card(
                    services.ledger, merchant_id=merchant_id, name=text(form, "name", 200),
                    stamps_required=required_whole(form, "stamps", "stampsRequired", "INVALID_STAMPS"),
                    min_purchase_minor=parse_amount(minimum, services.settings.currency_exponent, view.t.lang)
                    if minimum.strip("0.,") else 0,
                    reward_id=required_whole(form, "reward", "rewardId", "REWARD_NOT_FOUND"),
                    idempotency_key=f"page:{key}", now=now)
                done = view.t.gettext("Stamp card “{name}” created.", name=card.name)
            else:
                raise InvalidInput("unknown action", code="INVALID_ACTION")
            sent = {}
        except DomainError as refusal:
            error, status = problem(view.t, refusal), 400
    now = utcnow()
    rewards = await list_rewards(services.db, merchant_id=merchant_id, before_id=None, limit=LIST_LIMIT)
    cards = await list_stamp_cards(services.db, merchant_id=merchant_id, limit=LIST_LIMIT)
    return render(request, "console/programs.html", view, status=status, rewards=rewards,
                  active={r.id for r in rewards if is_active(r, now)}, cards=cards, error=error, done=done,
                  sent=sent, key=secrets.token_urlsafe(16))


async def campaigns(request: Request, view: View) -> Response:
    services, merchant_id = view.services, merchant_of(view)
    error: str | None = None
    status = 200
    sent: dict[str, str] = {}
    if request.method == "POST":
        form = await read_form(request)
        if form is None:
            return form_expired(request, view.t)
        sent = {k: str(v)[:200] for k, v in form.items() if k != "csrf"}
        try:
            kind = text(form, "kind", 20)
            offer = required_whole(form, "offer", "multiplierPercent" if kind == "MULTIPLIER" else "bonusPoints",
                                   "INVALID_MULTIPLIER" if kind == "MULTIPLIER" else "INVALID_BONUS_POINTS")
            control = whole(form, "control", "controlPercent", "INVALID_CONTROL_PERCENT")
            starts = day(form, "starts", "startsAt", "INVALID_PERIOD")
            ends = day(form, "ends", "endsAt", "INVALID_PERIOD")
            if ends is None:
                raise InvalidInput("endsAt is required", code="INVALID_PERIOD", field="endsAt")
            now = utcnow()
            campaign = await create_campaign(
                services.db, services.keys, services.insights, merchant_id=merchant_id, name=text(form, "name", 200),
                kind=kind, multiplier_percent=offer if kind == "MULTIPLIER" else None,
                bonus_points=offer if kind == "BONUS" else None, segment=text(form, "segment", 40) or None,
                control_percent=DEFAULT_CONTROL_PERCENT if control is None else control,
                starts_at=day_start(starts, view.t.tzinfo) if starts else now, ends_at=day_end(ends, view.t.tzinfo),
                idempotency_key=f"page:{text(form, 'key', 100)}", now=now)
            return RedirectResponse(f"/console/campaigns/{campaign.id}", status_code=303)
        except DomainError as refusal:
            error, status = problem(view.t, refusal), 400
    rows = await list_campaigns(services.db, merchant_id=merchant_id, before_id=None, limit=LIST_LIMIT)
    return render(request, "console/campaigns.html", view, status=status, rows=rows, error=error, sent=sent,
                  segments=SEGMENTS, now=utcnow(), key=secrets.token_urlsafe(16),
                  control_default=DEFAULT_CONTROL_PERCENT)


async def campaign(request: Request, view: View) -> Response:
    services, merchant_id = view.services, merchant_of(view)
    raw = request.path_params["campaign_id"]
    found = (await campaign_by_id(services.db, int(raw))
             if raw.isascii() and raw.isdigit() and len(raw) < 19 else None)
    if found is None or found.merchant_id != merchant_id:  # another merchant's: the same as none
        raise CampaignNotFound("no such campaign")
    stored = await latest_result(services.db, found, utcnow(), services.settings.campaign_min_group_size,
                                 services.settings.campaign_results_interval_s)
    return render(request, "console/campaign.html", view, campaign=found, result=stored.result, stored=stored,
                  min_group=services.settings.campaign_min_group_size, now=utcnow())


def program_routes() -> list[Route]:
    return [
        Route("/console/programs", page(OWNERS, programs), methods=["GET", "POST"]),
        Route("/console/campaigns", page(OWNERS, campaigns), methods=["GET", "POST"]),
        Route("/console/campaigns/{campaign_id}", page(OWNERS, campaign)),
    ]
