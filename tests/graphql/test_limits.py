"""Pricing a document before it is parsed: every budget, the early stop, and agreement with the AST."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    get_introspection_query,
    parse,
)

from coalition.config import QUERY_BUDGET_NAMES, Settings
from coalition.graphql.limits import (
    ANONYMOUS_BUDGET,
    BUDGET_NAMES,
    DEFAULT_BUDGET,
    Budget,
    Price,
    price,
    query_budgets,
)

INTROSPECTION = get_introspection_query(
    descriptions=True, input_value_deprecation=True, schema_description=True, specified_by_url=True,
    directive_is_repeatable=True,
)


def refusal(query: str, budget: Budget = DEFAULT_BUDGET) -> tuple[str, str]:
    with pytest.raises(GraphQLError) as caught:
        price(query, budget)
    return (caught.value.extensions or {})["code"], caught.value.message


def nested(depth: int) -> str:
    """``{ node { child ... { value } } }`` with ``depth`` fields from root to leaf."""
    return "{ node " + "{ child " * (depth - 2) + "{ value }" + " }" * (depth - 2) + " }"


# --- the attacks of issue 13 -------------------------------------------------------------------


def test_three_hundred_repeats_of_one_field_are_refused_at_the_eleventh() -> None:
    query = "{ " + " ".join(["network{name}"] * 300) + " } #0.12345"

    code, message = refusal(query)

    assert code == "TOO_MANY_FIELDS"
    assert message.startswith("Document is over budget: at least 11 selections of 'network' in one selection set")


def test_a_thousand_operations_are_refused() -> None:
    query = " ".join(f"query Q{i} {{ network {{ name }} }}" for i in range(1_000))

    assert refusal(query)[0] == "TOO_MANY_OPERATIONS"
    assert refusal(query, ANONYMOUS_BUDGET)[1].startswith("Document is over budget: at least 6 operations")


def test_two_thousand_aliases_are_refused() -> None:
    query = "{ " + " ".join(f"a{i}: network {{ name }}" for i in range(2_000)) + " }"

    code, message = refusal(query)

    assert code == "TOO_MANY_ALIASES"
    assert message == (
        "Document is over budget: at least 101 aliased fields; the limit is 100. "
        "Use fewer aliases or send several requests."
    )


@pytest.mark.parametrize(
    "junk",
    [
        "?" * 100_000,
        "#" + "x" * 99_999,
        " " * 99_990 + "{ a }",
        '{ a(x: "' + "x" * 99_980 + '") }',
        '{ a(x: """' + "x" * 99_980,
        "{ " + "abcdefghij " * 9_000 + "}",
        "{ a(x: " + "[" * 50_000,
        "{" * 100_000,
        "... " * 25_000,
    ],
    ids=["invalid-chars", "comment", "whitespace", "string", "open-block-string", "names", "brackets",
         "braces", "spreads"],
)
def test_a_hundred_kilobytes_of_junk_is_refused_quickly(junk: str) -> None:
    started = time.perf_counter()
    for budget in (DEFAULT_BUDGET, ANONYMOUS_BUDGET):
        with pytest.raises(GraphQLError):
            price(junk, budget)
    # ~0.3 ms each on the reference machine; generous for a loaded CI box.
    assert time.perf_counter() - started < 0.5


def test_the_pass_stops_at_the_first_budget_exceeded() -> None:
    query = "{ " + "a " * 11 + "}" + " { b }" * 200_000  # 1.2 MB, over budget at its 11th field

    started = time.perf_counter()
    code, _ = refusal(query)

    assert code == "TOO_MANY_FIELDS"
    assert time.perf_counter() - started < 0.2  # reading it all would take ~0.5 s or more


def test_a_refusal_points_where_the_pass_stopped() -> None:
    with pytest.raises(GraphQLError) as caught:
        price("query A { a }\r\nquery B { b }\nquery C { c }", Budget(max_operations=2))

    [location] = caught.value.locations or []
    assert (location.line, location.column) == (3, 9)


