"""The GraphQL-over-HTTP endpoint, driven through a real Starlette app."""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import graphene
import graphql
import httpx
import pytest
from graphql import GraphQLError, GraphQLSyntaxError, Source
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from coalition.graphql.errors import BadUserInput, CodedError, Forbidden, Unauthenticated, format_error
from coalition.graphql.http import GRAPHQL_RESPONSE_JSON, GraphQLEndpoint, RequestRejected, negotiate
from coalition.graphql.limits import Budget

HELLO = "query Hello($name: String) { hello(name: $name) }"
BUMP = "mutation Bump { bump }"
CODED = "{ coded }"
BROKEN = "{ hello broken }"
REQUIRED = "{ required }"
TWO_OPERATIONS = 'query A { hello } query B { hello(name: "b") }'
TICKS = "subscription { ticks }"

GRAPHQL_JSON = "application/graphql-response+json; charset=utf-8"
LEGACY_JSON = "application/json; charset=utf-8"
NEW = {"Accept": GRAPHQL_RESPONSE_JSON}
LEGACY = {"Accept": "application/json"}

calls: Counter[str] = Counter()


class Nested(graphene.ObjectType):
    value = graphene.String()
    child = graphene.Field(lambda: Nested)

    @staticmethod
    def resolve_value(root: Any, info: Any) -> str:
        calls["value"] += 1
        return "v"

    @staticmethod
    def resolve_child(root: Any, info: Any) -> object:
        calls["child"] += 1
        return object()


class Query(graphene.ObjectType):
    hello = graphene.String(name=graphene.String())
    coded = graphene.String()
    broken = graphene.String()
    required = graphene.String(required=True)
    nested = graphene.Field(Nested)
    viewer = graphene.String()
    busy = graphene.Int()

    @staticmethod
    async def resolve_hello(root: Any, info: Any, name: str | None = None) -> str:
        calls["hello"] += 1
        return f"Hello, {name or 'world'}!"

    @staticmethod
    def resolve_coded(root: Any, info: Any) -> str:
        raise Forbidden("merchant M-1 may not read member LX-7")

    @staticmethod
    def resolve_broken(root: Any, info: Any) -> str:
        raise RuntimeError("secret internals: password=hunter2")

    @staticmethod
    def resolve_required(root: Any, info: Any) -> str:
        raise RuntimeError("boom")

    @staticmethod
    def resolve_nested(root: Any, info: Any) -> object:
        calls["nested"] += 1
        return object()

    @staticmethod
    def resolve_busy(root: Any, info: Any) -> int:
        end = time.thread_time() + 0.03  # 30 ms of the event loop's CPU, like a costly selection
        while time.thread_time() < end:
            pass
        return 1

    @staticmethod
    def resolve_viewer(root: Any, info: Any) -> str:
        return str(info.context["viewer"])


class Bump(graphene.Mutation):
    Output = graphene.Int

    @staticmethod
    def mutate(root: Any, info: Any) -> int:
        calls["bump"] += 1
        return calls["bump"]


class Mutation(graphene.ObjectType):
    bump = Bump.Field()


class Subscription(graphene.ObjectType):
    ticks = graphene.Int()

    @staticmethod
    async def subscribe_ticks(root: Any, info: Any) -> AsyncIterator[int]:  # pragma: no cover
        yield 1


SCHEMA = graphene.Schema(query=Query, mutation=Mutation, subscription=Subscription).graphql_schema


async def viewer_context(request: Request) -> dict[str, Any]:
    reject = request.headers.get("x-reject")
    if reject == "401":
        raise RequestRejected(
            401,
            "UNAUTHENTICATED",
            "Unknown API key: send Authorization: Bearer <key>.",
            {"WWW-Authenticate": "Bearer"},
        )
    if reject == "429":
        raise RequestRejected(
            429, "RATE_LIMITED", "Too many requests: retry after 1 s.", {"Retry-After": "1"}
        )
    if reject == "bug":
        raise KeyError("context factory bug")
    return {"viewer": request.headers.get("x-viewer", "anonymous")}


