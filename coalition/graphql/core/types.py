"""Types every domain uses: UserError, PageInfo, connections and global IDs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import graphene

from coalition.errors import DomainError
from coalition.graphql.context import ResolveInfo
from coalition.graphql.errors import CodedError
from coalition.ids import GlobalIds

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


def ids_of(info: ResolveInfo) -> GlobalIds:
    """The deployment's one codec for global IDs and cursors (see :mod:`coalition.ids`)."""
    return info.context.services.keys.global_ids


class Node(graphene.Interface):  # type: ignore[misc]
    # Replaces graphene's ``relay.Node``, whose IDs are base64 of ``Type:number``: guessable,
    # and decoded without bounds. These IDs come from :class:`coalition.ids.GlobalIds`.

    class Meta:
        name = "Node"
        description = "An object with an ID: opaque, the same for the same object, accepted by `node(id:)`."

    id = graphene.ID(required=True, description="The ID of the object")

    @staticmethod
    def resolve_id(root: Any, info: ResolveInfo) -> str:
        return encode_id(info, info.parent_type.name, root.id)


def decode_id(info: ResolveInfo, global_id: str, expected_type: str) -> int:
    """The database id in a global ID of ``expected_type``, or INVALID_ID.

    Garbage, an ID of another type or deployment, and an id beyond 64 bits all give the
    same error, which says nothing about whether such an object exists.
    """
    value = ids_of(info).decode(global_id, expected_type)
    if value is None:
        raise InvalidId(f"{str(global_id)[:60]!r} is not a {expected_type} ID from this API")
    return value


def decode_input_id(info: ResolveInfo, global_id: str, expected_type: str, field: str) -> int:
    """Like :func:`decode_id` but raises a DomainError, which mutations turn into userErrors."""
    try:
        return decode_id(info, global_id, expected_type)
    except InvalidId as exc:
        raise DomainError(str(exc), code="INVALID_ID", field=field) from None


def encode_id(info: ResolveInfo, type_name: str, value: int) -> str:
    return ids_of(info).encode(type_name, value)


CURSOR = "Cursor"  # cursors are IDs of their own type: opaque, and useless as an object ID


def encode_cursor(info: ResolveInfo, value: int) -> str:
    return ids_of(info).encode(CURSOR, value)


def decode_cursor(info: ResolveInfo, cursor: str | None) -> int | None:
    if cursor is None:
        return None
    value = ids_of(info).decode(cursor, CURSOR)
    if value is None:
        raise CodedError(f"{str(cursor)[:40]!r} is not a cursor from this API", code="INVALID_CURSOR")
    return value


def page_size(first: int | None) -> int:
    if first is None:
        return DEFAULT_PAGE_SIZE
    if not 0 <= first <= MAX_PAGE_SIZE:
        raise CodedError(f"first must be between 0 and {MAX_PAGE_SIZE}, got {first}", code="BAD_USER_INPUT")
    return first


def connection_types(node: Any, *, name: str, noun: str, nouns: str, order: str,
                     edges_description: str | None = None) -> tuple[Any, Any]:
    """The one way to declare a connection: ``<name>Edge`` and ``<name>Connection`` for ``node``.

    ``noun``/``nouns`` name one node and several in the descriptions ("a transaction in a
    page", "a page of transactions, newest first"); ``order`` says how pages are sorted.
    """
    edge = type(f"{name}Edge", (graphene.ObjectType,), {
        "__doc__": f"A{'n' if noun[0] in 'aeiou' else ''} {noun} in a page.",
        "__module__": __name__,
        "node": graphene.Field(node, required=True, description=f"The {noun}."),
        "cursor": graphene.String(required=True, description=f"Where this {noun} sits in the list."),
    })
    page = type(f"{name}Connection", (graphene.ObjectType,), {
        "__doc__": f"A page of {nouns}, {order}.",
        "__module__": __name__,
        "edges": graphene.List(graphene.NonNull(edge), required=True,
                               description=edges_description or f"The {nouns}."),
        "page_info": graphene.Field(PageInfo, required=True, description="Whether more follow."),
    })
    return edge, page


def connection(info: ResolveInfo, edge_type: Any, connection_type: Any, rows: Sequence[Any], size: int) -> Any:
    """Build a connection from ``size + 1`` rows fetched in order (the extra one says a page follows)."""
    page = list(rows[:size])
    edges = [edge_type(node=row, cursor=encode_cursor(info, row.id)) for row in page]
    return connection_type(
        edges=edges,
        page_info=PageInfo(has_next_page=len(rows) > size, end_cursor=edges[-1].cursor if edges else None),
    )
