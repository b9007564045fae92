"""What every page shares: templates, security headers, CSRF, who may open it, the human error page.

A page handler is ``async def handler(request, caller, view) -> Response`` wrapped by
:func:`page` with the audience that may open it:

=========  ============================================================================
OWNERS     a merchant's owner (signed in), or the merchant's API key (a machine's GET)
TILL       the above and the merchant's cashiers
ADMINS     a network admin (signed in, or the admin API key)
MEMBERS    a member: the wallet cookie from a claim link, or the member token
=========  ============================================================================

Forms (POST) are taken only from a signed-in browser (the session cookie) with the form's
CSRF token, ``csrf_token(request)``: a keyed HMAC of the session's secret, so it is tied to
the session, changes when sign-in rotates it, and cannot be made without the server's key.
A bearer key or HTTP Basic (which a browser replays on its own) never posts a form.
Forms before sign-in (sign-in, claiming a wallet) use a random cookie echoed in the form.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from coalition import i18n
from coalition.auth.models import Role
from coalition.auth.service import Caller
from coalition.db import utcnow
from coalition.errors import DomainError, NotFound
from coalition.settlement import report_page
from coalition.web.auth import SESSION_CREDENTIAL, caller_of
from coalition.web.errors import error_response
from coalition.web.i18n import LANGUAGES, Formatter, formatter

OWNERS, TILL, ADMINS, MEMBERS = "owners", "till", "admins", "members"
PRE_SESSION_COOKIE = "coalition_form"
MAX_FORM_BYTES = 64 * 1024

# Scripts and styles from the package only (/static); images inline (charts, QR) or from /admin.
PAGE_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": PAGE_POLICY,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "private, no-store",
    "Permissions-Policy": "camera=(self), microphone=(), geolocation=()",
}

_env = Environment(loader=PackageLoader("coalition.web", "templates/pages"), autoescape=select_autoescape(default=True),
                   trim_blocks=True, lstrip_blocks=True)


def warm_up() -> None:
    """Compile every page's template and load every language now, at start-up, rather than in the
    first request for each (Jinja compiles a template on first use: tens of milliseconds each)."""
    for name in _env.list_templates():
        _env.get_template(name)
    report_page.warm_up()
    i18n.warm_up()


@dataclass(frozen=True)
class View:
    """What a handler needs besides the request: the services, the language, the CSRF token."""

    services: Any
    t: Formatter
    csrf: str
    caller: Caller


def csrf_token(request: Request) -> str:
    """The session's CSRF token, or (before sign-in) the pre-session cookie's value."""
    credential = request.scope.get(SESSION_CREDENTIAL)
    if credential:
        keys = request.app.state.services.keys
        return str(keys.blind_index("csrf", credential))[:43]
    return request.cookies.get(PRE_SESSION_COOKIE, "")


def form_token_cookie(request: Request, response: Response) -> str:
    """Give a browser without a session its pre-session form token (set on ``response``)."""
    token = request.cookies.get(PRE_SESSION_COOKIE) or secrets.token_urlsafe(24)
    set_cookie(request, response, PRE_SESSION_COOKIE, token, max_age=3600)
    return token


def set_cookie(request: Request, response: Response, name: str, value: str, *, max_age: int | None = None) -> None:
    secure = request.app.state.services.settings.public_url.startswith("https://")
    response.set_cookie(name, value, max_age=max_age, path="/", secure=secure, httponly=True, samesite="lax")


def check_csrf(request: Request, form: FormData) -> bool:
    sent = form.get("csrf")
    expected = csrf_token(request)
    return isinstance(sent, str) and bool(expected) and hmac.compare_digest(sent.encode(), expected.encode())


async def read_form(request: Request) -> FormData | None:
    """The posted form when it is small, urlencoded and carries the right CSRF token; else None."""
    if int(request.headers.get("content-length") or 0) > MAX_FORM_BYTES:
        return None
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return None
    form = await request.form(max_files=0, max_fields=50)
    return form if check_csrf(request, form) else None


def labels(t: Formatter) -> dict[str, dict[str, str]]:
    """The words for stored codes (transaction kinds, loyalty types, roles), in the reader's language."""
    _ = t.gettext
    return {
        "kinds": {"EARN": _("Earned"), "REDEEM": _("Redeemed"), "REVERSAL": _("Reversed"), "EXPIRY": _("Expired"),
                  "BONUS": _("Bonus"), "ADJUSTMENT": _("Adjustment"), "HOLD": _("Reserved"), "CAPTURE": _("Redeemed"),
                  "VOID": _("Released")},
        "segment_names": {"TRULY_LOYAL": _("Truly loyal"), "ACCESSIBLE": _("Accessible"), "TRAPPED": _("Trapped"),
                          "HIGH_RISK": _("At risk")},
        "segment_actions": {
            "TRULY_LOYAL": _("Reward and keep them: perks, early access, ask them to refer friends."),
            "ACCESSIBLE": _("Grow your share: bonus points, joint offers with partners they visit."),
            "TRAPPED": _("Build real attachment: personal thank-you offers, better service."),
            "HIGH_RISK": _("Win them back: a time-limited bonus on the next visit."),
        },
        "alert_kinds": {"SYBIL_FARM": _("Many sign-ups from one referrer"), "REFERRAL_CYCLE": _("Referral loop"),
                        "SHARED_CONTACT": _("Shared contact details"), "MERCHANT_COLLUSION": _("Unusual redemptions")},
        "roles": {"OWNER": _("Owner"), "CASHIER": _("Cashier"), "ADMIN": _("Admin")},
    }