def make_client(
    context_factory: Callable[[Request], Awaitable[object]] = viewer_context, **options: Any
) -> tuple[httpx.AsyncClient, GraphQLEndpoint]:
    endpoint = GraphQLEndpoint(SCHEMA, context_factory, **options)
    app = Starlette(routes=[Route("/graphql", endpoint)])
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
    return client, endpoint


@pytest.fixture(autouse=True)
def reset_calls() -> None:
    calls.clear()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    http, _ = make_client(graphiql_html="<html>GraphiQL</html>")
    async with http:
        yield http


def codes(response: httpx.Response) -> list[str]:
    return [error["extensions"]["code"] for error in response.json()["errors"]]


# --- successful requests ---------------------------------------------------------------


async def test_post_query_with_variables(client: httpx.AsyncClient) -> None:
    response = await client.post("/graphql", json={"query": HELLO, "variables": {"name": "Ada"}}, headers=NEW)

    assert response.status_code == 200
    assert response.headers["content-type"] == GRAPHQL_JSON
    assert response.json() == {"data": {"hello": "Hello, Ada!"}}


async def test_post_accepts_null_variables_operation_name_and_extensions(client: httpx.AsyncClient) -> None:
    body = {"query": HELLO, "variables": None, "operationName": None, "extensions": None}

    response = await client.post("/graphql", json=body, headers=NEW)

    assert response.status_code == 200
    assert response.json() == {"data": {"hello": "Hello, world!"}}


async def test_post_with_operation_name_picks_the_operation(client: httpx.AsyncClient) -> None:
    response = await client.post("/graphql", json={"query": TWO_OPERATIONS, "operationName": "B"})

    assert response.json() == {"data": {"hello": "Hello, b!"}}


async def test_get_query(client: httpx.AsyncClient) -> None:
    params = {"query": HELLO, "variables": json.dumps({"name": "Bo"}), "operationName": "Hello"}

    response = await client.get("/graphql", params=params, headers=NEW)

    assert response.status_code == 200
    assert response.json() == {"data": {"hello": "Hello, Bo!"}}


async def test_post_mutation(client: httpx.AsyncClient) -> None:
    response = await client.post("/graphql", json={"query": BUMP})

    assert response.json() == {"data": {"bump": 1}}


async def test_context_factory_result_reaches_resolvers(client: httpx.AsyncClient) -> None:
    response = await client.post("/graphql", json={"query": "{ viewer }"}, headers={"x-viewer": "merchant-9"})

    assert response.json() == {"data": {"viewer": "merchant-9"}}


# --- media types -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "application/json"),
        ("", "application/json"),
        ("*/*", "application/json"),
        ("application/*", "application/json"),
        ("application/json", "application/json"),
        ("application/graphql-response+json", GRAPHQL_RESPONSE_JSON),
        ("application/graphql-response+json, application/json", GRAPHQL_RESPONSE_JSON),
        ("application/json, application/graphql-response+json", "application/json"),
        ("application/json;q=0.9, application/graphql-response+json", GRAPHQL_RESPONSE_JSON),
        ("application/graphql-response+json;q=0, application/json", "application/json"),
        ("text/html, */*;q=0.8", "application/json"),
        ("text/xml", None),
        ("application/json;q=0", None),
    ],
)
def test_negotiate(accept: str | None, expected: str | None) -> None:
    assert negotiate(accept) == expected


async def test_no_accept_header_answers_legacy_json(client: httpx.AsyncClient) -> None:
    request = client.build_request("POST", "/graphql", json={"query": "{ hello }"})
    del request.headers["accept"]

    response = await client.send(request)

    assert response.status_code == 200
    assert response.headers["content-type"] == LEGACY_JSON


async def test_unacceptable_accept_is_406(client: httpx.AsyncClient) -> None:
    response = await client.post("/graphql", json={"query": "{ hello }"}, headers={"Accept": "text/xml"})

    assert response.status_code == 406
    assert response.headers["content-type"] == LEGACY_JSON
    assert codes(response) == ["NOT_ACCEPTABLE"]
    assert calls["hello"] == 0


