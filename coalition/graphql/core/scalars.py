from __future__ import annotations

from typing import Any

import graphene
from graphql import IntValueNode, ValueNode


class BigInt(graphene.Scalar):  # type: ignore[misc]
    """An integer beyond GraphQL's 32-bit Int (money totals), sent as a JSON number."""

    @staticmethod
    def serialize(value: Any) -> int:
        return int(value)

    @staticmethod
    def parse_value(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"BigInt cannot represent {value!r}")
        return value

    @staticmethod
    def parse_literal(node: ValueNode, _variables: Any = None) -> int:
        if not isinstance(node, IntValueNode):
            raise ValueError("BigInt must be an integer literal")
        return int(node.value)
