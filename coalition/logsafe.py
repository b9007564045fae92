"""Tracebacks for the log without the values that caused them.

An exception's message often quotes its input: ``UnicodeEncodeError`` the whole string
(an e-mail address, before it was encrypted), ``ValueError`` from ``int()`` the text,
a database error the statement's parameters. An unexpected error on a request path is
logged with :func:`redacted_traceback` instead: the chain of exception types and the
frames (file, line, function, source line), and no message. The type and the line are
what a developer needs to reproduce it; the values stay with the client that sent them.
"""

from __future__ import annotations

import traceback


def redacted_traceback(exc: BaseException) -> str:
    """``exc``'s traceback, causes and contexts included, with every exception message left out."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        frames = "".join(traceback.format_tb(current.__traceback__))
        parts.append(f"Traceback (most recent call last):\n{frames}{_name(current)} (message withheld)")
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return "\n\nwhile handling the above, or caused by it:\n".join(reversed(parts))


def _name(exc: BaseException) -> str:
    cls = type(exc)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
