"""Every page people use: sign-in and the merchant console, the admin console, the member wallet."""

from __future__ import annotations

from starlette.routing import Route

from coalition.web.admin import admin_routes
from coalition.web.console import console_routes
from coalition.web.policy_pages import policy_routes
from coalition.web.program_pages import program_routes
from coalition.web.till import till_routes
from coalition.web.wallet import wallet_routes


def page_routes() -> list[Route]:
    return [*console_routes(), *till_routes(), *program_routes(), *admin_routes(), *policy_routes(), *wallet_routes()]
