"""Transport rules through the real application: limits, rate limiting, GraphiQL."""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import get_introspection_query
from starlette.routing import Route

from coalition.app import create_app
from coalition.config import Settings
from coalition.graphql.documents import DocumentCache
from coalition.graphql.limits import DEFAULT_BUDGET


async def test_a_deep_query_is_refused_before_execution(api: Any, admin_key: str) -> None:
    deep = "{ viewer { ... on MerchantViewer { merchant { " + "__typename " + "} } } }"
    nested = "{ node(id: \"x\") { " + "... on Transaction { reverses { " * 25 + "id" + " } }" * 25 + " } }"
    ok = await api.client.post("/graphql", json={"query": deep}, headers={"Authorization": f"Bearer {admin_key}"})
    assert ok.status_code == 200
    refused = await api.client.post("/graphql", json={"query": nested},
                                    headers={"Authorization": f"Bearer {admin_key}",
                                             "Accept": "application/graphql-response+json"})
    assert refused.status_code == 400
    body = refused.json()
    assert "data" not in body
    assert body["errors"][0]["extensions"]["code"] == "QUERY_TOO_DEEP"


NEW = {"Accept": "application/graphql-response+json"}

# The three attacks of issue 13, item 2, and a body of junk.
ATTACKS = {
    "repeated-fields": ("{ " + " ".join(["network{name}"] * 300) + " } #0.7231", "TOO_MANY_FIELDS"),
    "operations": (" ".join(f"query Q{i} {{ network {{ name }} }}" for i in range(1_000)), "TOO_MANY_OPERATIONS"),
    "aliases": ("{ " + " ".join(f"a{i}: network {{ name }}" for i in range(2_000)) + " }", "TOO_MANY_ALIASES"),
    "junk": ("#" + "x" * 99_000, "TOO_MANY_TOKENS"),
}


