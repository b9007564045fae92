"""Loyalty IDs: 11 random Crockford base32 characters and a Luhn mod 32 check character.

Shown as ``XXXX-XXXX-XXXX``. Crockford's alphabet has no I, L, O or U, and we read
``O`` as ``0`` and ``I``/``L`` as ``1`` so a cashier's typo of those letters still works.
The check character catches every single-character error and every transposition of
two adjacent characters except ``0Z``/``Z0`` (Luhn's one blind spot, like 09/90 in base
10), so a POS keypad typo is refused before any lookup.
"""

from __future__ import annotations

import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_VALUE = {c: i for i, c in enumerate(ALPHABET)}
_VALUE.update({"O": 0, "I": 1, "L": 1})
N = len(ALPHABET)
BODY_LENGTH = 11


class LoyaltyIdError(ValueError):
    pass


def _check_character(body: str) -> str:
    factor, total = 2, 0
    for char in reversed(body):
        addend = factor * _VALUE[char]
        factor = 1 if factor == 2 else 2
        total += addend // N + addend % N
    return ALPHABET[(N - total % N) % N]


def _format(compact: str) -> str:
    return "-".join(compact[i : i + 4] for i in range(0, len(compact), 4))


def new_loyalty_id() -> str:
    body = "".join(secrets.choice(ALPHABET) for _ in range(BODY_LENGTH))
    return _format(body + _check_character(body))


def normalize_loyalty_id(raw: str) -> str:
    """Canonical ``XXXX-XXXX-XXXX`` form, or :class:`LoyaltyIdError` saying what is wrong."""
    compact = "".join(raw.split()).replace("-", "").upper()
    if len(compact) != BODY_LENGTH + 1:
        raise LoyaltyIdError(f"a loyalty ID has {BODY_LENGTH + 1} characters, {len(compact)} given")
    bad = sorted({c for c in compact if c not in _VALUE})
    if bad:
        raise LoyaltyIdError(f"a loyalty ID cannot contain {''.join(bad)!r}")
    compact = "".join(ALPHABET[_VALUE[c]] for c in compact)
    if _check_character(compact[:-1]) != compact[-1]:
        raise LoyaltyIdError("the check character does not match: the loyalty ID was mistyped")
    return _format(compact)


def new_referral_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(8))


def same_loyalty_id(raw: str, loyalty_id: str) -> bool:
    """Whether ``raw``, as a person may type it (dashes, case), is ``loyalty_id``; False if malformed."""
    try:
        return normalize_loyalty_id(raw) == loyalty_id
    except LoyaltyIdError:
        return False
