"""Sign-in, the language picker, and the merchant console (``/console``).

==============================  ========  ===============================================
``GET/POST /login``             anyone    e-mail and password → a session cookie
``POST /logout``                signed in ends the session
``GET /language``               anyone    sets the ``lang`` cookie and goes back
``GET /console``                owners    the dashboard
``GET/POST /console/till``      till      find a member; earn; redeem (``coalition.web.till``)
``GET /console/customers``      owners    own customers; ``/console/customers/{loyalty}`` history
``GET /console/insights``       owners    loyalty types, win-back (``.csv``), partners, alerts
``GET /console/statements``     owners    what the merchant owes or is owed, by when
``GET/POST /console/staff``     owners    cashiers and API keys
==============================  ========  ===============================================
"""

from __future__ import annotations

import csv
import io
import time
from decimal import Decimal, InvalidOperation

from babel.numbers import NumberFormatError, parse_decimal
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from coalition.auth.models import Role
from coalition.auth.service import create_api_key, list_merchant_keys, revoke_merchant_key
from coalition.console.dashboard import (
    Dashboard,
    is_customer,
    loyalty_ids,
    merchant_customers,
    merchant_dashboard,
    merchant_names,
    merchant_statements,
    own_members,
)
from coalition.console.errors import SignInRefused
from coalition.console.models import StaffRole
from coalition.console.service import create_user, disable_user, list_users, sign_in, sign_out
from coalition.errors import DomainError, InvalidInput
from coalition.ledger.errors import MemberNotFound
from coalition.ledger.queries import member_history
from coalition.members.service import find_member
from coalition.network.alerts import alerts_naming
from coalition.network.loyalty import LoyaltyType
from coalition.web.auth import SESSION_CREDENTIAL, STAFF_COOKIE, client_address
from coalition.web.charts import weekly_bars
from coalition.web.i18n import LANGUAGE_COOKIE, LANGUAGES, formatter
from coalition.web.pages import (
    OWNERS,
    Handler,
    View,
    form_expired,
    form_token_cookie,
    page,
    read_form,
    render,
    set_cookie,
)

CUSTOMERS_PAGE = 50
DASHBOARD_CACHE_S = 60
DASHBOARD_CACHE_SIZE = 1000
HISTORY_PAGE = 50
SEGMENT_NAMES = {t.name for t in LoyaltyType}


def safe_next(raw: str | None, fallback: str) -> str:
    """A local path to go on to after sign-in; anything else (``//evil``, ``https://…``) is the fallback."""
    if raw and raw.startswith("/") and not raw.startswith(("//", "/\\")) and len(raw) < 200 and raw.isprintable():
        return raw
    return fallback


def home_of(role: StaffRole) -> str:
    return {StaffRole.ADMIN: "/admin", StaffRole.CASHIER: "/console/till"}.get(role, "/console")


def parse_amount(raw: str, exponent: int, lang: str) -> int:
    """``"12,50"`` (da) or ``"12.50"`` → 1250 minor units; more decimals than the currency has are refused."""
    text = raw.strip()
    try:
        value = parse_decimal(text, locale=lang, strict=False) if text else None
    except NumberFormatError:
        try:
            value = Decimal(text.replace(",", "."))
        except InvalidOperation:
            value = None
    if value is None or not value.is_finite():
        raise InvalidInput("the amount is not a number", code="INVALID_AMOUNT", field="amount")
    minor = value.scaleb(exponent)
    if minor != minor.to_integral_value() or minor <= 0:
        raise InvalidInput("the amount must be positive, to the cent", code="INVALID_AMOUNT", field="amount")
    return int(minor)


def parse_points(raw: str) -> int:
    text = raw.strip()
    if not (text.isascii() and text.isdigit() and 0 < len(text) <= 12) or int(text) <= 0:
        raise InvalidInput("points are a whole number above zero", code="INVALID_POINTS", field="points")
    return int(text)


# ---- sign-in -------------------------------------------------------------------------------