@pytest.mark.parametrize(("headers", "status"), [(NEW, 400), (LEGACY, 200)])
async def test_parse_failure(client: httpx.AsyncClient, headers: dict[str, str], status: int) -> None:
    response = await client.post("/graphql", json={"query": "{ hello"}, headers=headers)

    assert response.status_code == status
    body = response.json()
    assert "data" not in body
    assert body["errors"][0]["message"].startswith("Syntax Error:")
    assert body["errors"][0]["locations"] == [{"line": 1, "column": 8}]
    assert codes(response) == ["GRAPHQL_PARSE_FAILED"]


@pytest.mark.parametrize(("headers", "status"), [(NEW, 400), (LEGACY, 200)])
async def test_validation_failure(client: httpx.AsyncClient, headers: dict[str, str], status: int) -> None:
    response = await client.post("/graphql", json={"query": "{ nope }"}, headers=headers)

    assert response.status_code == status
    assert "data" not in response.json()
    assert codes(response) == ["GRAPHQL_VALIDATION_FAILED"]


@pytest.mark.parametrize(("headers", "status"), [(NEW, 400), (LEGACY, 200)])
async def test_variable_coercion_failure(
    client: httpx.AsyncClient, headers: dict[str, str], status: int
) -> None:
    body = {"query": HELLO, "variables": {"name": {"not": "a string"}}}

    response = await client.post("/graphql", json=body, headers=headers)

    assert response.status_code == status
    assert "data" not in response.json()
    assert codes(response) == ["BAD_USER_INPUT"]
    assert calls["hello"] == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"query": TWO_OPERATIONS}, "Must provide operation name if query contains multiple operations."),
        ({"query": HELLO, "operationName": "Nope"}, "Unknown operation named 'Nope'."),
    ],
)
async def test_operation_resolution_failure(
    client: httpx.AsyncClient, body: dict[str, Any], message: str
) -> None:
    response = await client.post("/graphql", json=body, headers=NEW)

    assert response.status_code == 400
    assert response.json() == {
        "errors": [{"message": message, "extensions": {"code": "OPERATION_RESOLUTION_FAILURE"}}]
    }


async def test_field_errors_keep_200_and_data_under_either_media_type(client: httpx.AsyncClient) -> None:
    for headers in (NEW, LEGACY):
        response = await client.post("/graphql", json={"query": CODED}, headers=headers)

        assert response.status_code == 200
        assert response.json() == {
            "errors": [
                {
                    "message": "merchant M-1 may not read member LX-7",
                    "locations": [{"line": 1, "column": 3}],
                    "path": ["coded"],
                    "extensions": {"code": "FORBIDDEN"},
                }
            ],
            "data": {"coded": None},
        }


async def test_null_data_from_a_non_null_root_field_is_still_200(client: httpx.AsyncClient) -> None:
    response = await client.post("/graphql", json={"query": REQUIRED}, headers=NEW)

    assert response.status_code == 200
    assert response.json()["data"] is None
    assert codes(response) == ["INTERNAL_SERVER_ERROR"]


async def test_internal_errors_are_masked_and_logged(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="coalition.graphql"):
        response = await client.post("/graphql", json={"query": BROKEN}, headers=NEW)

    assert response.status_code == 200
    assert "RuntimeError" not in response.text
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text
    body = response.json()
    assert body["data"] == {"hello": "Hello, world!", "broken": None}
    assert body["errors"] == [
        {
            "message": "Internal server error",
            "locations": [{"line": 1, "column": 9}],
            "path": ["broken"],
            "extensions": {"code": "INTERNAL_SERVER_ERROR"},
        }
    ]
    # The log names the exception and where it came from, never its message (which may quote input).
    [record] = [r for r in caplog.records if r.name == "coalition.graphql"]
    logged = record.getMessage()
    # (the source line of the raise is code, not input, so it may show in the frames)
    assert "Traceback" in logged and logged.endswith("RuntimeError (message withheld)")
    assert record.exc_info is None


