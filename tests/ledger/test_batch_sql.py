"""The fast paths' statement helpers (coalition.ledger.batch_sql); running a batch is tested with each fast path."""

from __future__ import annotations

import pytest

from coalition.giftcards.models import GiftHold, GiftHoldStatus
from coalition.ledger.batch_sql import column_list, number_parameters, sql_literal
from coalition.ledger.models import Entry, EntryKind


def test_named_parameters_become_numbered_in_order_of_first_use() -> None:
    statement = number_parameters("SELECT CAST(:b AS int), x::text, :a_1, :b, '12:30' FROM t WHERE y = :a_1")
    assert statement.sql == "SELECT CAST($1 AS int), x::text, $2, $1, '12:30' FROM t WHERE y = $2"
    assert statement.names == ("b", "a_1")


def test_a_column_list_names_only_columns_of_the_model() -> None:
    assert column_list(Entry, "kind", "member_id") == "kind, member_id"
    with pytest.raises(KeyError):
        column_list(Entry, "kind", "no_such_column")


def test_an_enum_value_is_written_as_its_column_stores_it() -> None:
    # (SQLAlchemy's Enum columns store the member's name)
    assert sql_literal(Entry.kind, EntryKind.EARN) == f"'{EntryKind.EARN.name}'"
    assert sql_literal(GiftHold.status, GiftHoldStatus.AUTHORIZED) == f"'{GiftHoldStatus.AUTHORIZED.name}'"


def test_a_text_literal_escapes_its_quotes() -> None:
    assert sql_literal(Entry.reference, "it's") == "'it''s'"
