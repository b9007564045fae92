"""What no text input may hold, checked once at the HTTP layer and again where text enters a domain.

- an unpaired surrogate (JSON lets a client write ``"\\ud800"``): such a string cannot be
  encoded as UTF-8, for the database, the log or the response;
- a control character (C0 including NUL, which PostgreSQL cannot store in text; DEL; C1);
- a bidirectional override, embedding or isolate: in a name or a reference it reorders the
  text around it wherever a statement or report shows it ("Trojan Source").

Every script, emoji and other 4-byte character is fine.
"""

from __future__ import annotations

BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def unsafe_character(value: str, *, allow: str = "") -> str | None:
    """The first character of ``value`` no text input may hold, or None.

    ``allow`` lists control characters a field accepts (a CSV's line breaks).
    """
    if value.isascii() and value.isprintable():
        return None
    for char in value:
        code = ord(char)
        if (code < 32 or 0x7F <= code <= 0x9F) and char not in allow:
            return char
        if 0xD800 <= code <= 0xDFFF or char in BIDI_CONTROLS:
            return char
    return None


def describe_character(char: str) -> str:
    """``U+0000`` and the like: never the character itself, which may not print or encode."""
    return f"U+{ord(char):04X}"


def has_lone_surrogate(value: object) -> bool:
    """Whether any string in a decoded JSON value (object keys included) holds an unpaired surrogate."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