def render(request: Request, template: str, view: View | None = None, *, status: int = 200,
           t: Formatter | None = None, **context: Any) -> HTMLResponse:
    t = t or (view.t if view is not None else formatter(request))
    caller = view.caller if view is not None else caller_of(request)
    body = _env.get_template(template).render(
        t=t, _=t.gettext, csrf=view.csrf if view is not None else csrf_token(request), caller=caller,
        languages=LANGUAGES, path=request.url.path, **labels(t), **context)
    response = HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)
    response.headers["Content-Language"] = t.lang
    return response


def allowed(caller: Caller, audience: str) -> bool:
    if audience == ADMINS:
        return caller.role == Role.ADMIN
    if audience == MEMBERS:
        return caller.role == Role.MEMBER
    if caller.role != Role.MERCHANT or caller.merchant_id is None:
        return False
    return audience == TILL or caller.staff_role != "CASHIER"


Handler = Callable[[Request, View], Awaitable[Response]]


def page(audience: str, handler: Handler, *, methods: Collection[str] = ("GET",)) -> Callable[[Request],
                                                                                             Awaitable[Response]]:
    """``handler`` for ``audience`` only: anonymous browsers are sent to sign in; others get 403."""

    async def endpoint(request: Request) -> Response:
        caller = caller_of(request)
        t = formatter(request)
        if caller is None:
            if audience == MEMBERS:
                return human_error(request, t, 401, "UNAUTHENTICATED", t.gettext(
                    "Open the link your shop gave you to see your points."))
            if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
                return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
            return human_error(request, t, 401, "UNAUTHENTICATED", t.gettext("Sign in to open this page."))
        if not allowed(caller, audience):
            return human_error(request, t, 403, "FORBIDDEN", t.gettext("This page is not for your account."))
        if request.method == "POST" and not request.scope.get(SESSION_CREDENTIAL):
            return human_error(request, t, 403, "SESSION_REQUIRED", t.gettext(
                "Forms are for people signed in with a browser; machines use the API."))
        services = request.app.state.services
        # Dates on the network's clock (the settlement policy's time zone), for the pages and their forms.
        t = replace(t, zone=await services.policy_cache().timezone(utcnow()))
        view = View(services, t, csrf_token(request), caller)
        try:
            return await handler(request, view)
        except NotFound as error:
            return human_error(request, t, 404, error.code, t.gettext("Not found."))
        except DomainError as error:
            return human_error(request, t, 400, error.code, error.message)

    return endpoint


def form_expired(request: Request, t: Formatter) -> Response:
    """The answer to a form :func:`read_form` refused (too big, not urlencoded, or its CSRF token stale)."""
    return human_error(request, t, 403, "CSRF_FAILED", t.gettext(
        "The form had expired. Go back, reload the page and try again."))


def human_error(request: Request, t: Formatter, status: int, code: str, message: str) -> Response:
    """A 4xx page in the reader's language for a browser; the JSON shape for anything else."""
    if "text/html" not in request.headers.get("accept", "").lower():
        return error_response(request, status, code, message)
    titles = {400: t.gettext("Something is wrong with the request"), 401: t.gettext("Sign-in needed"),
              403: t.gettext("Not allowed"), 404: t.gettext("Not found"), 429: t.gettext("Too many attempts")}
    response = render(request, "error.html", t=t, status=status, title=titles.get(status, t.gettext("Error")),
                      message=message, code=code)
    if status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response