# --- each budget --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("budget", "within", "over", "code"),
    [
        (Budget(max_tokens=10), "{ a b c d e f g h }", "{ a b c d e f g h i }", "TOO_MANY_TOKENS"),
        (Budget(max_tokens=10), "#\n" * 7 + "{ a }", "#\n" * 8 + "{ a }", "TOO_MANY_TOKENS"),
        # "}" after 126 spaces is 127 characters: 1 + 7 tokens; after 127 spaces, 1 + 8.
        (Budget(max_tokens=10), "{ a" + " " * 126 + "}", "{ a" + " " * 127 + "}", "TOO_MANY_TOKENS"),
        (Budget(max_depth=3), "{ a { b { c } } }", "{ a { b { c { d } } } }", "QUERY_TOO_DEEP"),
        (Budget(max_depth=3), "{ a { ... on T { b { c } } } }", "{ a { ... on T { b { c { d } } } } }",
         "QUERY_TOO_DEEP"),
        (Budget(max_fields=4), "{ a b { c d } }", "{ a b { c d e } }", "TOO_MANY_FIELDS"),
        (Budget(max_fields=4), "{ a { b } a { b } }", "{ a { b } a { b } c }", "TOO_MANY_FIELDS"),
        (Budget(max_repeats=2), "{ a a b { a a } ... on Q { b } }", "{ a a b { a } ... on Q { a } }",
         "TOO_MANY_FIELDS"),
        (Budget(max_repeats=2), "{ a x: b x: c }", "{ a x: b x: c x: d }", "TOO_MANY_FIELDS"),
        (Budget(max_aliases=2), "{ x: a y: b { c } }", "{ x: a y: b { z: c } }", "TOO_MANY_ALIASES"),
        (Budget(max_operations=2), "query A { a } { b } fragment F on Q { c }",
         "query A { a } { b } mutation C { c }", "TOO_MANY_OPERATIONS"),
        (Budget(max_fragments=1), "{ ...F } fragment F on Q { a }",
         "{ ...F } fragment F on Q { a } fragment G on Q { a }", "TOO_MANY_FRAGMENTS"),
        (Budget(max_page_size=100), "{ m(first: 100) { e(last: 100) { n } } }", "{ m(first: 101) { n } }",
         "PAGE_TOO_LARGE"),
        (Budget(max_page_size=100), "{ m(x: {first: 1000}, y: [1000]) { n } }", "{ m(a: 1, last: 1000) { n } }",
         "PAGE_TOO_LARGE"),
    ],
)
def test_each_budget_allows_its_limit_and_refuses_beyond(budget: Budget, within: str, over: str, code: str) -> None:
    price(within, budget)
    assert refusal(over, budget)[0] == code


def test_fragment_spreads_cost_their_fragments_fields_each_time() -> None:
    query = "{ a { ...F } b { ...F } c { ...F } } fragment F on T { x y z }"

    assert price(query, DEFAULT_BUDGET).fields == 3 + 3 * 3
    assert refusal(query, Budget(max_fields=11)) == (
        "TOO_MANY_FIELDS",
        "Document is over budget: 12 field selections (fragments followed); the limit is 11. "
        "Select each field once and send several smaller requests.",
    )


def test_fragment_spreads_add_their_depth() -> None:
    query = "{ a { b { ...F } } } fragment F on T { c { d } }"

    assert price(query, DEFAULT_BUDGET).depth == 4
    assert refusal(query, Budget(max_depth=3))[0] == "QUERY_TOO_DEEP"


def test_a_diamond_of_fragments_is_priced_in_linear_time_and_refused() -> None:
    # 40 fragments each spreading the next twice: 2**40 paths, one computation each.
    fragments = " ".join(f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(40))
    query = "{ ...F0 } " + fragments + " fragment F40 on Query { hello }"

    assert refusal(query, Budget(max_fragments=100))[0] == "TOO_MANY_FIELDS"


def test_a_fragment_cycle_is_too_deep_and_terminates() -> None:
    query = "{ node { ...A } } fragment A on Node { child { ...B } } fragment B on Node { ...A }"

    assert refusal(query)[0] == "QUERY_TOO_DEEP"


def test_a_long_chain_of_fragments_does_not_crash() -> None:
    fragments = " ".join(f"fragment F{i} on Query {{ ...F{i + 1} }}" for i in range(5_000))
    query = "{ ...F0 } " + fragments + " fragment F5000 on Query { hello }"

    assert refusal(query, Budget(max_fragments=10_000, max_tokens=100_000))[0] in ("QUERY_TOO_DEEP", "TOO_MANY_FIELDS")


def test_deeply_nested_values_are_refused_before_the_parser_recurses() -> None:
    assert refusal("{ a(x: " + "[" * 100 + "]" * 100 + ") }")[0] == "QUERY_TOO_DEEP"
    assert refusal("{ a(x: " + "{y: " * 100 + "1" + "}" * 100 + ") }")[0] == "QUERY_TOO_DEEP"


def test_nothing_in_values_strings_or_comments_counts_as_a_field() -> None:
    query = (
        'query Q($v: In = {a: {b: [1, 2]}}) @dir(x: {c: 1}) '
        '{ f(a: {x: {y: [{z: 1}]}}, s: "{ a a a }", b: """ { b b } """) @skip(if: false) # { c c c }\n'
        '  ... @include(if: true) { g } ... on T { h } ...F }'
        ' fragment F on T @dir(a: 1) { i }'
    )

    cost = price(query, Budget(max_repeats=1))

    assert (cost.fields, cost.aliases, cost.operations, cost.fragments, cost.depth) == (4, 0, 1, 1, 1)


def test_the_key_drops_trailing_comments_and_whitespace_only() -> None:
    base = "query A {\n  network { name }\n}"

    for variant in (base, base + "  #0.123\n", base + "\n# a\n# b\n\n", base + ",,"):
        assert price(variant, DEFAULT_BUDGET).key == base
    assert price("# leading\n" + base, DEFAULT_BUDGET).key == "# leading\n" + base


