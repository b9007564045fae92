"""The custom scalars refuse what the domain cannot use, at coercion, for every field of the schema."""

from __future__ import annotations

import datetime as dt

import pytest
from graphql import GraphQLError, IntValueNode, StringValueNode, graphql

from coalition.graphql.core.scalars import BigInt, parse_aware_datetime
from coalition.graphql.schema import graphql_schema


@pytest.mark.parametrize("value", [0, -1, 2**53, 2**63 - 1, -(2**63)])
def test_bigint_takes_signed_64_bit_integers(value: int) -> None:
    assert BigInt.parse_value(value) == value
    assert BigInt.parse_literal(IntValueNode(value=str(value))) == value


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 10**30, True, 1.0, "1", None])
def test_bigint_refuses_the_rest(value: object) -> None:
    with pytest.raises(GraphQLError):
        BigInt.parse_value(value)


def test_bigint_refuses_a_literal_beyond_64_bits() -> None:
    with pytest.raises(GraphQLError):
        BigInt.parse_literal(IntValueNode(value=str(2**64)))


@pytest.mark.parametrize(("raw", "utc"), [
    ("2026-01-05T12:00:00+01:00", dt.datetime(2026, 1, 5, 11, tzinfo=dt.UTC)),
    ("2026-01-05T12:00:00Z", dt.datetime(2026, 1, 5, 12, tzinfo=dt.UTC)),
    ("2026-01-05T12:00:00.5-05:30", dt.datetime(2026, 1, 5, 17, 30, 0, 500_000, tzinfo=dt.UTC)),
])
def test_a_datetime_with_an_offset_is_read_as_utc(raw: str, utc: dt.datetime) -> None:
    parsed = parse_aware_datetime(raw)
    assert parsed == utc and parsed.utcoffset() == dt.timedelta(0)


@pytest.mark.parametrize("raw", ["2026-01-05T12:00:00", "2026-01-05", "2026-01-05T12:00:00+99:00", "x", "",
                                 "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00", "1899-12-31T23:00:00Z",
                                 "9000-01-01T00:00:00Z", 1_767_614_400, None])
def test_a_datetime_without_an_offset_or_out_of_range_is_refused(raw: object) -> None:
    with pytest.raises(GraphQLError):
        parse_aware_datetime(raw)


def test_the_schema_datetime_refuses_naive_values_in_variables_and_literals() -> None:
    scalar = graphql_schema().type_map["DateTime"]
    with pytest.raises(GraphQLError, match="offset"):
        scalar.parse_value("2026-01-05T12:00:00")
    with pytest.raises(GraphQLError, match="offset"):
        scalar.parse_literal(StringValueNode(value="2026-01-05T12:00:00"))
    assert scalar.parse_value("2026-01-05T12:00:00Z") == dt.datetime(2026, 1, 5, 12, tzinfo=dt.UTC)


async def test_every_datetime_argument_of_the_schema_is_checked() -> None:
    # A field added with graphene.DateTime anywhere shares the one checked scalar (one type per name).
    result = await graphql(graphql_schema(), '{ __type(name: "DateTime") { description } }')
    assert result.data is not None and "offset" in result.data["__type"]["description"]
