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


ADDITIONS_MARKER = "additions (second release)"


def _addition_types(contract_text: str) -> set[str]:
    """Types the contract defines in its "additions" section: each belongs to an open issue."""
    additions = contract_text[contract_text.index(ADDITIONS_MARKER):]
    return set(re.findall(r"^(?:type|input|enum|interface|union|scalar)\s+(\w+)", additions, re.MULTILINE))


def test_no_breaking_change_against_the_contract_for_built_types() -> None:
    assert CONTRACT.exists(), f"the contract is missing: expected {CONTRACT} (shared/ beside the checkout)"
    text = CONTRACT.read_text()
    contract = build_schema(text)
    ours = schema.graphql_schema
    # An addition not built yet is pending (its issue is open); one we have must match the contract.
    pending = {f"{name} was removed." for name in _addition_types(text) if name not in ours.type_map}
    # graphene's scalars are subclasses of graphql-core's, which this check reports as a change of kind.
    ignored = "changed from a Scalar type to a Scalar type"
    changes = [c.description for c in find_breaking_changes(contract, ours)
               if ignored not in c.description and c.description not in pending]
    assert changes == [], changes


def test_every_core_contract_type_is_built() -> None:
    text = CONTRACT.read_text()
    core = text[:text.index(ADDITIONS_MARKER)]
    names = set(re.findall(r"^(?:type|input|enum|interface|union|scalar)\s+(\w+)", core, re.MULTILINE))
    assert names, "no types found before the additions marker: the contract's layout changed"
    assert sorted(names - set(schema.graphql_schema.type_map)) == []
