"""The committed schema.graphql matches the code, and the contract's names are all there."""

from __future__ import annotations

import re
from pathlib import Path

from graphql import build_schema, find_breaking_changes

from coalition.graphql.schema import schema

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT.parent / "shared" / "contract.graphql"


def test_committed_schema_matches_the_code() -> None:
    committed = (ROOT / "schema.graphql").read_text()
    assert committed == str(schema), "schema.graphql is stale: run `make schema` and commit it"


def test_core_operations_of_the_contract_exist() -> None:
    text = (ROOT / "schema.graphql").read_text()
    for name in ["earnPoints", "redeemPoints", "authorizeRedemption", "captureRedemption", "voidRedemption",
                 "reverseTransaction", "enrollMember", "onboardMerchant", "suspendMerchant", "runSettlement"]:
        assert re.search(rf"\b{name}\(input: \w+Input!\)", text), name


def test_no_breaking_change_against_the_contract_for_built_types() -> None:
    if not CONTRACT.exists():  # the contract lives beside the checkout
        return
    contract = build_schema(CONTRACT.read_text())
    ours = schema.graphql_schema
    # Every type and field of the contract must be in our schema, unchanged.
    pending: set[str] = set()
    # graphene's scalars are subclasses of graphql-core's, which this check reports as a change of kind.
    pending.add("changed from a Scalar type to a Scalar type")
    changes = [c for c in find_breaking_changes(contract, ours) if not any(p in c.description for p in pending)]
    assert changes == [], [c.description for c in changes]
