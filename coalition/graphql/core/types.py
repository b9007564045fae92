"""Types every domain uses: UserError, PageInfo, connections and global IDs."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import graphene
from graphql_relay import from_global_id, to_global_id

from coalition.errors import DomainError
from coalition.graphql.errors import CodedError

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20


class UserError(graphene.ObjectType):  # type: ignore[misc]
    """A problem with the input that the caller can fix; nothing was written."""

    field = graphene.List(
        graphene.NonNull(graphene.String), description='Path into the input, e.g. ["input", "points"].'
    )
    code = graphene.String(required=True, description="SCREAMING_SNAKE error code, e.g. INSUFFICIENT_POINTS.")
    message = graphene.String(required=True, description="What was wrong and what to do about it.")


def user_errors(error: DomainError) -> list[UserError]:
    field = ["input", error.field] if error.field else None
    return [UserError(field=field, code=error.code, message=error.message)]


class PageInfo(graphene.ObjectType):  # type: ignore[misc]
    """Where a page of a connection ends."""

    has_next_page = graphene.Boolean(required=True, description="Whether another page follows.")
    end_cursor = graphene.String(description="Pass as `after` to get the next page.")


class InvalidId(CodedError):
    code = "INVALID_ID"


def decode_id(global_id: str, expected_type: str, field: str | None = None) -> int:
    """The database id in a Relay global ID of ``expected_type``, or INVALID_ID."""
    try:
        type_name, raw = from_global_id(global_id)
        value = int(raw)
    except Exception:
        value, type_name = -1, ""
    if type_name != expected_type or not 0 < value < 2**63:
        raise InvalidId(f"{global_id[:60]!r} is not a {expected_type} ID")
    return value


def decode_input_id(global_id: str, expected_type: str, field: str) -> int:
    """Like :func:`decode_id` but raises a DomainError, which mutations turn into userErrors."""
    try:
        return decode_id(global_id, expected_type)
    except InvalidId as exc:
        raise DomainError(str(exc), code="INVALID_ID", field=field) from None


def encode_id(type_name: str, value: int) -> str:
    return to_global_id(type_name, str(value))


def encode_cursor(value: int) -> str:
    return base64.b64encode(f"cursor:{value}".encode()).decode()


def decode_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        prefix, raw = base64.b64decode(cursor, validate=True).decode().split(":")
        if prefix == "cursor" and 0 < int(raw) < 2**63:  # a row id: beyond 64 bits the database errs
            return int(raw)
    except Exception:
        pass
    raise CodedError(f"{cursor[:40]!r} is not a cursor from this API", code="INVALID_CURSOR")


def page_size(first: int | None) -> int:
    if first is None:
        return DEFAULT_PAGE_SIZE
    if not 0 <= first <= MAX_PAGE_SIZE:
        raise CodedError(f"first must be between 0 and {MAX_PAGE_SIZE}, got {first}", code="BAD_USER_INPUT")
    return first


def connection(edge_type: Any, connection_type: Any, rows: Sequence[Any], size: int) -> Any:
    """Build a connection from ``size + 1`` rows fetched in order (the extra one says a page follows)."""
    page = list(rows[:size])
    edges = [edge_type(node=row, cursor=encode_cursor(row.id)) for row in page]
    return connection_type(
        edges=edges,
        page_info=PageInfo(has_next_page=len(rows) > size, end_cursor=edges[-1].cursor if edges else None),
    )
