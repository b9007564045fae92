"""Limits on the shape of a GraphQL document, checked before it is executed.

Three cheap guards stand between a client and the resolvers:

- ``max_tokens`` stops the parser itself (graphql-core counts tokens and comments),
  so a huge document never becomes a huge AST;
- the depth rule refuses selections nested deeper than ``max_depth``, following
  fragment spreads (a fragment cycle counts as too deep, never as a hang);
- the alias rule refuses documents with more than ``max_aliases`` aliased fields,
  counted over the whole text, fragments included.

The rules are graphql-core validation rules. Run them on their own before the
specified rules (see ``documents.py``): ``OverlappingFieldsCanBeMergedRule`` is
quadratic in the number of same-named fields, so 2,000 aliases must be refused
before it runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    parse,
)
from graphql.language.visitor import SKIP, VisitorAction

QUERY_TOO_DEEP = "QUERY_TOO_DEEP"
TOO_MANY_ALIASES = "TOO_MANY_ALIASES"


def selection_depth(
    selection_set: SelectionSetNode,
    fragments: dict[str, FragmentDefinitionNode],
    limit: int,
) -> int:
    """Depth of ``selection_set`` (a leaf field is depth 1), following fragment spreads.

    Any result over ``limit`` means "too deep": counting stops there, so the recursion
    stays bounded by the limit whatever the document. Each fragment's depth is computed
    once, so repeated spreads cost nothing; a fragment cycle counts as too deep.
    """
    too_deep = limit + 1
    fragment_depths: dict[str, int] = {}

    def fragment_depth(name: str, expanding: frozenset[str]) -> int:
        if name in fragment_depths:
            return fragment_depths[name]
        if name in expanding:
            return too_deep
        fragment = fragments.get(name)
        # An unknown fragment is KnownFragmentNamesRule's business.
        found = 0 if fragment is None else depth(fragment.selection_set, limit, expanding | {name})
        fragment_depths[name] = found
        return found

    def depth(node: SelectionSetNode, budget: int, expanding: frozenset[str]) -> int:
        deepest = 0
        for selection in node.selections:
            if isinstance(selection, FieldNode):
                if selection.selection_set is None:
                    found = 1
                elif budget < 2:
                    found = too_deep
                else:
                    found = 1 + depth(selection.selection_set, budget - 1, expanding)
            elif isinstance(selection, InlineFragmentNode):
                found = depth(selection.selection_set, budget, expanding)
            elif isinstance(selection, FragmentSpreadNode):
                found = fragment_depth(selection.name.value, expanding)
            else:  # pragma: no cover - no other selection kinds exist
                found = 0
            if found > budget:
                return too_deep
            deepest = max(deepest, found)
        return deepest

    try:
        return depth(selection_set, limit, frozenset())
    except RecursionError:  # a chain of thousands of fragments
        return too_deep


def max_depth_rule(max_depth: int) -> type[ASTValidationRule]:
    """A validation rule refusing operations nested deeper than ``max_depth`` fields."""

    class MaxDepthRule(ASTValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_args: Any) -> VisitorAction:
            fragments = {
                definition.name.value: definition
                for definition in self.context.document.definitions
                if isinstance(definition, FragmentDefinitionNode)
            }
            depth = selection_depth(node.selection_set, fragments, max_depth)
            if depth > max_depth:
                name = f"'{node.name.value}'" if node.name else "the anonymous operation"
                self.report_error(
                    GraphQLError(
                        f"Query is nested too deeply: {name} goes deeper than the limit of "
                        f"{max_depth} levels. Split it into several smaller queries.",
                        node,
                        extensions={"code": QUERY_TOO_DEEP},
                    )
                )
            return SKIP

    MaxDepthRule.__name__ = f"MaxDepthRule_{max_depth}"
    return MaxDepthRule


def max_aliases_rule(max_aliases: int) -> type[ASTValidationRule]:
    """A validation rule refusing documents with more than ``max_aliases`` aliased fields."""

    class MaxAliasesRule(ASTValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            self.aliases = 0

        def enter_field(self, node: FieldNode, *_args: Any) -> None:
            if node.alias is not None:
                self.aliases += 1

        def leave_document(self, node: DocumentNode, *_args: Any) -> None:
            if self.aliases > max_aliases:
                self.report_error(
                    GraphQLError(
                        f"Document has {self.aliases} aliased fields; the limit is {max_aliases}. "
                        "Use fewer aliases or send several requests.",
                        extensions={"code": TOO_MANY_ALIASES},
                    )
                )

    MaxAliasesRule.__name__ = f"MaxAliasesRule_{max_aliases}"
    return MaxAliasesRule


@dataclass(frozen=True)
class QueryLimits:
    """The document limits of one endpoint: parse with ``parse``, validate with ``rules``."""

    max_depth: int = 15
    max_aliases: int = 100
    max_tokens: int = 10_000
    rules: tuple[type[ASTValidationRule], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("max_depth", "max_aliases", "max_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        rules = (max_depth_rule(self.max_depth), max_aliases_rule(self.max_aliases))
        object.__setattr__(self, "rules", rules)

    def parse(self, query: str) -> DocumentNode:
        """Parse ``query``, refusing (GraphQLSyntaxError) a document over ``max_tokens``."""
        # max_tokens counts comments as well, so a flood of comments is stopped too.
        return parse(query, max_tokens=self.max_tokens)
