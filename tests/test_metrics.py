"""``/metrics``: Prometheus text with request counts by bounded route labels, no secrets."""

from __future__ import annotations

import re
from typing import Any

from prometheus_client.parser import text_string_to_metric_families


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

    response = await api.client.get("/metrics")
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
    text = (await api.client.get("/metrics")).text
    assert admin_key not in text
    assert not re.search(r"coa_[A-Za-z0-9_-]{10,}", text)
