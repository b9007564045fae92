"""Pages answer 503 SERVICE_UNAVAILABLE while the database cannot be reached; other errors pass on."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from coalition.availability import Unavailable
from coalition.web.outage import OutageMiddleware


async def lost(request: Request) -> Response:
    raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")


async def refused_at_once(request: Request) -> Response:
    raise Unavailable("database")


async def bug(request: Request) -> Response:
    raise ValueError("a bug")


@pytest.fixture
async def client() -> httpx.AsyncClient:
    app = Starlette(routes=[Route("/page", lost), Route("/fast", refused_at_once), Route("/graphql", lost),
                            Route("/bug", bug)], middleware=[Middleware(OutageMiddleware)])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                             base_url="http://test")


@pytest.mark.parametrize("path", ["/page", "/fast"])
async def test_a_page_gets_503_in_the_pages_error_shape(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)

    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"
    assert response.json()["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
    assert "5432" not in response.text


async def test_graphql_gets_the_graphql_error_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql")

    assert response.status_code == 503
    assert response.json()["errors"][0]["extensions"] == {"code": "SERVICE_UNAVAILABLE"}


async def test_any_other_error_is_left_alone(client: httpx.AsyncClient) -> None:
    assert (await client.get("/bug")).status_code == 500