async def login(request: Request) -> Response:
    t = formatter(request)
    services = request.app.state.services
    if request.method == "GET":
        response = Response()
        token = form_token_cookie(request, response)
        page_response = render(request, "login.html", t=t, form_token=token, refused=None, email="",
                               next=safe_next(request.query_params.get("next"), ""))
        for value in response.headers.getlist("set-cookie"):
            page_response.headers.append("set-cookie", value)
        return page_response
    form = await read_form(request)
    if form is None:
        return form_expired(request, t)
    failures = request.app.state.login_failures
    address_key = f"ip:{client_address(request)}"  # the budget bad API keys count in too
    email, password = str(form.get("email", ""))[:254], str(form.get("password", ""))
    blocked = await failures.retry_after(address_key)
    try:
        if blocked is not None:
            raise SignInRefused()
        token, user = await sign_in(services.db, services.settings, email=email, password=password,
                                    replaces=request.cookies.get(STAFF_COOKIE))
    except SignInRefused:
        if blocked is None:
            await failures.hit(address_key)
        response = render(request, "login.html", t=t, status=401, form_token=request.cookies.get("coalition_form", ""),
                          refused=t.gettext("Wrong e-mail or password, or too many attempts. Try again later."),
                          email=email, next=safe_next(str(form.get("next", "")), ""))
        response.headers["WWW-Authenticate"] = "Bearer"
        return response
    # A new session id at every sign-in: one planted in the browser beforehand is worth nothing.
    target = safe_next(str(form.get("next", "")), home_of(user.role))
    response = RedirectResponse(target, status_code=303)
    set_cookie(request, response, STAFF_COOKIE, token, max_age=services.settings.session_absolute_s)
    response.delete_cookie("coalition_form", path="/")
    return response


async def logout(request: Request) -> Response:
    t = formatter(request)
    credential = request.scope.get(SESSION_CREDENTIAL)
    form = await read_form(request) if credential else None
    if form is None or not credential:
        return form_expired(request, t)
    await sign_out(request.app.state.services.db, credential)
    request.app.state.authenticator.forget()
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(STAFF_COOKIE, path="/")
    return response


async def language(request: Request) -> Response:
    lang = request.query_params.get("lang", "")
    response = RedirectResponse(safe_next(request.query_params.get("next"), "/login"), status_code=303)
    if lang in LANGUAGES:
        response.set_cookie(LANGUAGE_COOKIE, lang, max_age=365 * 24 * 3600, path="/", samesite="lax")
    return response


# ---- the merchant console ---------------------------------------------------------------------

def merchant_of(view: View) -> int:
    assert view.caller.merchant_id is not None  # page(OWNERS/TILL) lets merchants only in
    return view.caller.merchant_id


def dashboard_page() -> Handler:
    # The figures scan the merchant's whole history: kept a minute, they cost one scan per minute
    # per merchant however often its staff reload the page.
    cache: dict[int, tuple[float, Dashboard]] = {}

    async def dashboard(request: Request, view: View) -> Response:
        merchant_id = merchant_of(view)
        cached = cache.get(merchant_id)
        if cached is not None and cached[0] > time.monotonic():
            figures = cached[1]
        else:
            figures = await merchant_dashboard(view.services.db, merchant_id)
            if len(cache) >= DASHBOARD_CACHE_SIZE:
                cache.pop(next(iter(cache)))
            cache[merchant_id] = (time.monotonic() + DASHBOARD_CACHE_S, figures)
        chart = weekly_bars(figures.weeks, view.t)
        return render(request, "console/dashboard.html", view, figures=figures, chart=chart)

    return dashboard


async def customers(request: Request, view: View) -> Response:
    after = request.query_params.get("after", "")
    after_id = int(after) if after.isascii() and after.isdigit() and len(after) < 19 else None
    rows = await merchant_customers(view.services.db, merchant_of(view), after_id=after_id, limit=CUSTOMERS_PAGE + 1)
    more = rows[CUSTOMERS_PAGE - 1].member_id if len(rows) > CUSTOMERS_PAGE else None
    return render(request, "console/customers.html", view, rows=rows[:CUSTOMERS_PAGE], more=more)


async def customer(request: Request, view: View) -> Response:
    services, merchant_id = view.services, merchant_of(view)
    member = await find_member(services.db, request.path_params["loyalty_id"])
    # Another merchant's customer answers exactly like a loyalty ID nobody has.
    if not await is_customer(services.db, merchant_id, member.id):
        raise MemberNotFound("no such customer")
    history = await member_history(services.db, member.id, merchant_id=merchant_id, before_id=None,
                                   limit=HISTORY_PAGE)
    return render(request, "console/customer.html", view, member=member, history=history)


