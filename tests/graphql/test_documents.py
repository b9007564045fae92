"""The document cache: price first, then parse and validate once per query text, bounded."""

from __future__ import annotations

from typing import Any

import graphql
import pytest
from graphql import GraphQLSyntaxError, build_schema

from coalition.graphql.documents import DocumentCache, Failure
from coalition.graphql.limits import ANONYMOUS_BUDGET, DEFAULT_BUDGET, Budget, Price, price

SCHEMA = build_schema("type Query { hello(name: String): String, other: Int }")


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []

    def counting_parse(query: str, **options: Any) -> Any:
        seen.append(query)
        return graphql.parse(query, **options)

    monkeypatch.setattr("coalition.graphql.documents.parse", counting_parse)
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

    first = cache.get("{ hello }", DEFAULT_BUDGET)
    second = cache.get("{ hello }", DEFAULT_BUDGET)

    assert first is second
    assert first.ok and first.document is not None and first.errors == ()
    assert parses == ["{ hello }"]
    assert validations == [len(graphql.specified_rules)]
    assert cache.cache_info()[:3] == (1, 1, 1)


def test_syntax_errors_are_not_cached(parses: list[str]) -> None:
    cache = DocumentCache(SCHEMA)

    for _ in range(3):
        prepared = cache.get("{ hello", DEFAULT_BUDGET)

    assert prepared.failure is Failure.PARSE and prepared.document is None
    [error] = prepared.errors
    assert isinstance(error, GraphQLSyntaxError) and error.__traceback__ is None
    # A syntax error costs the parse up to the error: cheaper to repeat than to remember.
    assert parses == ["{ hello"] * 3
    assert cache.cache_info().entries == 0


def test_validation_errors_are_cached(validations: list[int]) -> None:
    cache = DocumentCache(SCHEMA)

    for _ in range(3):
        prepared = cache.get("{ nope }", DEFAULT_BUDGET)

    assert prepared.failure is Failure.VALIDATION
    assert prepared.document is not None  # the endpoint still reads its operation type
    assert [error.message for error in prepared.errors] == ["Cannot query field 'nope' on type 'Query'."]
    assert len(validations) == 1


ATTACKS = {
    "repeats": "{ " + " ".join(["hello"] * 300) + " } #0.5",
    "operations": " ".join(f"query Q{i} {{ hello }}" for i in range(1_000)),
    "aliases": "{ " + " ".join(f"a{i}: hello" for i in range(2_000)) + " }",
}


@pytest.mark.parametrize(
    ("attack", "code"),
    [("repeats", "TOO_MANY_FIELDS"), ("operations", "TOO_MANY_OPERATIONS"), ("aliases", "TOO_MANY_ALIASES")],
)
def test_over_budget_is_refused_before_parsing_and_never_cached(
    attack: str, code: str, parses: list[str], validations: list[int]
) -> None:
    cache = DocumentCache(SCHEMA)

    for _ in range(2):
        prepared = cache.get(ATTACKS[attack], DEFAULT_BUDGET)

    assert prepared.failure is Failure.BUDGET and prepared.document is None
    assert [(error.extensions or {})["code"] for error in prepared.errors] == [code]
    assert parses == [] and validations == []
    assert cache.cache_info()[:3] == (0, 0, 0)


def test_a_trailing_comment_or_whitespace_still_hits_the_cache(parses: list[str]) -> None:
    cache = DocumentCache(SCHEMA)

    first = cache.get("{ hello }", DEFAULT_BUDGET)
    for tail in (" #0.1", "\n# 0.2\n", "   ", ",\n#x"):
        assert cache.get("{ hello }" + tail, DEFAULT_BUDGET) is first

    assert parses == ["{ hello }"]
    assert cache.cache_info()[:3] == (4, 1, 1)