# --- the price agrees with the parsed document -------------------------------------------------


def ast_counts(document: DocumentNode) -> tuple[int, int, int, int, int]:
    """Fields (fragments followed), depth, aliases, operations, fragments, from the AST."""
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]

    def walk(node: SelectionSetNode, level: int) -> tuple[int, int]:
        fields, deepest = 0, 0
        for selection in node.selections:
            if isinstance(selection, FieldNode):
                fields += 1
                deepest = max(deepest, level)
                if selection.selection_set is not None:
                    inner, depth = walk(selection.selection_set, level + 1)
                    fields, deepest = fields + inner, max(deepest, depth)
            elif isinstance(selection, InlineFragmentNode):
                inner, depth = walk(selection.selection_set, level)
                fields, deepest = fields + inner, max(deepest, depth)
            elif isinstance(selection, FragmentSpreadNode):
                inner, depth = walk(fragments[selection.name.value].selection_set, level)
                fields, deepest = fields + inner, max(deepest, depth)
        return fields, deepest

    aliases = 0

    def count_aliases(node: SelectionSetNode) -> None:
        nonlocal aliases
        for selection in node.selections:
            if isinstance(selection, FieldNode) and selection.alias is not None:
                aliases += 1
            if getattr(selection, "selection_set", None) is not None:
                count_aliases(selection.selection_set)  # type: ignore[attr-defined]

    for definition in [*operations, *fragments.values()]:
        count_aliases(definition.selection_set)
    walks = [walk(operation.selection_set, 1) for operation in operations]
    return sum(f for f, _ in walks), max(d for _, d in walks), aliases, len(operations), len(fragments)


def readme_documents() -> list[str]:
    """The GraphQL documents of the README walk-through's ``gql "$KEY" '<document>'`` steps."""
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    return re.findall(r"gql \"\$?\w*\" '(.*?)'", readme, re.DOTALL)


@pytest.mark.parametrize(
    "query",
    [
        INTROSPECTION,
        get_introspection_query(descriptions=False),
        nested(15),
        "query A { a: x { b: y { ...F } } ... on Q { z } } fragment F on Y { w { ...G } } fragment G on W { v }",
        "{ a { ...F } b { ...F } } fragment F on T { c d { e } }",
        *readme_documents(),
    ],
)
def test_the_price_matches_the_parsed_document(query: str) -> None:
    cost = price(query, DEFAULT_BUDGET)

    assert (cost.fields, cost.depth, cost.aliases, cost.operations, cost.fragments) == ast_counts(parse(query))


def test_the_readme_has_documents_to_price() -> None:
    assert len(readme_documents()) >= 5


def test_introspection_is_within_the_anonymous_budget() -> None:
    cost = price(INTROSPECTION, ANONYMOUS_BUDGET)

    assert cost.over(ANONYMOUS_BUDGET) is None
    assert 200 < cost.fields <= ANONYMOUS_BUDGET.max_fields and cost.depth <= ANONYMOUS_BUDGET.max_depth


# --- budgets and prices ---------------------------------------------------------------------


def test_price_over_rechecks_a_cached_price_against_another_budget() -> None:
    cost = price("{ a: x b: x c: x }", DEFAULT_BUDGET)

    assert cost == Price(tokens=11, depth=1, fields=3, repeats=1, aliases=3, operations=1, fragments=0, page=0,
                         key="{ a: x b: x c: x }")
    assert cost.over(DEFAULT_BUDGET) is None
    error = cost.over(Budget(max_aliases=2))
    assert error is not None and error.extensions == {"code": "TOO_MANY_ALIASES"}
    assert error.message.startswith("Document is over budget: 3 aliased fields; the limit is 2.")


def test_budget_overrides_and_validation() -> None:
    assert DEFAULT_BUDGET.with_overrides({"fields": 5, "page_size": 10}) == Budget(max_fields=5, max_page_size=10)
    with pytest.raises(ValueError, match="unknown query budget nodes"):
        DEFAULT_BUDGET.with_overrides({"nodes": 1})
    with pytest.raises(ValueError, match="max_depth must be at least 1"):
        Budget(max_depth=0)
    assert BUDGET_NAMES == QUERY_BUDGET_NAMES


class Caller:
    def __init__(self, caller: object | None) -> None:
        self.caller = caller


def test_query_budgets_pick_by_caller_and_keep_the_anonymous_one_smaller() -> None:
    budget_for = query_budgets(Settings())
    assert budget_for(Caller(None)) == ANONYMOUS_BUDGET
    assert budget_for(object()) == ANONYMOUS_BUDGET  # no caller at all: a stranger
    assert budget_for(Caller("merchant")) == DEFAULT_BUDGET

    budget_for = query_budgets(
        Settings(query_budget={"fields": 100}, anonymous_query_budget={"fields": 500, "aliases": 5})
    )
    assert budget_for(Caller("merchant")).max_fields == 100
    assert budget_for(Caller(None)).max_fields == 100  # never more than a caller with a key
    assert budget_for(Caller(None)).max_aliases == 5
