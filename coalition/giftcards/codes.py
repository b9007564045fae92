"""Gift card codes: 80 random bits, a network tag and a check character.

``XXXX-XXXX-XXXX-XXXX-XXX``: 16 random Crockford base32 characters (80 bits), two
characters of the network's keyed MAC of those (a code of another network, or one made
up, fails the tag 1023 times in 1024 without a database read), and the loyalty ID's Luhn
mod 32 check character over all 18 (a single mistyped character or two swapped
neighbours are caught at the till). Read as loyalty IDs are: case, dashes and spaces do
not matter, ``O`` is ``0`` and ``I``/``L`` are ``1``.

The code is shown once, when the card is sold; the network keeps only
:func:`code_hash` (HMAC-SHA256 under a key derived from the master secret) and the
last four characters.
"""

from __future__ import annotations

import secrets

from coalition.crypto import NetworkKeys
from coalition.loyalty_id import _VALUE, ALPHABET, _check_character

RANDOM_LENGTH = 16  # 16 x 5 = 80 bits
TAG_LENGTH = 2
CODE_LENGTH = RANDOM_LENGTH + TAG_LENGTH + 1


class CodeError(ValueError):
    """The text is no code of this network. ``typo``: the check character says it was mistyped."""

    def __init__(self, message: str, *, typo: bool) -> None:
        super().__init__(message)
        self.typo = typo


def _tag(keys: NetworkKeys, body: str) -> str:
    mac = keys.gift_card_mac("tag", body)
    value = int.from_bytes(mac[:2], "big")
    return ALPHABET[value >> 11 & 31] + ALPHABET[value >> 6 & 31]


def format_code(compact: str) -> str:
    """The compact code as printed: groups of four characters joined by dashes."""
    return "-".join(compact[i:i + 4] for i in range(0, len(compact), 4))


def new_code(keys: NetworkKeys) -> str:
    body = "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_LENGTH))
    tagged = body + _tag(keys, body)
    return format_code(tagged + _check_character(tagged))


def normalize(raw: str) -> str:
    """The compact canonical code (no dashes), or :class:`CodeError`; no key needed."""
    if not isinstance(raw, str):
        raise CodeError("a gift card code is text", typo=True)
    compact = "".join(raw.split()).replace("-", "").upper()
    if len(compact) != CODE_LENGTH:
        raise CodeError(f"a gift card code has {CODE_LENGTH} characters, {min(len(compact), 999)} given", typo=True)
    if any(c not in _VALUE for c in compact):
        raise CodeError("a gift card code has only the letters and digits printed on the card", typo=True)
    compact = "".join(ALPHABET[_VALUE[c]] for c in compact)
    if _check_character(compact[:-1]) != compact[-1]:
        raise CodeError("the check character does not match: the code was mistyped", typo=True)
    return compact


def parse(keys: NetworkKeys, raw: str) -> str:
    """The compact code if it is one of this network's (check character and tag), else :class:`CodeError`."""
    compact = normalize(raw)
    if _tag(keys, compact[:RANDOM_LENGTH]) != compact[RANDOM_LENGTH:RANDOM_LENGTH + TAG_LENGTH]:
        raise CodeError("no gift card has this code", typo=False)
    return compact


def code_hash(keys: NetworkKeys, compact: str) -> str:
    return keys.gift_card_mac("hash", compact).hex()


def last4(compact: str) -> str:
    return compact[-4:]
