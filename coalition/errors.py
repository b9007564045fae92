"""The root of every domain error.

DomainError                      code (SCREAMING_SNAKE), message, field
├── InvalidInput                 a value is malformed or out of range (field names it)
├── NotFound                     an unknown or foreign ID, loyalty ID, hold, transaction
├── Conflict                     the request collides with the current state
│   └── IdempotencyKeyConflict   same key, different input
└── Refused                      a business rule says no (insufficient points, suspended)

Domain modules raise these with a specific ``code``; the API layer turns them into
``userErrors`` entries. ``field`` is the input field's name as the API spells it.
"""

from __future__ import annotations

from coalition.text import describe_character, unsafe_character


class DomainError(Exception):
    code: str = "ERROR"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.field = field

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, field={self.field!r}, message={self.message!r})"


class InvalidInput(DomainError):
    code = "INVALID_INPUT"


class NotFound(DomainError):
    code = "NOT_FOUND"


class Conflict(DomainError):
    code = "CONFLICT"


class IdempotencyKeyConflict(Conflict):
    code = "IDEMPOTENCY_KEY_CONFLICT"

    def __init__(self, key: str) -> None:
        super().__init__(
            f"idempotency key {key!r} was already used with a different input; use a new key for a new request",
            field="idempotencyKey",
        )


class Refused(DomainError):
    code = "REFUSED"


MAX_IDEMPOTENCY_KEY_LENGTH = 128
MAX_REFERENCE_LENGTH = 128

def check_idempotency_key(key: str) -> str:
    if not isinstance(key, str) or not key.strip():
        raise InvalidInput("idempotencyKey must be a non-empty string", code="INVALID_IDEMPOTENCY_KEY",
                           field="idempotencyKey")
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise InvalidInput(f"idempotencyKey is {len(key)} characters; at most {MAX_IDEMPOTENCY_KEY_LENGTH}",
                           code="INVALID_IDEMPOTENCY_KEY", field="idempotencyKey")
    bad = unsafe_character(key)
    if bad is not None:
        raise InvalidInput(f"idempotencyKey contains {describe_character(bad)} (a control character, a lone "
                           "surrogate or a bidi override): use printable characters, e.g. a UUID",
                           code="INVALID_IDEMPOTENCY_KEY", field="idempotencyKey")
    return key


def check_text(value: str | None, field: str, max_length: int, *, required: bool = False,
               code: str | None = None) -> str | None:
    """Strip and bound a free-text input; empty becomes None unless required.

    The error's code is ``INVALID_<FIELD>`` unless an API documented another (``code``)."""
    code = code or "INVALID_" + _snake(field)
    if value is None:
        if required:
            raise InvalidInput(f"{field} is required", code=code, field=field)
        return None
    value = value.strip()
    if not value:
        if required:
            raise InvalidInput(f"{field} must not be blank", code=code, field=field)
        return None
    if len(value) > max_length:
        raise InvalidInput(f"{field} is {len(value)} characters; at most {max_length}",
                           code=code, field=field)
    bad = unsafe_character(value)
    if bad is not None:
        raise InvalidInput(f"{field} contains {describe_character(bad)} (a control character, a lone surrogate or "
                           "a bidi override): remove it", code=code, field=field)
    return value


def _snake(camel: str) -> str:
    return "".join("_" + c if c.isupper() else c.upper() for c in camel).lstrip("_")