# --- methods -----------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [NEW, LEGACY])
async def test_mutation_over_get_is_405(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    response = await client.get("/graphql", params={"query": BUMP}, headers=headers)

    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert codes(response) == ["METHOD_NOT_ALLOWED"]
    assert calls["bump"] == 0


async def test_mutation_picked_by_operation_name_over_get_is_405(client: httpx.AsyncClient) -> None:
    params = {"query": HELLO + " " + BUMP, "operationName": "Bump"}

    response = await client.get("/graphql", params=params)

    assert response.status_code == 405
    assert calls["bump"] == 0


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
async def test_other_methods_are_405(client: httpx.AsyncClient, method: str) -> None:
    response = await client.request(method, "/graphql", json={"query": "{ hello }"})

    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    assert codes(response) == ["METHOD_NOT_ALLOWED"]


async def test_subscription_is_refused(client: httpx.AsyncClient) -> None:
    for headers in (NEW, LEGACY):
        response = await client.post("/graphql", json={"query": TICKS}, headers=headers)

        assert response.status_code == 400
        assert codes(response) == ["OPERATION_NOT_SUPPORTED"]


# --- malformed requests ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe{", "not valid JSON"),
        (b"[" * 50_000, "not valid JSON"),
        (b"", "empty"),
        (b"[]", "must be a JSON object, not an array"),
        (b'"{ hello }"', "must be a JSON object, not a string"),
        (b"{}", "Missing 'query'"),
        (b'{"query": null}', "Missing 'query'"),
        (b'{"query": 1}', "'query' must be a string, not a number"),
        (b'{"query": {"a": 1}}', "'query' must be a string, not an object"),
        (
            b'{"query": "{ hello }", "variables": "{}"}',
            "'variables' must be an object (or null), not a string",
        ),
        (b'{"query": "{ hello }", "variables": []}', "'variables' must be an object (or null), not an array"),
        (b'{"query": "{ hello }", "variables": 3}', "'variables' must be an object (or null), not a number"),
        (b'{"query": "{ hello }", "operationName": 1}', "'operationName' must be a string"),
        (b'{"query": "{ hello }", "extensions": "x"}', "'extensions' must be an object"),
    ],
)
async def test_malformed_post_bodies_are_400(client: httpx.AsyncClient, content: bytes, message: str) -> None:
    for headers in (NEW, LEGACY):
        response = await client.post(
            "/graphql", content=content, headers={**headers, "Content-Type": "application/json"}
        )

        assert response.status_code == 400
        assert message in response.json()["errors"][0]["message"]
        assert codes(response) == ["BAD_REQUEST"]
    assert calls["hello"] == 0


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "Missing 'query'"),
        ({"query": "{ hello }", "variables": "{oops"}, "'variables' parameter is not valid JSON"),
        ({"query": "{ hello }", "variables": "[1]"}, "'variables' must be an object"),
        ({"query": "{ hello }", "extensions": "3"}, "'extensions' must be an object"),
    ],
)
async def test_malformed_get_requests_are_400(
    client: httpx.AsyncClient, params: dict[str, str], message: str
) -> None:
    response = await client.get("/graphql", params=params, headers=NEW)

    assert response.status_code == 400
    assert message in response.json()["errors"][0]["message"]


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"],
)
async def test_unsupported_content_type_is_415(client: httpx.AsyncClient, content_type: str | None) -> None:
    request = client.build_request("POST", "/graphql", content=b'{"query": "{ hello }"}', headers=NEW)
    if content_type is None:
        request.headers.pop("content-type", None)
    else:
        request.headers["content-type"] = content_type

    response = await client.send(request)

    assert response.status_code == 415
    assert response.headers["content-type"] == GRAPHQL_JSON
    assert codes(response) == ["UNSUPPORTED_MEDIA_TYPE"]


async def test_json_with_utf8_charset_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql",
        content=b'{"query": "{ hello }"}',
        headers={"Content-Type": "application/json; charset=UTF-8"},
    )

    assert response.json() == {"data": {"hello": "Hello, world!"}}


