"""Errors the GraphQL layer shows to clients, and how every error is formatted.

Exception tree::

    CodedError              a deliberate, client-facing error with a SCREAMING_SNAKE code
    ├── Unauthenticated     UNAUTHENTICATED: no or bad credentials
    ├── Forbidden           FORBIDDEN: credentials fine, this caller may not do this
    └── BadUserInput        BAD_USER_INPUT: an argument the caller sent is unusable

Raise a ``CodedError`` (or a domain error deriving from it) from a resolver and the
client sees its message and ``extensions.code``. Any other exception escaping a
resolver is a bug: the client sees "Internal server error" and the log gets the
traceback.
"""

from __future__ import annotations

import logging
from typing import Any

from graphql import GraphQLError, GraphQLSyntaxError

from coalition.logsafe import redacted_traceback

logger = logging.getLogger("coalition.graphql")

# Codes of errors the transport itself produces (the domains have their own).
GRAPHQL_PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
GRAPHQL_VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
BAD_USER_INPUT = "BAD_USER_INPUT"
BAD_REQUEST = "BAD_REQUEST"
OPERATION_RESOLUTION_FAILURE = "OPERATION_RESOLUTION_FAILURE"
INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"
INTERNAL_MESSAGE = "Internal server error"


class CodedError(Exception):
    """An error whose message is meant for the client, with a machine-readable code.

    Subclasses set ``code`` as a class attribute; the base class takes it as an argument.
    """

    code: str

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        elif not isinstance(getattr(self, "code", None), str):
            raise TypeError(f"{type(self).__name__} needs a code: pass code=... or set it on the class")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"

    def __str__(self) -> str:
        return self.message


class Unauthenticated(CodedError):
    code = "UNAUTHENTICATED"


class Forbidden(CodedError):
    code = "FORBIDDEN"


class BadUserInput(CodedError):
    code = BAD_USER_INPUT


def _code_of(error: BaseException | None) -> str | None:
    if isinstance(error, CodedError):
        return error.code
    if isinstance(error, GraphQLError) and error.extensions:
        code = error.extensions.get("code")
        if isinstance(code, str):
            return code
    return None


def request_error_code(error: GraphQLError) -> str:
    """The code of an error that stopped a request before execution, from its kind."""
    if isinstance(error, GraphQLSyntaxError):
        return GRAPHQL_PARSE_FAILED
    message = error.message
    # The wording of graphql-core's variable coercion (get_variable_values).
    if message.startswith("Variable '$") and (
        "got invalid value" in message or "of required type" in message
    ):
        return BAD_USER_INPUT
    if message.startswith("Too many errors processing variables"):
        return BAD_USER_INPUT
    return GRAPHQL_VALIDATION_FAILED


def format_error(error: GraphQLError, *, code: str | None = None) -> dict[str, Any]:
    """Format ``error`` for the response: spec fields plus ``extensions.code``.

    ``code`` is the code of the phase the caller knows the error came from (parse,
    validation, variable coercion); errors that carry their own code keep it. Without it
    the code is inferred. An error caused by anything but a ``CodedError`` or a
    ``GraphQLError`` is a bug: it is logged with its traceback and masked.
    """
    original = error.original_error
    # located_error wraps a GraphQLError raised in a resolver into another one.
    while isinstance(original, GraphQLError) and original.original_error is not None:
        original = original.original_error

    formatted: dict[str, Any]
    if original is not None and not isinstance(original, CodedError | GraphQLError) and code is None:
        # Without the message: it may quote the input (redacted_traceback says why).
        logger.error(
            "unexpected error in GraphQL execution at %s: %s",
            ".".join(str(key) for key in error.path) if error.path else "<document>",
            redacted_traceback(original),
        )
        formatted = {"message": INTERNAL_MESSAGE}
        if error.locations is not None:
            formatted["locations"] = [location.formatted for location in error.locations]
        if error.path is not None:
            formatted["path"] = error.path
        formatted["extensions"] = {"code": INTERNAL_SERVER_ERROR}
        return formatted

    formatted = dict(error.formatted)
    extensions: dict[str, Any] = dict(error.extensions or {})
    own_code = _code_of(original) or _code_of(error)
    if own_code is not None:
        extensions["code"] = own_code
    elif code is not None:
        extensions["code"] = code
    elif original is None and error.path is None:
        extensions["code"] = request_error_code(error)
    if extensions:
        formatted["extensions"] = extensions
    return formatted


def request_error(message: str, code: str) -> dict[str, Any]:
    """The body of an error response that never reached GraphQL execution."""
    return {"errors": [{"message": message, "extensions": {"code": code}}]}
