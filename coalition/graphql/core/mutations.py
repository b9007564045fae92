"""Turning domain results and errors into mutation payloads."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from coalition.errors import DomainError
from coalition.graphql.core.types import user_errors


async def payload_of(payload_type: Any, call: Callable[[], Awaitable[dict[str, Any]]]) -> Any:
    """Run ``call``; a :class:`DomainError` becomes the payload's ``userErrors`` and nothing else."""
    try:
        fields = await call()
    except DomainError as error:
        return payload_type(user_errors=user_errors(error))
    return payload_type(user_errors=[], **fields)
