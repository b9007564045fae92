"""What the client raises. Every error carries the service's ``code`` (SCREAMING_SNAKE).

CoalitionError                     code, message
├── TransportError                 the request never got an answer (after the retries)
├── HTTPStatusError                an HTTP error status: status_code, code, retry_after
│   ├── AuthenticationError        401: no, bad or revoked key or token
│   ├── RateLimited                429: too many requests (retried while Retry-After allows)
│   └── ServiceUnavailable         503: the service is down for now (retried with backoff)
├── GraphQLError                   the request was refused as a whole (FORBIDDEN, BAD_USER_INPUT,
│                                  RATE_LIMITED, INVALID_ID, ...): nothing ran
└── UserError                      the operation ran and said no (INSUFFICIENT_POINTS,
                                   MEMBER_NOT_FOUND, IDEMPOTENCY_KEY_CONFLICT, ...): nothing was
                                   written; ``field`` names the input field when there is one
"""

from __future__ import annotations


class CoalitionError(Exception):
    code: str = "ERROR"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class TransportError(CoalitionError):
    code = "TRANSPORT_ERROR"


class HTTPStatusError(CoalitionError):
    def __init__(self, message: str, *, status_code: int, code: str | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message, code=code or f"HTTP_{status_code}")
        self.status_code = status_code
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status_code={self.status_code!r}, code={self.code!r}, message={self.message!r})"


class AuthenticationError(HTTPStatusError):
    pass


class RateLimited(HTTPStatusError):
    pass


class ServiceUnavailable(HTTPStatusError):
    pass


class GraphQLError(CoalitionError):
    pass


class UserError(CoalitionError):
    def __init__(self, message: str, *, code: str, field: str | None = None) -> None:
        super().__init__(message, code=code)
        self.field = field

    def __repr__(self) -> str:
        return f"UserError(code={self.code!r}, field={self.field!r}, message={self.message!r})"
