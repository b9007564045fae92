"""Transport rules through the real application: limits, rate limiting, GraphiQL."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import httpx
import pytest

from coalition.app import create_app
from coalition.config import Settings


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


async def test_two_thousand_aliases_are_refused(api: Any, admin_key: str) -> None:
    query = "{ " + " ".join(f"a{i}: network {{ name }}" for i in range(2000)) + " }"
    response = await api.client.post("/graphql", json={"query": query},
                                     headers={"Accept": "application/graphql-response+json"})
    assert response.status_code == 400  # refused by the token limit, before any alias counting
    assert response.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    # Within the token limit, the alias limit (100) still refuses a wide query.
    wide = "{ " + " ".join(f"a{i}: __typename" for i in range(150)) + " }"
    response = await api.client.post(
        "/graphql", json={"query": wide}, headers={"Accept": "application/graphql-response+json"}
    )
    assert response.status_code == 400
    assert "alias" in response.json()["errors"][0]["message"].lower()


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