def test_what_is_stored_is_the_document_without_its_trailing_comment() -> None:
    cache = DocumentCache(SCHEMA)

    first = cache.get("{ hello }  #" + "x" * 1_000, DEFAULT_BUDGET)
    hit = cache.get("{ hello }", Budget(max_tokens=5))  # the comment alone would be over it

    assert hit is first and hit.ok
    assert first.price is not None and first.price.tokens == 3
    assert first.document is not None and first.document.loc is not None
    assert first.document.loc.source.body == "{ hello }"
    assert cache.cache_info().chars == len("{ hello }")


def test_a_miss_with_a_trailing_comment_prices_the_text_once(monkeypatch: pytest.MonkeyPatch) -> None:
    priced: list[str] = []

    def counting_price(query: str, budget: Budget) -> Price:
        priced.append(query)
        return price(query, budget)

    monkeypatch.setattr("coalition.graphql.documents.price", counting_price)
    text = '{ hello(name: "a b c d e f g h i j k") }  ' + "   # trailing words " * 40 + "\n ,"
    prepared = DocumentCache(SCHEMA).get(text, DEFAULT_BUDGET)
    assert priced == [text]
    key = text[:text.index("}") + 1]
    assert prepared.price == price(key, DEFAULT_BUDGET)  # as if the key alone had been priced


def test_a_hit_is_checked_against_the_budget_of_the_caller(parses: list[str]) -> None:
    cache = DocumentCache(SCHEMA)
    query = "{ " + " ".join(f"a{i}: hello" for i in range(30)) + " }"

    assert cache.get(query, DEFAULT_BUDGET).ok
    anonymous = cache.get(query, ANONYMOUS_BUDGET)
    again = cache.get(query, DEFAULT_BUDGET)

    assert anonymous.failure is Failure.BUDGET
    assert [(error.extensions or {})["code"] for error in anonymous.errors] == ["TOO_MANY_ALIASES"]
    assert again.ok and parses == [query]


def test_token_budget_is_a_budget_failure() -> None:
    prepared = DocumentCache(SCHEMA).get("{ hello other hello other }", Budget(max_tokens=5))

    assert prepared.failure is Failure.BUDGET
    assert [(error.extensions or {})["code"] for error in prepared.errors] == ["TOO_MANY_TOKENS"]


def test_least_recently_used_entry_is_evicted(parses: list[str]) -> None:
    cache = DocumentCache(SCHEMA, max_entries=2)

    cache.get("{ hello }", DEFAULT_BUDGET)
    cache.get("{ other }", DEFAULT_BUDGET)
    cache.get("{ hello }", DEFAULT_BUDGET)  # now "{ other }" is the least recently used
    cache.get("query Third { hello }", DEFAULT_BUDGET)
    cache.get("{ hello }", DEFAULT_BUDGET)
    cache.get("{ other }", DEFAULT_BUDGET)

    assert parses == ["{ hello }", "{ other }", "query Third { hello }", "{ other }"]
    assert cache.cache_info().entries == 2


def test_cache_is_bounded_by_total_query_length(parses: list[str]) -> None:
    cache = DocumentCache(SCHEMA, max_chars=30)
    short = "{ hello }"  # 9 characters
    texts = [short, "{ other }", "query A { hello }", "{" + " " * 40 + "hello }"]

    for text in texts:
        cache.get(text, DEFAULT_BUDGET)

    # 9 + 9 + 17 > 30 evicted the oldest; the 48-character text never entered.
    assert cache.cache_info()[2:5] == (2, 1024, 26)
    for text in ("{ other }", "query A { hello }", texts[3]):
        cache.get(text, DEFAULT_BUDGET)
    assert parses == [*texts, texts[3]]


def test_cache_size_zero_disables_caching(parses: list[str]) -> None:
    cache = DocumentCache(SCHEMA, max_entries=0)

    cache.get("{ hello }", DEFAULT_BUDGET)
    cache.get("{ hello }", DEFAULT_BUDGET)

    assert parses == ["{ hello }", "{ hello }"]


def test_clear_resets_entries_and_counters() -> None:
    cache = DocumentCache(SCHEMA)
    cache.get("{ hello }", DEFAULT_BUDGET)
    cache.get("{ hello }", DEFAULT_BUDGET)

    cache.clear()

    assert cache.cache_info()[:3] == (0, 0, 0)
