"""The document cache: parse and validate once per query text, bounded."""

from __future__ import annotations

from typing import Any

import graphql
import pytest
from graphql import GraphQLSyntaxError, build_schema

from coalition.graphql.documents import DocumentCache, Failure
from coalition.graphql.limits import QueryLimits

SCHEMA = build_schema("type Query { hello(name: String): String, other: Int }")


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []

    def counting_parse(query: str, **options: Any) -> Any:
        seen.append(query)
        return graphql.parse(query, **options)

    monkeypatch.setattr("coalition.graphql.limits.parse", counting_parse)
    return seen


@pytest.fixture
def validations(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    seen: list[int] = []

    def counting_validate(*args: Any, **kwargs: Any) -> Any:
        seen.append(len(args[2]))
        return graphql.validate(*args, **kwargs)

    monkeypatch.setattr("coalition.graphql.documents.validate", counting_validate)
    return seen


def test_valid_document_is_prepared_once(parses: list[str], validations: list[int]) -> None:
    cache = DocumentCache(SCHEMA)

    first = cache.get("{ hello }")
    second = cache.get("{ hello }")

    assert first is second
    assert first.ok and first.document is not None and first.errors == ()
    assert parses == ["{ hello }"]
    assert len(validations) == 2  # the limit rules, then the specified rules
    assert cache.cache_info()[:3] == (1, 1, 1)


def test_syntax_errors_are_cached(parses: list[str]) -> None:
    cache = DocumentCache(SCHEMA)

    for _ in range(3):
        prepared = cache.get("{ hello")

    assert prepared.failure is Failure.PARSE and prepared.document is None
    [error] = prepared.errors
    assert isinstance(error, GraphQLSyntaxError) and error.__traceback__ is None
    assert parses == ["{ hello"]


def test_validation_errors_are_cached(validations: list[int]) -> None:
    cache = DocumentCache(SCHEMA)

    for _ in range(3):
        prepared = cache.get("{ nope }")

    assert prepared.failure is Failure.VALIDATION
    assert prepared.document is not None  # the endpoint still reads its operation type
    assert [error.message for error in prepared.errors] == ["Cannot query field 'nope' on type 'Query'."]
    assert len(validations) == 2


def test_limit_failures_skip_the_specified_rules(validations: list[int]) -> None:
    cache = DocumentCache(SCHEMA, QueryLimits(max_aliases=10))

    prepared = cache.get("{ " + " ".join(f"a{i}: hello" for i in range(2_000)) + " }")

    assert [(error.extensions or {})["code"] for error in prepared.errors] == ["TOO_MANY_ALIASES"]
    assert validations == [2]  # only the two limit rules ran


def test_token_limit_is_a_parse_failure() -> None:
    prepared = DocumentCache(SCHEMA, QueryLimits(max_tokens=5)).get("{ hello other hello other }")

    assert prepared.failure is Failure.PARSE


def test_least_recently_used_entry_is_evicted(parses: list[str]) -> None:
    cache = DocumentCache(SCHEMA, max_entries=2)

    cache.get("{ hello }")
    cache.get("{ other }")
    cache.get("{ hello }")  # now "{ other }" is the least recently used
    cache.get("query Third { hello }")
    cache.get("{ hello }")
    cache.get("{ other }")

    assert parses == ["{ hello }", "{ other }", "query Third { hello }", "{ other }"]
    assert cache.cache_info().entries == 2


def test_cache_is_bounded_by_total_query_length(parses: list[str]) -> None:
    cache = DocumentCache(SCHEMA, max_chars=30)
    short = "{ hello }"  # 9 characters
    texts = [short, "{ other }", "query A { hello }", "{" + " " * 40 + "hello }"]

    for text in texts:
        cache.get(text)

    # 9 + 9 + 17 > 30 evicted the oldest; the 48-character text never entered.
    assert cache.cache_info()[2:5] == (2, 1024, 26)
    for text in ("{ other }", "query A { hello }", texts[3]):
        cache.get(text)
    assert parses == [*texts, texts[3]]


def test_cache_size_zero_disables_caching(parses: list[str]) -> None:
    cache = DocumentCache(SCHEMA, max_entries=0)

    cache.get("{ hello }")
    cache.get("{ hello }")

    assert parses == ["{ hello }", "{ hello }"]


def test_clear_resets_entries_and_counters() -> None:
    cache = DocumentCache(SCHEMA)
    cache.get("{ hello }")
    cache.get("{ hello }")

    cache.clear()

    assert cache.cache_info()[:3] == (0, 0, 0)
