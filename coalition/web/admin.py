"""The admin console: ``/admin`` (network health), merchants, fraud review, the network map.

================================  =====================================================
``GET /admin``                    network health: merchants, members, points, last batch
``GET/POST /admin/merchants``     onboard a merchant (and its owner); suspend, reactivate
``GET/POST /admin/fraud``         the review queue: confirm or dismiss an alert
``GET /admin/network``            the map: names, communities in colour, hover and zoom
================================  =====================================================

Settlement batches, reports and the what-if are the existing ``/admin/settlement`` pages
(:mod:`coalition.web.reports`); the static labelled map is ``/admin/network-map.svg``.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from coalition.console.dashboard import NetworkHealth, merchant_names, network_health
from coalition.console.models import StaffRole
from coalition.console.service import create_user, hash_password
from coalition.errors import DomainError, InvalidInput
from coalition.network.models import ReviewDecision
from coalition.network.reviews import alert_decision, alert_key, load_reviews, review_alert
from coalition.partners.models import MerchantStatus
from coalition.partners.service import list_merchants, onboard_merchant, set_merchant_status
from coalition.web.pages import ADMINS, Handler, View, form_expired, page, read_form, render

# Community colours: distinguishable, and dark enough for white labels' contrast where used.
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
           "#ff7f0e"]
MAP_SIZE = 900
HEALTH_CACHE_S = 30


def home_page() -> Handler:
    # The health figures sum every member's balance: kept HEALTH_CACHE_S, they cost one scan that
    # often however many admins reload the page (as the merchant dashboard's figures do).
    cached: list[tuple[float, NetworkHealth]] = []

    async def home(request: Request, view: View) -> Response:
        if cached and cached[0][0] > time.monotonic():
            health = cached[0][1]
        else:
            health = await network_health(view.services.db)
            cached[:] = [(time.monotonic() + HEALTH_CACHE_S, health)]
        stored = await view.services.insights.view(None)
        return render(request, "admin/home.html", view, health=health, stored=stored,
                      alerts=len(stored.payload.get("fraud_alerts", [])) if stored is not None else 0)

    return home


def _merchant_number(raw: object) -> int:
    text = str(raw or "")
    if not (text.isascii() and text.isdigit() and len(text) < 19):
        raise InvalidInput("no such merchant", code="INVALID_MERCHANT")
    return int(text)


async def merchants(request: Request, view: View) -> Response:
    services = view.services
    created: dict[str, Any] | None = None
    error: str | None = None
    status = 200
    if request.method == "POST":
        form = await read_form(request)
        if form is None:
            return form_expired(request, view.t)
        try:
            action = form.get("action")
            if action == "onboard":
                email, password = str(form.get("email", "")).strip(), str(form.get("password", ""))
                if email:
                    hash_password(password)  # a password too short refuses before the merchant exists
                # The form's key (drawn when the page was rendered): a resent form replays the merchant
                # the first one created, whose API key was shown once, and adds no second owner.
                form_key = str(form.get("key", ""))[:100]
                onboarding = await onboard_merchant(services.db, name=str(form.get("name", "")),
                                                    category=str(form.get("category", "")) or None,
                                                    idempotency_key=f"page:{form_key}" if form_key else None)
                if email and not onboarding.replayed:
                    await create_user(services.db, email=email, password=password, role=StaffRole.OWNER,
                                      merchant_id=onboarding.merchant.id)
                created = {"name": onboarding.merchant.name, "key": onboarding.api_key}
            elif action in ("suspend", "reactivate"):
                wanted = MerchantStatus.SUSPENDED if action == "suspend" else MerchantStatus.ACTIVE
                await set_merchant_status(services.db, _merchant_number(form.get("merchant")), wanted)
            else:
                raise InvalidInput("unknown action", code="INVALID_ACTION")
        except DomainError as refused:
            error, status = refused.message, 400
    rows = await list_merchants(services.db, after_id=None, limit=1000)
    return render(request, "admin/merchants.html", view, status=status, rows=rows, created=created, error=error,
                  key=secrets.token_urlsafe(16))


async def fraud(request: Request, view: View) -> Response:
    services = view.services
    stored = await services.insights.view(None)
    alerts = stored.payload.get("fraud_alerts", [])[:200] if stored is not None else []
    if request.method == "POST":
        form = await read_form(request)
        if form is None:
            return form_expired(request, view.t)
        decision = {"confirm": ReviewDecision.CONFIRMED, "dismiss": ReviewDecision.DISMISSED}.get(
            str(form.get("decision", "")))
        if decision is None:
            raise InvalidInput("confirm or dismiss", code="INVALID_DECISION")
        key = str(form.get("alert", ""))
        alert = next((a for a in alerts if alert_key(a["kind"], a.get("member_ids", [])) == key), None)
        if alert is None:
            raise InvalidInput("no current alert has that key (the analysis may have run since)",
                               code="ALERT_NOT_FOUND")
        # The analysis's own reviews (network/reviews.py): the next run leaves dismissed members out
        # and treats confirmed ones as known fraud.
        await review_alert(services.db, member_ids=alert.get("member_ids", []),
                           merchant_ids=alert.get("merchant_ids", []), decision=decision,
                           reviewer=f"console-user:{view.caller.user_id}")
    reviews = await load_reviews(services.db)
    rows = [{**alert, "key": alert_key(alert["kind"], alert.get("member_ids", [])),
             "decision": alert_decision(reviews, alert.get("member_ids", []), alert.get("merchant_ids", []))}
            for alert in alerts]
    names = await merchant_names(services.db, sorted({m for a in alerts for m in a.get("merchant_ids", [])}))
    return render(request, "admin/fraud.html", view, rows=rows, names=names, stored=stored)


async def network(request: Request, view: View) -> Response:
    stored = await view.services.insights.view(None)
    layout = stored.payload.get("map") if stored is not None else None
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []
    communities: list[tuple[int, str, int]] = []
    if layout:
        names = await merchant_names(view.services.db, [int(n[0]) for n in layout["nodes"]])
        top_volume = max([1, *(n[4] for n in layout["nodes"])])
        place: dict[int, tuple[float, float]] = {}
        counts: dict[int, int] = {}
        for merchant_id, x, y, community, volume in layout["nodes"]:
            px, py = 40 + (x + 1) / 2 * (MAP_SIZE - 80), 40 + (1 - (y + 1) / 2) * (MAP_SIZE - 80)
            place[int(merchant_id)] = (px, py)
            counts[int(community)] = counts.get(int(community), 0) + 1
            nodes.append({"id": int(merchant_id), "x": px, "y": py, "r": 4 + 14 * (volume / top_volume) ** 0.5,
                          "color": PALETTE[int(community) % len(PALETTE)] if community >= 0 else "#777",
                          "name": names.get(int(merchant_id), f"#{merchant_id}"), "volume": int(volume),
                          "community": int(community)})
        top_weight = max([1.0, *(e[2] for e in layout["edges"])])
        for a, b, weight in layout["edges"]:
            if int(a) in place and int(b) in place:
                (x1, y1), (x2, y2) = place[int(a)], place[int(b)]
                # Written out here, not by template filters: a map has up to thousands of edges.
                edges.append({"x1": f"{x1:.1f}", "y1": f"{y1:.1f}", "x2": f"{x2:.1f}", "y2": f"{y2:.1f}",
                              "w": f"{0.5 + 4 * weight / top_weight:.2f}",
                              "shared": view.t.ngettext("{n} shared customer", "{n} shared customers", int(weight)),
                              "a": names.get(int(a), ""), "b": names.get(int(b), "")})
        communities = [(c, PALETTE[c % len(PALETTE)] if c >= 0 else "#777", n) for c, n in sorted(counts.items())]
    # Labels for the biggest merchants only: at 500 merchants every name at once is unreadable;
    # the rest show their name on hover (the <title>) and when zoomed.
    labelled = {n["id"] for n in sorted(nodes, key=lambda n: -n["volume"])[:40]}
    return render(request, "admin/network.html", view, stored=stored, nodes=nodes, edges=edges,
                  communities=communities, labelled=labelled, size=MAP_SIZE)


def admin_routes() -> list[Route]:
    return [
        Route("/admin", page(ADMINS, home_page())),
        Route("/admin/merchants", page(ADMINS, merchants), methods=["GET", "POST"]),
        Route("/admin/fraud", page(ADMINS, fraud), methods=["GET", "POST"]),
        Route("/admin/network", page(ADMINS, network)),
    ]
