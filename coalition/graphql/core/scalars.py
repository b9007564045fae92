"""Custom scalars. Each refuses what the domain cannot use, so a bad value never gets past coercion."""

from __future__ import annotations

import datetime as dt
from typing import Any

import graphene
from graphql import GraphQLError, GraphQLScalarType, GraphQLSchema, IntValueNode, StringValueNode, ValueNode

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# No instant of a rewards network lies outside these; the margin keeps arithmetic on a
# value (a period's start, a day's end) clear of datetime's own limits (years 1 and 9999).
EARLIEST = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(9000, 1, 1, tzinfo=dt.UTC)


class BigInt(graphene.Scalar):  # type: ignore[misc]
    """An integer beyond GraphQL's 32-bit Int (money totals), sent as a JSON number; signed 64 bits."""

    @staticmethod
    def serialize(value: Any) -> int:
        return int(value)

    @staticmethod
    def parse_value(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise GraphQLError(f"BigInt cannot represent {str(value)[:40]!r}: send an integer")
        if not INT64_MIN <= value <= INT64_MAX:
            raise GraphQLError(f"BigInt must be between {INT64_MIN} and {INT64_MAX}")
        return value

    @staticmethod
    def parse_literal(node: ValueNode, _variables: Any = None) -> int:
        if not isinstance(node, IntValueNode):
            raise GraphQLError("BigInt must be an integer literal")
        return BigInt.parse_value(int(node.value))


DATETIME_DESCRIPTION = """An ISO 8601 date and time with its UTC offset, e.g. `2026-01-05T12:00:00+01:00` or
`2026-01-05T11:00:00Z`. A value without an offset is refused: the server would have to guess
its time zone. Inputs are read as the same instant in UTC."""


def require_offsets(schema: GraphQLSchema) -> None:
    """Make the schema's ``DateTime`` refuse values without an offset (graphene's takes them as naive).

    Done once on the assembled schema rather than with a scalar of our own that every module
    must remember to import: graphene allows one type per name, so every ``graphene.DateTime``
    field of every domain, including fields added later, gets these rules.
    """
    scalar = schema.type_map.get("DateTime")
    if isinstance(scalar, GraphQLScalarType):
        scalar.parse_value = parse_aware_datetime  # type: ignore[method-assign]
        scalar.parse_literal = _parse_datetime_literal  # type: ignore[method-assign,assignment]
        scalar.description = DATETIME_DESCRIPTION


def _parse_datetime_literal(node: ValueNode, _variables: Any = None) -> dt.datetime:
    if not isinstance(node, StringValueNode):
        raise GraphQLError('DateTime must be a string, e.g. "2026-01-05T12:00:00+01:00"')
    return parse_aware_datetime(node.value)


def parse_aware_datetime(value: Any) -> dt.datetime:
    """``value`` as an aware UTC datetime, or a GraphQLError saying what to send instead."""
    if not isinstance(value, str):
        raise GraphQLError("DateTime must be a string, e.g. \"2026-01-05T12:00:00+01:00\"")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise GraphQLError(f"{value[:40]!r} is not an ISO 8601 date and time, e.g. "
                           "\"2026-01-05T12:00:00+01:00\"") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise GraphQLError(f"{value[:40]!r} has no UTC offset: add one, e.g. \"Z\" or \"+01:00\"")
    try:
        parsed = parsed.astimezone(dt.UTC)
    except OverflowError:
        parsed = EARLIEST - dt.timedelta(days=1)
    if not EARLIEST <= parsed < LATEST:
        raise GraphQLError(f"{value[:40]!r} is out of range: between {EARLIEST.year} and {LATEST.year}")
    return parsed
