"""Cost before work: price a GraphQL document in one pass over its text, before parsing it.

graphql-core's parser and validation are pure Python, and some of the specified rules are
quadratic (``OverlappingFieldsCanBeMergedRule`` on the same field selected hundreds of
times: 300 copies of ``network { name }`` cost ~0.5 s, 1,000 operations ~0.7 s). So every
document is priced first by :func:`price`, a single pass over its tokens with a compiled
regular expression (the scanning runs in C) and a small state machine, which stops at the
first budget it exceeds. Only a document within its :class:`Budget` is parsed and
validated. What is priced:

======================  ==========================================  =========================
measure                 counts                                      code when over budget
======================  ==========================================  =========================
``tokens``              lexical tokens, comments included, and one  ``TOO_MANY_TOKENS``
                        more for every 16 characters
``depth``               fields nested in fields, fragments          ``QUERY_TOO_DEEP``
                        followed (brackets of any kind are bounded
                        too, so the parser's recursion is)
``fields``              field selections, repeats counted, each     ``TOO_MANY_FIELDS``
                        fragment counted once per spread
``repeats``             selections of one response name in one      ``TOO_MANY_FIELDS``
                        selection set (inline fragments included)
``aliases``             aliased fields over the whole text          ``TOO_MANY_ALIASES``
``operations``          operation definitions                       ``TOO_MANY_OPERATIONS``
``fragments``           fragment definitions                        ``TOO_MANY_FRAGMENTS``
``page``                literal ``first:``/``last:`` arguments      ``PAGE_TOO_LARGE``
======================  ==========================================  =========================

The pass is conservative, not a parser: it never refuses a document that is within budget
as graphql-core reads it, and text it cannot make sense of costs at least a token per
character run, so junk is refused by the token budget after a few thousand characters.
Whatever it lets through is still parsed and validated as before.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Final

from graphql import GraphQLError, SourceLocation

from coalition.config import QUERY_BUDGET_NAMES, Settings

QUERY_TOO_DEEP: Final = "QUERY_TOO_DEEP"
TOO_MANY_ALIASES: Final = "TOO_MANY_ALIASES"
TOO_MANY_TOKENS: Final = "TOO_MANY_TOKENS"
TOO_MANY_FIELDS: Final = "TOO_MANY_FIELDS"
TOO_MANY_OPERATIONS: Final = "TOO_MANY_OPERATIONS"
TOO_MANY_FRAGMENTS: Final = "TOO_MANY_FRAGMENTS"
PAGE_TOO_LARGE: Final = "PAGE_TOO_LARGE"

# Connection arguments whose literal value is a list size.
PAGE_ARGUMENTS: Final = frozenset({"first", "last"})


@dataclass(frozen=True, slots=True)
class Budget:
    """What one document may cost. Every limit is inclusive (``max_fields=10`` allows 10).

    ``slowdown`` is how a caller pays for what it costs beyond that: its answer waits
    ``slowdown`` times the event loop's CPU time its request took beyond a millisecond (a
    new text to parse and validate, a large selection to execute). A client that repeats costly requests in a
    loop then gets at most ``1 / (slowdown + 1)`` of the event loop per connection, while the
    same few texts, once cached, answer at once.
    """

    max_tokens: int = 5_000
    max_depth: int = 15
    max_fields: int = 1_000
    max_repeats: int = 10
    max_aliases: int = 100
    max_operations: int = 20
    max_fragments: int = 50
    max_page_size: int = 100
    slowdown: int = 0

    def with_overrides(self, overrides: Mapping[str, int]) -> Budget:
        """This budget with some limits changed, by short name: ``{"fields": 500}``."""
        unknown = sorted(set(overrides) - set(BUDGET_NAMES))
        if unknown:
            raise ValueError(f"unknown query budget {', '.join(unknown)}: use {', '.join(BUDGET_NAMES)}")
        return replace(self, **{_FIELDS[name]: value for name, value in overrides.items()})

    def __post_init__(self) -> None:
        for name in self.__slots__:
            value = getattr(self, name)
            if value < (0 if name == "slowdown" else 1):
                raise ValueError(f"{name} must be at least {0 if name == 'slowdown' else 1}, got {value}")


BUDGET_NAMES: Final = QUERY_BUDGET_NAMES  # the names settings may override (coalition.config reads them)
_FIELDS: Final = {name: name if name == "slowdown" else f"max_{name}" for name in BUDGET_NAMES}

DEFAULT_BUDGET: Final = Budget()

# A caller without a credential: enough for the public fields and for GraphiQL's (or any
# client generator's) introspection query (about 230 fields, 15 levels, 220 tokens), and
# slowed down by what it costs (a first introspection waits ~0.2 s; `network` not at all).
ANONYMOUS_BUDGET: Final = Budget(
    max_tokens=1_000, max_fields=300, max_aliases=20, max_operations=5, max_fragments=20, slowdown=20
)


@dataclass(frozen=True, slots=True)
class Price:
    """What a document within its budget costs.

    ``key`` is its text up to the end of its last token that is not a comment: the same
    document with any trailing comments or whitespace has the same key, and every token (so
    every location in an error) is where the client wrote it.
    """

    tokens: int
    depth: int
    fields: int
    repeats: int
    aliases: int
    operations: int
    fragments: int
    page: int
    key: str
    key_tokens: int = field(default=0, compare=False)  # ``key``'s own: trailing comments and whitespace add some

    def of_key(self) -> Price:
        """The price of ``key`` itself: the same but for the trailing text's tokens (no second pass)."""
        return replace(self, tokens=self.key_tokens)

    def over(self, budget: Budget) -> GraphQLError | None:
        """The refusal of a document of this price under ``budget`` (None if within it)."""
        checks = (
            (self.tokens, budget.max_tokens, TOO_MANY_TOKENS, "tokens"),
            (self.depth, budget.max_depth, QUERY_TOO_DEEP, "levels of nested fields"),
            (self.fields, budget.max_fields, TOO_MANY_FIELDS, "field selections"),
            (self.repeats, budget.max_repeats, TOO_MANY_FIELDS, "selections of one field in one selection set"),
            (self.aliases, budget.max_aliases, TOO_MANY_ALIASES, "aliased fields"),
            (self.operations, budget.max_operations, TOO_MANY_OPERATIONS, "operations"),
            (self.fragments, budget.max_fragments, TOO_MANY_FRAGMENTS, "fragment definitions"),
            (self.page, budget.max_page_size, PAGE_TOO_LARGE, "items asked of one list (first/last)"),
        )
        for value, limit, code, what in checks:
            if value > limit:
                return over_budget(code, what, value, limit)
        return None