@pytest.fixture
def no_parsing(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records any document that reaches graphql-core's parser or validation."""
    reached: list[str] = []

    def spy(name: str, real: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            reached.append(name)
            return real(*args, **kwargs)
        return wrapper

    import coalition.graphql.documents as documents

    monkeypatch.setattr(documents, "parse", spy("parse", documents.parse))
    monkeypatch.setattr(documents, "validate", spy("validate", documents.validate))
    return reached


@pytest.mark.parametrize("attack", sorted(ATTACKS))
@pytest.mark.parametrize("authenticated", [False, True], ids=["anonymous", "admin"])
async def test_the_attacks_of_issue_13_are_refused_before_parsing(
    api: Any, admin_key: str, no_parsing: list[str], attack: str, authenticated: bool
) -> None:
    query, code = ATTACKS[attack]
    headers = {**NEW, "Authorization": f"Bearer {admin_key}"} if authenticated else NEW

    response = await api.client.post("/graphql", json={"query": query}, headers=headers)

    assert response.status_code == 400
    body = response.json()
    assert "data" not in body
    assert [error["extensions"]["code"] for error in body["errors"]] == [code]
    assert body["errors"][0]["message"].startswith("Document is over budget: ")
    assert no_parsing == []  # neither parsed nor validated
    [endpoint] = [route.endpoint for route in api.client._transport.app.routes
                  if route.path == "/graphql" and isinstance(route, Route)]  # (not the WebSocket route)
    assert endpoint.documents.cache_info().entries == 0


async def test_a_trailing_comment_does_not_defeat_the_document_cache(api: Any, no_parsing: list[str]) -> None:
    for tail in ("", " #0.1", " #0.2", "\n#0.3\n"):
        response = await api.client.post("/graphql", json={"query": "{ network { name } }" + tail})
        assert response.status_code == 200 and response.json()["data"]["network"]["name"]

    assert no_parsing == ["parse", "validate"]


async def test_anonymous_callers_get_the_smaller_budget(api: Any, admin_key: str) -> None:
    query = "{ " + " ".join(f"a{i}: network {{ name }}" for i in range(30)) + " }"  # 30 aliases: 20 < 30 < 100

    anonymous = await api.client.post("/graphql", json={"query": query}, headers=NEW)
    admin = await api.client.post("/graphql", json={"query": query},
                                  headers={**NEW, "Authorization": f"Bearer {admin_key}"})
    anonymous_again = await api.client.post("/graphql", json={"query": query}, headers=NEW)

    assert anonymous.status_code == 400
    assert anonymous.json()["errors"][0]["extensions"]["code"] == "TOO_MANY_ALIASES"
    assert "the limit is 20" in anonymous.json()["errors"][0]["message"]
    assert admin.status_code == 200 and len(admin.json()["data"]) == 30
    assert anonymous_again.status_code == 400  # the cached document is re-checked for each caller


@pytest.mark.parametrize("authenticated", [False, True], ids=["anonymous", "admin"])
async def test_graphiqls_introspection_query_runs(api: Any, admin_key: str, authenticated: bool) -> None:
    query = get_introspection_query(descriptions=True, input_value_deprecation=True, schema_description=True,
                                    specified_by_url=True, directive_is_repeatable=True)
    headers = {**NEW, "Authorization": f"Bearer {admin_key}"} if authenticated else NEW

    response = await api.client.post("/graphql", json={"query": query, "operationName": "IntrospectionQuery"},
                                     headers=headers)

    assert response.status_code == 200, response.json()
    assert "errors" not in response.json()
    assert any(t["name"] == "Member" for t in response.json()["data"]["__schema"]["types"])


def test_the_readme_operations_pass_pricing_and_validation() -> None:
    from coalition.graphql.schema import graphql_schema

    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    # the walk-through's shell block: gql "$KEY" '<document>' [jq variables] (tests/test_readme.py runs it)
    documents = re.findall(r"gql \"\$?\w*\" '(.*?)'", readme, re.DOTALL)
    cache = DocumentCache(graphql_schema())

    assert len(documents) >= 5
    for document in documents:
        prepared = cache.get(document, DEFAULT_BUDGET)
        assert prepared.ok, (document, prepared.errors)


async def test_malformed_requests_get_4xx_with_a_graphql_body(api: Any) -> None:
    bad_json = await api.client.post("/graphql", content=b"{not json", headers={"Content-Type": "application/json"})
    assert bad_json.status_code == 400 and bad_json.json()["errors"]
    no_query = await api.client.post("/graphql", json={"variables": {}})
    assert no_query.status_code == 400 and no_query.json()["errors"]
    mutation_over_get = await api.client.get("/graphql", params={"query": "mutation { __typename }"})
    assert mutation_over_get.status_code == 405


async def test_graphiql_is_served_to_a_browser_with_local_assets(api: Any) -> None:
    page = await api.client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "https://" not in page.text  # no CDN
    for asset in ("graphiql.min.js", "graphiql.min.css", "react.production.min.js"):
        assert asset in page.text
        served = await api.client.get(f"/static/{asset}")
        assert served.status_code == 200 and len(served.content) > 1000


async def test_rate_limit_answers_429_with_retry_after(settings: Settings, db: Any, admin_key: str) -> None:
    limited = create_app(settings.with_overrides(rate_limit_per_s=3))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=limited), base_url="http://t") as client:
            # The limiter counts per wall-clock second, so a slow run may cross into a new
            # window: count the answers per second, and only those sent and answered in one.
            ok_per_second: Counter[int] = Counter()
            refused = None
            for _ in range(8):
                sent = int(time.time())
                response = await client.post("/graphql", json={"query": "{ viewer { __typename } }"},
                                             headers={"Authorization": f"Bearer {admin_key}"})
                if response.status_code == 429:
                    refused = response
                elif response.status_code == 200 and int(time.time()) == sent:
                    ok_per_second[sent] += 1
                else:
                    assert response.status_code == 200
            assert max(ok_per_second.values(), default=0) <= 3
            assert refused is not None
            assert int(refused.headers["Retry-After"]) >= 1
            assert refused.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    finally:
        await limited.state.limiter.aclose()
        await limited.state.services.db.dispose()


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
async def test_probes_answer_json(api: Any, path: str) -> None:
    assert (await api.client.get(path)).json()["status"] == "ok"
