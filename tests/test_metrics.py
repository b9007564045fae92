"""``/metrics``: Prometheus text with request counts by bounded route labels, no secrets."""

from __future__ import annotations

import re
import socket
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from coalition.app import create_app
from coalition.config import Settings


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


async def test_requests_are_counted_by_route_and_status(api: Any, admin_key: str) -> None:
    await api.client.get("/healthz")
    await api.client.get("/healthz")
    await api.call("{ network { name } }", key=admin_key)
    await api.client.post("/graphql", content=b"{not json", headers={"Content-Type": "application/json"})
    await api.client.get("/no/such/page")

    response = await api.client.get("/metrics", headers={"Authorization": f"Bearer {admin_key}"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    counts = samples(response.text, "coalition_http_requests_total")
    assert counts[(("method", "GET"), ("route", "/healthz"), ("status", "200"))] == 2
    assert counts[(("method", "POST"), ("route", "/graphql"), ("status", "200"))] == 1
    assert counts[(("method", "POST"), ("route", "/graphql"), ("status", "400"))] == 1
    # Unknown paths share one label, so a scanner cannot blow up the number of series.
    assert counts[(("method", "GET"), ("route", "other"), ("status", "404"))] == 1
    latency = samples(response.text, "coalition_http_request_duration_seconds_count")
    assert latency[(("route", "/healthz"),)] == 2
    # Process figures come along (resident memory is what the RSS benchmark watches).
    assert samples(response.text, "process_resident_memory_bytes")


async def test_metrics_never_carry_keys_or_paths_verbatim(api: Any, admin_key: str) -> None:
    await api.call("{ network { name } }", key=admin_key)
    await api.client.get(f"/static/{admin_key}")
    response = await api.client.get("/metrics", headers={"Authorization": f"Bearer {admin_key}"})
    assert response.status_code == 200
    text = response.text
    assert admin_key not in text
    assert not re.search(r"coa_[A-Za-z0-9_-]{10,}", text)


METRICS_TOKEN = "scrape-token-0123456789abcdef"


async def test_metrics_on_the_api_address_need_an_admin_key_or_the_metrics_token(
        settings: Settings, db: Any, admin_key: str, make_merchant: Any) -> None:
    merchant_key = (await make_merchant("Shop")).api_key
    app = create_app(settings.with_overrides(metrics_token=METRICS_TOKEN))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            anonymous = await client.get("/metrics")
            assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
            assert anonymous.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
            assert "coalition_http_requests" not in anonymous.text
            merchant = await client.get("/metrics", headers={"Authorization": f"Bearer {merchant_key}"})
            assert merchant.status_code == 403
            assert merchant.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
            wrong = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}x"})
            assert wrong.status_code == 401
            for credential in (admin_key, METRICS_TOKEN):
                allowed = await client.get("/metrics", headers={"Authorization": f"Bearer {credential}"})
                assert allowed.status_code == 200 and "coalition_http_requests_total" in allowed.text
            # The metrics token opens /metrics only: it is no API key.
            graphql = await client.post("/graphql", json={"query": "{ network { name } }"},
                                        headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
            assert graphql.status_code == 401
    finally:
        await app.state.limiter.aclose()
        await app.state.services.db.dispose()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_metrics_port_serves_the_metrics_without_credentials(settings: Settings, db: Any) -> None:
    port = _free_port()
    app = create_app(settings.with_overrides(metrics_port=port, metrics_host="127.0.0.1",
                                             hold_sweep_interval_s=0.0))
    try:
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as api:
                await api.get("/healthz")
                assert (await api.get("/metrics")).status_code == 401  # the API's address still asks
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as scraper:
                response = await scraper.get("/metrics")
                assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
                counts = samples(response.text, "coalition_http_requests_total")
                assert counts[(("method", "GET"), ("route", "/healthz"), ("status", "200"))] == 1
                assert (await scraper.get("/graphql")).status_code == 404  # metrics only
        # Gone with the application.
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0
    finally:
        await app.state.limiter.aclose()
        await app.state.services.db.dispose()