_ADVICE = {
    TOO_MANY_TOKENS: "Send a shorter document (comments count too) or split it into several requests.",
    QUERY_TOO_DEEP: "Split it into several smaller queries.",
    TOO_MANY_FIELDS: "Select each field once and send several smaller requests.",
    TOO_MANY_ALIASES: "Use fewer aliases or send several requests.",
    TOO_MANY_OPERATIONS: "Send only the operations you run, one request each.",
    TOO_MANY_FRAGMENTS: "Send only the fragments the operation uses.",
    PAGE_TOO_LARGE: "Ask for a smaller page and follow the cursor.",
}


def over_budget(
    code: str, what: str, value: int, limit: int, query: str | None = None, position: int = 0
) -> GraphQLError:
    """The error refusing a document: which budget, by how much, and what to do.

    With ``query``, the pass stopped at ``position``: the value is a lower bound, and the
    error's location points there.
    """
    at_least = "at least " if query is not None else ""
    error = GraphQLError(
        f"Document is over budget: {at_least}{value} {what}; the limit is {limit}. {_ADVICE[code]}",
        extensions={"code": code},
    )
    if query is not None:
        # graphql-core's get_location walks every line of the text; this stays in C.
        before = query[:position]
        line = before.count("\n") + before.count("\r") - before.count("\r\n") + 1
        column = position - max(before.rfind("\n"), before.rfind("\r"))
        error.locations = [SourceLocation(line, column)]
    return error


