"""Global IDs: opaque, typed and not enumerable.

An ID is one AES block, base64url without padding (22 characters)::

    AES-256_k1( id as 8 bytes big-endian || HMAC-SHA256_k2("<Type>:<id>")[:8] )

* Opaque: without the key the block says nothing, not the type, not the number, not how
  many objects exist (``Member:2`` cannot be guessed from ``Member:1``).
* Authenticated: decoding recomputes the 64-bit tag for the type the caller expects, so a
  forged or altered ID, an ID of another type, garbage or an id beyond 64 bits is simply
  not an ID (the caller answers INVALID_ID), and a guess succeeds with probability 2^-64.
* Stable: the same object always has the same ID within a deployment (the keys are
  derived from the master secret, see :class:`coalition.crypto.NetworkKeys`). Rotating the
  master secret changes every ID, as it changes every other derived key.

AES on a single block is a keyed permutation, which is all this needs: there is no
second block for a mode to chain, and the plaintext is unique per (type, id).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

ID_LENGTH = 22  # base64url of 16 bytes, unpadded
MAX_ID = 2**63 - 1  # database ids are signed 64-bit


class GlobalIds:
    """Encodes and decodes the API's global IDs and cursors. Create once per process."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("GlobalIds needs a 32-byte key")
        self._cipher = Cipher(algorithms.AES(key), modes.ECB())  # one block per ID: see the module docstring
        self._mac_key = hashlib.sha256(b"global-id-tag:" + key).digest()

    def _tag(self, type_name: str, value: int) -> bytes:
        return hmac.new(self._mac_key, f"{type_name}:{value}".encode(), hashlib.sha256).digest()[:8]

    def encode(self, type_name: str, value: int) -> str:
        if not 0 < value <= MAX_ID:
            raise ValueError(f"{type_name} id {value} is outside 1..2^63-1")
        encryptor = self._cipher.encryptor()
        block = encryptor.update(value.to_bytes(8, "big") + self._tag(type_name, value)) + encryptor.finalize()
        return base64.urlsafe_b64encode(block).decode().rstrip("=")

    def _open(self, text: object) -> tuple[int, bytes] | None:
        if not isinstance(text, str) or len(text) != ID_LENGTH or not text.isascii():
            return None
        try:
            block = base64.urlsafe_b64decode(text + "==")
        except (binascii.Error, ValueError):
            return None
        # 22 characters carry 4 spare bits: accept only the one spelling encode() makes, so an
        # object has exactly one ID.
        if len(block) != 16 or base64.urlsafe_b64encode(block).decode().rstrip("=") != text:
            return None
        decryptor = self._cipher.decryptor()
        plain = decryptor.update(block) + decryptor.finalize()
        return int.from_bytes(plain[:8], "big"), plain[8:]

    def decode(self, text: object, type_name: str) -> int | None:
        """The id in ``text`` if it is an ID of ``type_name`` made by this deployment, else None."""
        opened = self._open(text)
        if opened is None:
            return None
        value, tag = opened
        if not 0 < value <= MAX_ID or not hmac.compare_digest(tag, self._tag(type_name, value)):
            return None
        return value

    def decode_any(self, text: object, type_names: Iterable[str]) -> tuple[str, int] | None:
        """``(type, id)`` for an ID of any of ``type_names``, else None.

        Every candidate type is checked (no early exit), so the time does not say which
        type an ID was tried against.
        """
        opened = self._open(text)
        if opened is None:
            return None
        value, tag = opened
        found: tuple[str, int] | None = None
        for type_name in type_names:
            if hmac.compare_digest(tag, self._tag(type_name, value)) and found is None:
                found = (type_name, value)
        return found if found is not None and 0 < value <= MAX_ID else None