async def test_body_over_the_limit_is_413() -> None:
    http, _ = make_client(max_body_bytes=1_000)
    body = {"query": "{ hello }", "variables": {"pad": "x" * 2_000}}
    async with http:
        response = await http.post("/graphql", json=body, headers=NEW)

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
            for _ in range(3):
                yield b" " * 600

        streamed = await http.post("/graphql", content=chunks(), headers={"Content-Type": "application/json"})

    assert response.status_code == 413
    assert codes(response) == ["PAYLOAD_TOO_LARGE"]
    assert streamed.status_code == 413


# --- limits ------------------------------------------------------------------------------


def deep_query(depth: int) -> str:
    """``{ nested { child ... { value } } }`` with ``depth`` fields from root to leaf."""
    return "{ nested " + "{ child " * (depth - 2) + "{ value }" + " }" * (depth - 2) + " }"


async def test_deep_query_is_refused_before_execution(client: httpx.AsyncClient) -> None:
    response = await client.post("/graphql", json={"query": deep_query(50)}, headers=NEW)

    assert response.status_code == 400
    assert codes(response) == ["QUERY_TOO_DEEP"]
    assert "levels of nested fields; the limit is 15" in response.json()["errors"][0]["message"]
    assert calls == Counter()


async def test_query_at_the_depth_limit_runs(client: httpx.AsyncClient) -> None:
    response = await client.post("/graphql", json={"query": deep_query(15)}, headers=NEW)

    assert response.status_code == 200
    assert calls["value"] == 1


async def test_wide_query_is_refused_before_execution(client: httpx.AsyncClient) -> None:
    query = "{ " + " ".join(f"a{i}: hello" for i in range(2_000)) + " }"

    response = await client.post("/graphql", json={"query": query}, headers=NEW)

    assert response.status_code == 400
    assert codes(response) == ["TOO_MANY_ALIASES"]
    assert "101 aliased fields; the limit is 100" in response.json()["errors"][0]["message"]
    assert calls["hello"] == 0


async def test_document_over_the_token_budget_is_refused() -> None:
    http, _ = make_client(budget_for=Budget(max_tokens=50, max_repeats=100))
    async with http:
        response = await http.post("/graphql", json={"query": "{ " + "f " * 60 + "}"}, headers=NEW)

    assert response.status_code == 400
    assert codes(response) == ["TOO_MANY_TOKENS"]
    assert "51 tokens; the limit is 50" in response.json()["errors"][0]["message"]