# One token per match; the ignored characters before it are skipped by the same match.
# Strings and block strings always match (to the end of the line or text when unterminated),
# so no character is scanned twice and the pass stays linear whatever the text.
_TOKEN = re.compile(
    r"""[\s,\ufeff]*(?:
      (?P<name>[_A-Za-z][_0-9A-Za-z]*)
    | (?P<punct>\.\.\.|[!$&()\[\]{}:=@|])
    | (?P<number>-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)
    | (?P<block>\"\"\"(?:[^"\\]+|\\\"\"\"|\\|"(?!""))*(?:\"\"\"|\Z))
    | (?P<string>"[^"\\\n\r]*(?:\\[^\n\r][^"\\\n\r]*)*"?)
    | (?P<comment>\#[^\n\r]*)
    | (?P<junk>[^\s,\ufeff_A-Za-z0-9!$&()\[\]{}:=@|"\#.-]+|.)
    | (?P<end>\Z)
    )""",
    re.VERBOSE | re.DOTALL,
)

# Brackets on the stack: a selection set opened by a field or a definition (a new set of
# response names), one opened by an inline fragment (merges into its parent's), argument
# parentheses, and list and object-value brackets (nothing inside those is a selection).
_SELECTION, _INLINE, _ARGUMENTS, _VALUE = 0, 1, 2, 3

_DEFINITION_KEYWORDS = frozenset({"query", "mutation", "subscription", "fragment"})


class _Definition:
    """One operation or fragment as the pass saw it, for following fragment spreads."""

    __slots__ = ("depth", "fields", "spreads")

    def __init__(self) -> None:
        self.fields = 0
        self.depth = 0
        self.spreads: list[tuple[str, int]] = []  # (fragment name, depth of the spread)


class _Refused(Exception):
    def __init__(self, error: GraphQLError) -> None:
        self.error = error


