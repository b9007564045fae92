"""Console errors.

DomainError
├── InvalidInput
│   └── WeakPassword            PASSWORD_TOO_SHORT
├── Conflict
│   └── EmailTaken              EMAIL_TAKEN
└── Refused
    └── SignInRefused           SIGN_IN_REFUSED (wrong e-mail or password, or locked: one answer for all)
"""

from __future__ import annotations

from coalition.errors import Conflict, InvalidInput, Refused


class WeakPassword(InvalidInput):
    code = "PASSWORD_TOO_SHORT"


class EmailTaken(Conflict):
    code = "EMAIL_TAKEN"


class SignInRefused(Refused):
    code = "SIGN_IN_REFUSED"

    def __init__(self) -> None:
        # The same words whether the e-mail is unknown, the password wrong or the account locked:
        # the answer must not tell a guesser which e-mails have accounts.
        super().__init__("wrong e-mail or password, or too many attempts: try again later")