ATTACKS = {
    "repeats": ("{ " + " ".join(["nested { value }"] * 300) + " } #0.25", "TOO_MANY_FIELDS"),
    "operations": (" ".join(f"query Q{i} {{ hello }}" for i in range(1_000)), "TOO_MANY_OPERATIONS"),
    "aliases": ("{ " + " ".join(f"a{i}: hello" for i in range(2_000)) + " }", "TOO_MANY_ALIASES"),
    "junk": ("?" * 99_000, "TOO_MANY_TOKENS"),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
@pytest.mark.parametrize(("headers", "status"), [(NEW, 400), (LEGACY, 200)])
async def test_attacks_are_refused_before_parsing_and_validation(
    attack: str, headers: dict[str, str], status: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_parse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an over-budget document reached the parser")

    monkeypatch.setattr("coalition.graphql.documents.parse", no_parse)
    monkeypatch.setattr("coalition.graphql.documents.validate", no_parse)
    query, code = ATTACKS[attack]
    http, endpoint = make_client()
    async with http:
        response = await http.post("/graphql", json={"query": query}, headers=headers)

    assert response.status_code == status
    body = response.json()
    assert "data" not in body
    assert codes(response) == [code]
    assert calls == Counter()
    assert endpoint.documents.cache_info().entries == 0


async def test_a_refusal_is_answered_after_the_delay_with_what_it_cost() -> None:
    http, _ = make_client(budget_for=Budget(max_aliases=1), refusal_delay_s=0.2)
    async with http:
        started = time.perf_counter()
        refused = await http.post("/graphql", json={"query": "{ a: hello b: hello }"}, headers=NEW)
        refused_after = time.perf_counter() - started
        started = time.perf_counter()
        invalid = await http.post("/graphql", json={"query": "{ nope }"}, headers=NEW)
        invalid_after = time.perf_counter() - started

    assert refused.status_code == 400 and codes(refused) == ["TOO_MANY_ALIASES"]
    assert refused_after >= 0.2
    name, _, duration = refused.headers["Server-Timing"].partition(";dur=")
    assert name == "refuse" and 0 < float(duration) < 200  # milliseconds, the delay not included
    # Only over-budget documents wait: a validation failure is answered at once.
    assert invalid.status_code == 400 and "Server-Timing" not in invalid.headers
    assert invalid_after < 0.2


async def test_a_budget_with_a_slowdown_makes_its_caller_wait_for_what_it_cost() -> None:
    http, _ = make_client(budget_for=lambda context: Budget(slowdown=30) if context["viewer"] == "anonymous"
                          else Budget())
    async with http:
        timings = {}
        for viewer in ("anonymous", "ada"):
            started = time.perf_counter()
            response = await http.post("/graphql", json={"query": "{ busy }"}, headers={"x-viewer": viewer})
            timings[viewer] = time.perf_counter() - started
            assert response.json() == {"data": {"busy": 1}}

    # Its 30 ms of CPU, then 30 times that less 1 ms free (0.87 s): wide enough apart that a loaded
    # machine stretching the 30 ms of CPU in wall time does not blur the two.
    assert timings["anonymous"] >= 0.03 + 30 * 0.029
    assert timings["ada"] < 0.03 + 30 * 0.029 - 0.3


def by_viewer(context: object) -> Budget:
    assert isinstance(context, dict)
    return Budget(max_aliases=2) if context["viewer"] == "anonymous" else Budget(max_aliases=5)


async def test_the_budget_follows_the_caller_from_the_context() -> None:
    query = "{ a: hello b: hello c: hello }"
    http, _ = make_client(budget_for=by_viewer)
    async with http:
        anonymous = await http.post("/graphql", json={"query": query}, headers=NEW)
        known = await http.post("/graphql", json={"query": query}, headers={**NEW, "x-viewer": "ada"})
        anonymous_again = await http.post("/graphql", json={"query": query}, headers=NEW)

    assert anonymous.status_code == 400 and codes(anonymous) == ["TOO_MANY_ALIASES"]
    assert known.status_code == 200 and known.json()["data"]["a"] == "Hello, world!"
    assert anonymous_again.status_code == 400 and codes(anonymous_again) == ["TOO_MANY_ALIASES"]


# --- document cache ----------------------------------------------------------------------


async def test_repeated_query_is_parsed_and_validated_once(monkeypatch: pytest.MonkeyPatch) -> None:
    http, endpoint = make_client()
    parses: list[str] = []

    def counting_parse(query: str, **options: Any) -> Any:
        parses.append(query)
        return graphql.parse(query, **options)

    monkeypatch.setattr("coalition.graphql.documents.parse", counting_parse)
    async with http:
        for name in ("a", "b", "c"):
            response = await http.post("/graphql", json={"query": HELLO, "variables": {"name": name}})
            assert response.json() == {"data": {"hello": f"Hello, {name}!"}}
        for tail in ("", " # 0.1", " # 0.2"):
            await http.post("/graphql", json={"query": HELLO + tail, "variables": {"name": "d"}})
        for _ in range(2):
            await http.post("/graphql", json={"query": "{ hello"})

    assert parses == [HELLO, "{ hello", "{ hello"]  # a syntax error is not cached
    info = endpoint.documents.cache_info()
    assert (info.hits, info.misses, info.entries) == (5, 3, 1)


# --- rejection by the context factory and failures ---------------------------------------


async def test_context_factory_rejection_401(client: httpx.AsyncClient) -> None:
    response = await client.post("/graphql", json={"query": "{ hello }"}, headers={**NEW, "x-reject": "401"})

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"] == GRAPHQL_JSON
    assert response.json() == {
        "errors": [
            {
                "message": "Unknown API key: send Authorization: Bearer <key>.",
                "extensions": {"code": "UNAUTHENTICATED"},
            }
        ]
    }
    assert calls["hello"] == 0


async def test_context_factory_rejection_429_with_retry_after(client: httpx.AsyncClient) -> None:
    response = await client.post("/graphql", json={"query": "{ hello }"}, headers={"x-reject": "429"})

    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert codes(response) == ["RATE_LIMITED"]


async def test_unexpected_exception_is_a_generic_500(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="coalition.graphql"):
        response = await client.post(
            "/graphql", json={"query": "{ hello }"}, headers={**NEW, "x-reject": "bug"}
        )

    assert response.status_code == 500
    assert response.headers["content-type"] == GRAPHQL_JSON
    assert response.json() == {
        "errors": [{"message": "Internal server error", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}]
    }
    assert "context factory bug" not in response.text
    logged = [r.getMessage() for r in caplog.records if r.name == "coalition.graphql"]
    assert any("Traceback" in m and m.endswith("KeyError (message withheld)") for m in logged)


def test_request_rejected_repr() -> None:
    rejected = RequestRejected(429, "RATE_LIMITED", "slow down", {"Retry-After": "1"})

    assert repr(rejected) == (
        "RequestRejected(status_code=429, code='RATE_LIMITED', message='slow down', headers={'Retry-After': '1'})"
    )


# --- GraphiQL ----------------------------------------------------------------------------


async def test_browser_get_without_query_gets_graphiql(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.text == "<html>GraphiQL</html>"


async def test_browser_get_with_query_gets_json(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/graphql", params={"query": "{ hello }"}, headers={"Accept": "text/html,*/*;q=0.8"}
    )

    assert response.headers["content-type"] == LEGACY_JSON
    assert response.json() == {"data": {"hello": "Hello, world!"}}


async def test_without_graphiql_a_browser_get_is_a_bad_request() -> None:
    http, _ = make_client()
    async with http:
        response = await http.get("/graphql", headers={"Accept": "text/html,*/*;q=0.8"})

    assert response.status_code == 400
    assert codes(response) == ["BAD_REQUEST"]


# --- errors and their formatting ---------------------------------------------------------


def test_coded_errors() -> None:
    assert repr(Forbidden("no")) == "Forbidden(code='FORBIDDEN', message='no')"
    assert str(Unauthenticated("who?")) == "who?"
    assert BadUserInput("bad").code == "BAD_USER_INPUT"
    assert CodedError("over", code="INSUFFICIENT_POINTS").code == "INSUFFICIENT_POINTS"
    with pytest.raises(TypeError, match="CodedError needs a code"):
        CodedError("no code")


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (GraphQLSyntaxError(Source("{"), 1, "Expected Name, found <EOF>."), "GRAPHQL_PARSE_FAILED"),
        (GraphQLError("Cannot query field 'nope' on type 'Query'."), "GRAPHQL_VALIDATION_FAILED"),
        (GraphQLError("Variable '$n' got invalid value 3; Int cannot represent 3."), "BAD_USER_INPUT"),
        (GraphQLError("Variable '$n' of required type 'Int!' was not provided."), "BAD_USER_INPUT"),
        (GraphQLError("Too deep", extensions={"code": "QUERY_TOO_DEEP"}), "QUERY_TOO_DEEP"),
        (GraphQLError("nope", path=["a"], original_error=Forbidden("nope")), "FORBIDDEN"),
    ],
)
def test_format_error_codes(error: GraphQLError, code: str) -> None:
    assert format_error(error)["extensions"]["code"] == code


def test_format_error_keeps_a_deliberate_graphql_error_from_a_resolver() -> None:
    raised = GraphQLError("Use a cursor from this connection.", extensions={"code": "BAD_CURSOR"})
    located = GraphQLError(raised.message, path=["members"], original_error=raised)

    assert format_error(located) == {
        "message": "Use a cursor from this connection.",
        "path": ["members"],
        "extensions": {"code": "BAD_CURSOR"},
    }


def test_format_error_with_a_phase_code_does_not_mask_coercion_errors() -> None:
    message = "Variable '$at' got invalid value 'x'; Expected type 'DateTime'. bad"
    error = GraphQLError(message, original_error=ValueError())

    assert format_error(error, code="BAD_USER_INPUT")["message"].startswith("Variable '$at'")
    assert format_error(error)["message"] == "Internal server error"