def price(query: str, budget: Budget) -> Price:
    """Price ``query`` against ``budget``, stopping at the first budget it exceeds.

    Returns the :class:`Price` of a document within budget, or raises the ``GraphQLError``
    (with ``extensions.code``) that refuses it. The cost of the pass is bounded by the
    budget: it reads at most ``max_tokens`` tokens.
    """
    def refuse(code: str, what: str, value: int, limit: int, position: int) -> _Refused:
        return _Refused(over_budget(code, what, value, limit, query, position))

    max_tokens, max_depth, max_fields = budget.max_tokens, budget.max_depth, budget.max_fields
    max_repeats, max_aliases, max_page = budget.max_repeats, budget.max_aliases, budget.max_page_size
    max_nesting = 2 * max_depth + 8  # argument values nest too; the parser recurses on them

    tokens = fields = aliases = operations = fragments = 0
    deepest = repeats = page = 0
    depth = 0  # selection sets opened by fields, on the stack
    stack: list[int] = []
    names: list[dict[str, int]] = []  # response names of each open _SELECTION set
    definitions: dict[str, _Definition] = {}
    operation_list: list[_Definition] = []
    current: _Definition | None = None
    end = 0  # where the last token that is not a comment ends
    key_tokens = 0  # the tokens counted up to there
    # What the previous token makes of the next one.
    after_spread = after_on = after_at = after_alias = inline_next = False
    fragment_name: str | None = None
    header: str | None = None  # keyword of the definition being read at the top level
    page_argument = page_armed = False

    try:
        for match in _TOKEN.finditer(query):
            kind = match.lastgroup or "end"  # every alternative is a named group
            if kind == "end":
                tokens += (match.end() - match.start()) >> 4
                if tokens > max_tokens:
                    raise refuse(TOO_MANY_TOKENS, "tokens", tokens, max_tokens, match.start())
                break
            # Every 16 characters (ignored ones before it included) count as one more token:
            # graphql-core reads strings, comments and whitespace a character at a time.
            tokens += 1 + ((match.end() - match.start()) >> 4)
            if tokens > max_tokens:
                raise refuse(TOO_MANY_TOKENS, "tokens", tokens, max_tokens, match.start(kind))
            if kind == "comment":
                continue
            value = match.group(kind)
            end, key_tokens = match.end(), tokens
            top = stack[-1] if stack else None

            if kind == "name":
                if top is None:  # a definition's header
                    if header is None:
                        header = value if value in _DEFINITION_KEYWORDS else "query"
                    elif header == "fragment" and fragment_name is None:
                        fragment_name = value
                elif top >= _ARGUMENTS:  # an argument's name, or a value
                    page_argument = top == _ARGUMENTS and value in PAGE_ARGUMENTS and len(stack) > 1
                    page_armed = False
                elif after_at:  # a directive's name
                    after_at = False
                elif after_spread:
                    after_spread = False
                    if value == "on":
                        after_on = inline_next = True
                    elif current is not None:  # a named fragment spread
                        current.spreads.append((value, depth))
                elif after_on:  # an inline fragment's type condition
                    after_on = False
                elif after_alias:  # the field under an alias: counted at the alias
                    after_alias = False
                else:  # a field, by its response name until a colon says it was an alias
                    fields += 1
                    if fields > max_fields:
                        raise refuse(TOO_MANY_FIELDS, "field selections", fields, max_fields, match.start(kind))
                    if depth > max_depth:
                        raise refuse(QUERY_TOO_DEEP, "levels of nested fields", depth, max_depth, match.start(kind))
                    if current is not None:
                        current.fields += 1
                    seen = names[-1]
                    count = seen[value] = seen.get(value, 0) + 1
                    if count > repeats:
                        repeats = count
                        if count > max_repeats:
                            raise refuse(
                                TOO_MANY_FIELDS,
                                f"selections of '{value}' in one selection set",
                                count,
                                max_repeats,
                                match.start(kind),
                            )
                continue

            if kind == "punct":
                if value == "{":
                    if top is None:  # a definition's selection set
                        if header == "fragment":
                            fragments += 1
                            if fragments > budget.max_fragments:
                                raise refuse(
                                    TOO_MANY_FRAGMENTS, "fragment definitions", fragments,
                                    budget.max_fragments, match.start(kind),
                                )
                            current = _Definition()
                            if fragment_name is not None and fragment_name not in definitions:
                                definitions[fragment_name] = current
                        else:
                            operations += 1
                            if operations > budget.max_operations:
                                raise refuse(
                                    TOO_MANY_OPERATIONS, "operations", operations,
                                    budget.max_operations, match.start(kind),
                                )
                            current = _Definition()
                            operation_list.append(current)
                        header = fragment_name = None
                        stack.append(_SELECTION)
                        names.append({})
                        depth = 1
                    elif top >= _ARGUMENTS:
                        stack.append(_VALUE)
                    elif inline_next or after_spread:  # an inline fragment: its fields merge into the parent set
                        stack.append(_INLINE)
                    else:  # a field's selection set
                        stack.append(_SELECTION)
                        names.append({})
                        depth += 1
                    inline_next = after_spread = after_on = after_at = after_alias = False
                    if len(stack) > max_nesting:
                        raise refuse(QUERY_TOO_DEEP, "nested brackets", len(stack), max_nesting, match.start(kind))
                    if current is not None and depth > current.depth:
                        current.depth = depth
                        if depth > deepest:
                            deepest = depth
                elif value in "([":
                    stack.append(_ARGUMENTS if value == "(" else _VALUE)
                    if len(stack) > max_nesting:
                        raise refuse(QUERY_TOO_DEEP, "nested brackets", len(stack), max_nesting, match.start(kind))
                    page_argument = page_armed = False
                elif value in ")]}":
                    if stack:
                        closed = stack.pop()
                        if closed == _SELECTION:
                            names.pop()
                            depth -= 1
                    page_argument = page_armed = False
                elif value == "...":
                    after_spread = True
                elif value == "@":
                    if top in (_SELECTION, _INLINE):
                        after_at = True
                        if after_spread:  # `... @include(if: $x) { }`
                            after_spread, inline_next = False, True
                elif value == ":":
                    if top is not None and top >= _ARGUMENTS:
                        page_armed = page_argument
                        page_argument = False
                    elif top is not None:  # an alias: the name before it was counted as the field
                        after_alias = True
                        aliases += 1
                        if aliases > max_aliases:
                            raise refuse(TOO_MANY_ALIASES, "aliased fields", aliases, max_aliases, match.start(kind))
                continue

            if kind == "number" and page_armed:
                size = _int(value)
                if size > page:
                    page = size
                    if size > max_page:
                        raise refuse(PAGE_TOO_LARGE, "items asked of one list (first/last)", size, max_page,
                                     match.start(kind))
            page_argument = page_armed = False
    except _Refused as refused:
        raise refused.error from None

    # Follow fragment spreads: each spread costs the fields of its fragment (and theirs).
    expanded_fields, expanded_depth = _expand(operation_list, definitions, max_fields, max_depth)
    if expanded_depth > max_depth:
        raise over_budget(QUERY_TOO_DEEP, "levels of nested fields (fragments followed)", expanded_depth, max_depth)
    if expanded_fields > max_fields:
        raise over_budget(TOO_MANY_FIELDS, "field selections (fragments followed)", expanded_fields, max_fields)
    return Price(
        tokens=tokens,
        depth=max(deepest, expanded_depth),
        fields=max(fields, expanded_fields),
        repeats=repeats,
        aliases=aliases,
        operations=operations,
        fragments=fragments,
        page=page,
        key=query[:end],
        key_tokens=key_tokens,
    )