async def insights(request: Request, view: View) -> Response:
    services, merchant_id = view.services, merchant_of(view)
    stored = await services.insights.view(merchant_id)
    network = await services.insights.view(None)
    payload = stored.payload if stored is not None else {}
    win_back = payload.get("win_back", [])[:20]
    recommendations = payload.get("recommendations", [])[:10]
    alerts = alerts_naming(network.payload.get("fraud_alerts", []) if network is not None else [], merchant_id)[:20]
    # Names of partners, loyalty IDs of the merchant's own members only (an alert may name others').
    alert_members = await own_members(services.db, merchant_id, [m for a in alerts for m in a.get("member_ids", [])])
    ids = await loyalty_ids(services.db, [row["member_id"] for row in win_back] + list(alert_members))
    names = await merchant_names(services.db, [r["partner_id"] for r in recommendations])
    return render(request, "console/insights.html", view, stored=stored,
                  segments=[s for s in payload.get("segments", []) if s.get("segment") in SEGMENT_NAMES],
                  win_back=win_back, recommendations=recommendations, names=names, alerts=alerts,
                  alert_members=alert_members, ids=ids)


async def win_back_csv(request: Request, view: View) -> Response:
    services, merchant_id = view.services, merchant_of(view)
    stored = await services.insights.view(merchant_id)
    rows = stored.payload.get("win_back", []) if stored is not None else []
    ids = await loyalty_ids(services.db, [row["member_id"] for row in rows])
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["loyalty_id", "segment", "days_since_last_purchase", "spent_minor"])
    for row in rows:
        writer.writerow([ids.get(row["member_id"], ""), row["segment"], int(row["recency_s"]) // 86400,
                         int(row["monetary_minor"])])
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": 'attachment; filename="win-back.csv"', "Cache-Control": "private, no-store",
        "X-Content-Type-Options": "nosniff"})


async def statements(request: Request, view: View) -> Response:
    services = view.services
    lines = await merchant_statements(services.db, merchant_of(view), due_days=services.settings.settlement_due_days)
    return render(request, "console/statements.html", view, lines=lines)


async def staff(request: Request, view: View) -> Response:
    services, merchant_id = view.services, merchant_of(view)
    new_key: str | None = None
    error: str | None = None
    status = 200
    if request.method == "POST":
        form = await read_form(request)
        if form is None:
            return form_expired(request, view.t)
        action = form.get("action")
        try:
            if action == "add_cashier":
                await create_user(services.db, email=str(form.get("email", "")),
                                  password=str(form.get("password", "")), role=StaffRole.CASHIER,
                                  merchant_id=merchant_id)
            elif action == "disable_user":
                await disable_user(services.db, parse_points(str(form.get("user", ""))), merchant_id=merchant_id)
                request.app.state.authenticator.forget()
            elif action == "create_key":
                label = str(form.get("label", "")).strip()[:120] or None
                async with services.db.sessions.begin() as session:
                    new_key = await create_api_key(session, Role.MERCHANT, merchant_id=merchant_id, label=label)
            elif action == "revoke_key":
                await revoke_merchant_key(services.db, merchant_id, parse_points(str(form.get("key", ""))))
                request.app.state.authenticator.forget()
            else:
                raise InvalidInput("unknown action", code="INVALID_ACTION")
        except DomainError as refused:
            error, status = refused.message, 400
    users = await list_users(services.db, merchant_id)
    keys = await list_merchant_keys(services.db, merchant_id)
    return render(request, "console/staff.html", view, status=status, users=users, keys=keys, new_key=new_key,
                  error=error)


def console_routes() -> list[Route]:
    return [
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/language", language, methods=["GET"]),
        Route("/console", page(OWNERS, dashboard_page())),
        Route("/console/customers", page(OWNERS, customers)),
        Route("/console/customers/{loyalty_id}", page(OWNERS, customer)),
        Route("/console/insights", page(OWNERS, insights)),
        Route("/console/insights/win-back.csv", page(OWNERS, win_back_csv)),
        Route("/console/statements", page(OWNERS, statements)),
        Route("/console/staff", page(OWNERS, staff), methods=["GET", "POST"]),
    ]

