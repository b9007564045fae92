"""Document limits: depth (fragments followed, cycles safe), aliases, tokens."""

from __future__ import annotations

import pytest
from graphql import (
    FragmentDefinitionNode,
    GraphQLSyntaxError,
    OperationDefinitionNode,
    build_schema,
    get_introspection_query,
    parse,
    validate,
)

from coalition.graphql.limits import QueryLimits, max_aliases_rule, max_depth_rule, selection_depth

SCHEMA = build_schema(
    """
    type Query { hello: String, node: Node }
    type Node { value: String, child: Node }
    """
)


def depth_of(query: str, limit: int = 100) -> int:
    document = parse(query)
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    [operation] = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    return selection_depth(operation.selection_set, fragments, limit)


def nested(depth: int) -> str:
    """``{ node { child ... { value } } }`` with ``depth`` fields from root to leaf."""
    return "{ node " + "{ child " * (depth - 2) + "{ value }" + " }" * (depth - 2) + " }"


def limit_errors(query: str, *, max_depth: int = 15, max_aliases: int = 100) -> list[tuple[str, str]]:
    rules = [max_depth_rule(max_depth), max_aliases_rule(max_aliases)]
    return [
        (error.message, (error.extensions or {})["code"]) for error in validate(SCHEMA, parse(query), rules)
    ]


@pytest.mark.parametrize(
    ("query", "depth"),
    [
        ("{ hello }", 1),
        ("{ node { value } }", 2),
        ("{ hello node { child { value } } }", 3),
        ("{ ... on Query { node { value } } }", 2),
        ("{ node { ...N } } fragment N on Node { child { value } }", 3),
        ("{ ...Q } fragment Q on Query { node { ...N } } fragment N on Node { value }", 2),
        ("{ node { ...N ...N } } fragment N on Node { child { ...M } } fragment M on Node { value }", 3),
        ("{ node { ...Missing } }", 1),
    ],
)
def test_selection_depth(query: str, depth: int) -> None:
    assert depth_of(query) == depth


def test_depth_counts_nested_to_the_limit_only() -> None:
    assert depth_of(nested(15), limit=15) == 15
    assert depth_of(nested(16), limit=15) == 16
    assert depth_of(nested(150), limit=15) == 16


def test_fragment_cycle_counts_as_too_deep_and_terminates() -> None:
    query = "{ node { ...A } } fragment A on Node { child { ...B } } fragment B on Node { ...A }"

    assert depth_of(query, limit=15) == 16


def test_fragment_diamond_is_linear() -> None:
    # 40 fragments each spreading the next twice: 2**40 paths, one computation each.
    fragments = " ".join(f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(40))
    query = "{ ...F0 } " + fragments + " fragment F40 on Query { hello }"

    assert depth_of(query) == 1


def test_long_fragment_chain_does_not_crash() -> None:
    fragments = " ".join(f"fragment F{i} on Query {{ ...F{i + 1} }}" for i in range(5_000))
    query = "{ ...F0 } " + fragments + " fragment F5000 on Query { hello }"

    assert depth_of(query, limit=15) in (1, 16)  # 16 when the interpreter's recursion limit is hit


def test_depth_rule_refuses_deeper_than_the_limit() -> None:
    assert limit_errors(nested(15)) == []
    [(message, code)] = limit_errors("query Deep " + nested(16))

    assert code == "QUERY_TOO_DEEP"
    assert message == (
        "Query is nested too deeply: 'Deep' goes deeper than the limit of 15 levels. "
        "Split it into several smaller queries."
    )


def test_depth_rule_checks_every_operation() -> None:
    query = f"query A {{ hello }} query B {nested(50)}"

    assert [code for _, code in limit_errors(query)] == ["QUERY_TOO_DEEP"]


def test_depth_rule_refuses_a_deep_fragment() -> None:
    query = "{ node { ...N } } fragment N on Node " + nested(16)[len("{ node ") : -2]  # 15 levels

    assert [code for _, code in limit_errors(query)] == ["QUERY_TOO_DEEP"]


def test_introspection_query_is_within_the_default_depth() -> None:
    query = get_introspection_query(descriptions=True, input_value_deprecation=True, schema_description=True)

    assert limit_errors(query) == []


def aliases(count: int) -> str:
    return " ".join(f"a{i}: hello" for i in range(count))


def test_alias_rule_allows_up_to_the_limit() -> None:
    assert limit_errors("{ " + aliases(100) + " }") == []


def test_alias_rule_refuses_2000_aliases() -> None:
    [(message, code)] = limit_errors("{ " + aliases(2_000) + " }")

    assert code == "TOO_MANY_ALIASES"
    assert (
        message
        == "Document has 2000 aliased fields; the limit is 100. Use fewer aliases or send several requests."
    )


def test_alias_rule_counts_aliases_in_fragments_and_every_operation() -> None:
    query = (
        "query A { ...F x: hello } query B { y: hello node { z: value } } "
        "fragment F on Query { " + aliases(98) + " }"
    )  # 101 aliases

    assert [code for _, code in limit_errors(query)] == ["TOO_MANY_ALIASES"]
    assert limit_errors(query, max_aliases=100 + 1) == []


def test_query_limits_parse_refuses_too_many_tokens() -> None:
    limits = QueryLimits(max_tokens=10)

    limits.parse("{ a b c d e f }")
    with pytest.raises(GraphQLSyntaxError, match="Document contains more than 10 tokens"):
        limits.parse("{ a b c d e f g h i j k }")


def test_query_limits_token_limit_counts_comments() -> None:
    with pytest.raises(GraphQLSyntaxError, match="more than 10 tokens"):
        QueryLimits(max_tokens=10).parse("#\n" * 100 + "{ a }")


def test_query_limits_rules_and_validation() -> None:
    limits = QueryLimits(max_depth=3, max_aliases=1)

    assert [rule.__name__ for rule in limits.rules] == ["MaxDepthRule_3", "MaxAliasesRule_1"]
    errors = validate(SCHEMA, parse("{ a: hello b: hello " + nested(4)[1:]), limits.rules)
    assert sorted((e.extensions or {})["code"] for e in errors) == ["QUERY_TOO_DEEP", "TOO_MANY_ALIASES"]
    with pytest.raises(ValueError, match="max_depth must be at least 1"):
        QueryLimits(max_depth=0)