def _int(text: str) -> int:
    # A float literal (10.5) is not an Int; the parser or validation says so.
    try:
        return int(text)
    except ValueError:
        return 0


def _expand(
    operations: list[_Definition], fragments: dict[str, _Definition], max_fields: int, max_depth: int
) -> tuple[int, int]:
    """Fields and depth of the operations with every fragment spread followed.

    Each fragment is computed once (a diamond of spreads is linear), sums stop growing past
    the budget, and a spread that closes a cycle costs nothing here: validation refuses
    cycles (NoFragmentCyclesRule), and depth is what a cycle would blow up.
    """
    cap_fields, cap_depth = max_fields + 1, max_depth + 1
    done: dict[str, tuple[int, int]] = {}
    expanding: set[str] = set()

    def cost(definition: _Definition) -> tuple[int, int]:
        fields, depth = definition.fields, definition.depth
        for name, at in definition.spreads:
            fragment = fragments.get(name)
            if fragment is None:  # unknown: KnownFragmentNamesRule refuses it
                continue
            if name in done:
                inner_fields, inner_depth = done[name]
            elif name in expanding:  # a cycle: too deep by definition
                inner_fields, inner_depth = 0, cap_depth
            else:
                expanding.add(name)
                inner_fields, inner_depth = done[name] = cost(fragment)
                expanding.discard(name)
            fields = min(cap_fields, fields + inner_fields)
            depth = min(cap_depth, max(depth, at - 1 + inner_depth))
        return fields, depth

    total = deepest = 0
    try:
        for operation in operations:
            fields, depth = cost(operation)
            total = min(cap_fields, total + fields)
            deepest = max(deepest, depth)
    except RecursionError:  # a chain of more fragments than the interpreter's stack
        return cap_fields, cap_depth
    return total, deepest


def query_budgets(settings: Settings) -> Callable[[object], Budget]:
    """The endpoint's ``budget_for``: the anonymous budget for a context without a caller.

    The defaults (``DEFAULT_BUDGET``, ``ANONYMOUS_BUDGET``) with the overrides of
    ``COALITION_QUERY_BUDGET`` and ``COALITION_ANONYMOUS_QUERY_BUDGET``. The anonymous
    budget never exceeds the authenticated one, nor slows down less, whatever the overrides say.
    """
    authenticated = DEFAULT_BUDGET.with_overrides(settings.query_budget)
    anonymous = ANONYMOUS_BUDGET.with_overrides(settings.anonymous_query_budget)
    anonymous = replace(
        anonymous,
        **{
            field: (max if field == "slowdown" else min)(getattr(anonymous, field), getattr(authenticated, field))
            for field in _FIELDS.values()
        },
    )

    def budget_for(context: object) -> Budget:
        return anonymous if getattr(context, "caller", None) is None else authenticated

    return budget_for
