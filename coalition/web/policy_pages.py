"""The admin's policy page (``/admin/policy``): the network's settlement policy and the status tiers.

===========================  ========  ==================================================
``GET /admin/policy``        admins    the policy in force, its versions, the tier ladder
``POST /admin/policy``       admins    ``action=network``: append a policy version
                                       (:func:`coalition.settlement.policy.set_policy`, what
                                       ``coalition policy set`` and ``setNetworkPolicy`` do);
                                       ``action=tiers``: set the tier policy
                                       (:func:`coalition.programs.tier_review.set_tier_policy`)
===========================  ========  ==================================================

The services check every value before they write anything; a refusal is shown on the page with
the values as typed, and nothing is stored.
"""

from __future__ import annotations

import secrets
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from coalition.db import utcnow
from coalition.errors import DomainError, InvalidInput
from coalition.programs.tier_review import current_tier_policy, set_tier_policy
from coalition.programs.tiers import FUNDERS, MAX_TIERS, WINDOWS
from coalition.settlement.models import FundingModel, SettlementPeriod
from coalition.settlement.policy import list_policy_versions, policy_at, set_policy
from coalition.web.forms import day, day_start, problem, text, whole
from coalition.web.pages import ADMINS, View, form_expired, page, read_form, render

VERSIONS_SHOWN = 20


def tier_rows(form: FormData) -> list[dict[str, Any]]:
    """The tier rows typed in (a row without a name is left out), lowest first as listed."""
    rows: list[dict[str, Any]] = []
    for i in range(MAX_TIERS):
        name = text(form, f"tier{i}_name", 40).upper()
        if not name:
            continue
        threshold = whole(form, f"tier{i}_threshold", "thresholdPoints", "INVALID_THRESHOLD")
        multiplier = whole(form, f"tier{i}_multiplier", "multiplierPercent", "INVALID_MULTIPLIER")
        rows.append({"name": name, "threshold_points": 0 if threshold is None and not rows else threshold,
                     "multiplier_percent": 100 if multiplier is None else multiplier})
    if any(row["threshold_points"] is None for row in rows):
        raise InvalidInput("every tier above the first needs its threshold", code="INVALID_THRESHOLD",
                           field="tiers")
    return rows


async def policy(request: Request, view: View) -> Response:
    services, t = view.services, view.t
    error: str | None = None
    done: str | None = None
    status = 200
    sent: dict[str, str] = {}
    if request.method == "POST":
        form = await read_form(request)
        if form is None:
            return form_expired(request, t)
        sent = {k: str(v)[:200] for k, v in form.items() if k != "csrf"}
        try:
            if form.get("action") == "network":
                starts = day(form, "effective_from", "effectiveFrom", "INVALID_EFFECTIVE_FROM")
                await set_policy(
                    services.db, services.settings,
                    point_value_minor=whole(form, "point_value_minor", "pointValueMinor", "INVALID_POINT_VALUE"),
                    funding_model=text(form, "funding_model", 20) or None,
                    reimbursement_rate=text(form, "reimbursement_rate", 40) or None,
                    breakage_share=text(form, "breakage_share", 40) or None,
                    period=text(form, "period", 20) or None, timezone=text(form, "timezone", 64) or None,
                    redeem_without_proof_points=whole(form, "redeem_without_proof_points",
                                                      "redeemWithoutProofPoints",
                                                      "INVALID_REDEEM_WITHOUT_PROOF_POINTS"),
                    effective_from=day_start(starts, t.tzinfo) if starts else None,
                    # drawn when the page was rendered: a double click or a resent form appends one version
                    idempotency_key=f"page:{key}" if (key := text(form, "key", 100)) else None)
                done = t.gettext("The new policy version is stored.")
            elif form.get("action") == "tiers":
                await set_tier_policy(
                    services.db, tiers=tier_rows(form), window=text(form, "window", 20),
                    window_months=whole(form, "window_months", "windowMonths", "INVALID_WINDOW"),
                    grace_days=whole(form, "grace_days", "graceDays", "INVALID_GRACE_DAYS"),
                    bonus_funder=text(form, "bonus_funder", 20),
                    idempotency_key=f"page:{text(form, 'key', 100)}")
                done = t.gettext("The tiers are stored and every member was reviewed under them.")
            else:
                raise InvalidInput("unknown action", code="INVALID_ACTION")
            sent = {}
        except DomainError as refusal:
            overrides = {"INVALID_PERIOD": t.gettext("Choose a settlement period: daily, weekly or monthly."),
                         "INVALID_MULTIPLIER": t.gettext("A tier's multiplier is a whole percent from 100 to "
                                                         "1,000 (150 = one and a half times the points).")}
            error, status = problem(t, refusal, overrides), 400
    versions = await list_policy_versions(services.db, services.settings)
    now = utcnow()
    tiers = await current_tier_policy(services.db)
    return render(request, "admin/policy.html", view, status=status, error=error, done=done, sent=sent,
                  current=policy_at(versions, now), versions=list(reversed(versions))[:VERSIONS_SHOWN], now=now,
                  tiers=tiers, funding_models=[m.value for m in FundingModel],
                  periods=[p.value for p in SettlementPeriod], windows=WINDOWS, funders=FUNDERS,
                  tier_slots=MAX_TIERS, key=secrets.token_urlsafe(16))


def policy_routes() -> list[Route]:
    return [Route("/admin/policy", page(ADMINS, policy), methods=["GET", "POST"])]
