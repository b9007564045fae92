"""The endpoint while the database cannot be reached: 503, SERVICE_UNAVAILABLE, Retry-After, no traceback."""

from __future__ import annotations

import logging
from typing import Any

import graphene
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from coalition.graphql.http import GRAPHQL_RESPONSE_JSON, GraphQLEndpoint


class Query(graphene.ObjectType):
    fine = graphene.String()
    lost = graphene.String()
    bug = graphene.String()

    @staticmethod
    def resolve_fine(root: Any, info: Any) -> str:
        return "ok"

    @staticmethod
    async def resolve_lost(root: Any, info: Any) -> str:
        raise ConnectionResetError(104, "Connection reset by peer")

    @staticmethod
    def resolve_bug(root: Any, info: Any) -> str:
        raise ValueError("a bug")


SCHEMA = graphene.Schema(query=Query).graphql_schema


async def context(request: Request) -> dict[str, Any]:
    if request.headers.get("x-database") == "down":
        raise TimeoutError()  # the caller's key could not be looked up
    return {}


@pytest.fixture
async def client() -> Any:
    app = Starlette(routes=[Route("/graphql", GraphQLEndpoint(SCHEMA, context))])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        yield http


@pytest.mark.parametrize("accept", [GRAPHQL_RESPONSE_JSON, "application/json"])
@pytest.mark.parametrize(("query", "headers"), [
    ("{ fine lost }", {}),  # a resolver's error, which graphql-core wraps into result.errors
    ("{ fine }", {"x-database": "down"}),  # the context factory's
])
async def test_503_in_the_graphql_error_shape_and_nothing_logged(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, query: str, headers: dict[str, str], accept: str,
) -> None:
    caplog.set_level(logging.WARNING)
    response = await client.post("/graphql", json={"query": query}, headers={**headers, "Accept": accept})

    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"
    assert response.headers["content-type"].startswith(accept)
    errors = response.json()["errors"]
    assert [e["extensions"]["code"] for e in errors] == ["SERVICE_UNAVAILABLE"]
    assert "data" not in response.json()
    assert caplog.records == []


async def test_other_errors_are_unchanged(client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    response = await client.post("/graphql", json={"query": "{ fine bug }"})

    assert response.status_code == 200
    assert response.json()["data"] == {"fine": "ok", "bug": None}
    assert response.json()["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    # a bug still gets its traceback (frames and type; its message withheld: coalition.logsafe)
    logged = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any("Traceback" in text and "ValueError (message withheld)" in text for text in logged), logged
