"""Statements: canonical JSON, the batch digest and signature, exports and offline verification.

Signing scheme (privacy-preserving: a merchant verifies its own statement without
seeing anyone else's):

1. Each merchant's statement is a canonical JSON document (sorted keys, no whitespace,
   ASCII, integers as integers, decimals as strings): its figures, its net position and
   its lines (the lines where it is the issuer or the redeemer).
2. The batch's canonical statement holds the previous batch's digest, the period, the
   entry window, the policies used, the totals, and the SHA-256 of every merchant
   statement, sorted by merchant id: hashes, never contents.
3. ``digest`` = hex SHA-256 of the batch statement; ``signature`` = base64 Ed25519
   signature of the ASCII bytes of ``digest`` by the network key (``Network.publicKey``).

An export (:func:`export_document`) carries the merchant's statement text, the batch
statement text, the digest, the signature and the public key. :func:`verify_export`
checks it with nothing but ``hashlib``, ``json`` and ``cryptography``: no database. It is
kept free of other project imports so the file can be copied and run on its own.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

EXPORT_FORMAT = "coalition.statement-export/1"
MERCHANT_STATEMENT_TYPE = "coalition.merchant-statement/1"
BATCH_STATEMENT_TYPE = "coalition.settlement-batch/1"


def canonical(document: Any) -> str:
    """The one text form of a document that gets hashed: sorted keys, no whitespace, ASCII."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def export_document(*, batch_statement: str, digest: str, signature: str, public_key_b64: str,
                    merchant_statements: list[str]) -> dict[str, Any]:
    """The JSON export: one merchant's statement (or, for an admin, every merchant's)."""
    document: dict[str, Any] = {
        "format": EXPORT_FORMAT, "batchStatement": batch_statement, "digest": digest, "signature": signature,
        "publicKey": public_key_b64,
    }
    if len(merchant_statements) == 1:
        document["merchantStatement"] = merchant_statements[0]
    else:
        document["merchantStatements"] = merchant_statements
    return document


def merchant_statement(*, batch_seq: int, period_start: str, period_end: str, currency: str, merchant_id: int,
                       figures: dict[str, int], lines: list[dict[str, Any]]) -> str:
    """A merchant's canonical statement text. ``lines`` are plain dicts (see ``line_document``)."""
    return canonical({
        "type": MERCHANT_STATEMENT_TYPE, "batchSeq": batch_seq, "periodStart": period_start,
        "periodEnd": period_end, "currency": currency, "merchantId": merchant_id, "figures": figures,
        "lines": lines,
    })


def merchant_statement_text(*, batch_seq: int, period_start: str, period_end: str, currency: str, merchant_id: int,
                            figures: dict[str, int], line_texts: list[str]) -> str:
    """:func:`merchant_statement` for lines already in canonical text (each ``canonical(line)``).

    The same text, spliced rather than re-encoded: a batch's line appears in two statements
    (issuer's and redeemer's) and is encoded once. The keys around ``lines`` sort the same way.
    """
    head = canonical({"batchSeq": batch_seq, "currency": currency, "figures": figures})
    tail = canonical({"merchantId": merchant_id, "periodEnd": period_end, "periodStart": period_start,
                      "type": MERCHANT_STATEMENT_TYPE})
    return f'{head[:-1]},"lines":[{",".join(line_texts)}],{tail[1:]}'


def batch_statement(*, seq: int, previous_digest: str | None, period_start: str, period_end: str,
                    after_entry_id: int, through_entry_id: int, currency: str, policies: list[dict[str, Any]],
                    totals: dict[str, Any], merchant_hashes: dict[int, str]) -> str:
    """The batch's canonical statement: hashes of the merchant statements, never their contents."""
    return canonical({
        "type": BATCH_STATEMENT_TYPE, "seq": seq, "previousDigest": previous_digest,
        "periodStart": period_start, "periodEnd": period_end, "afterEntryId": after_entry_id,
        "throughEntryId": through_entry_id, "currency": currency, "policies": policies, "totals": totals,
        "merchantStatements": [{"merchantId": m, "sha256": h} for m, h in sorted(merchant_hashes.items())],
    })


class VerificationError(Exception):
    """The export does not verify: says which check failed."""

    def __repr__(self) -> str:
        return f"VerificationError({self.args[0]!r})"


@dataclass(frozen=True)
class Verified:
    digest: str
    batch: dict[str, Any]
    merchants: list[dict[str, Any]]
    public_key_pinned: bool


def verify_export(document: dict[str, Any], public_key_b64: str | None = None) -> Verified:
    """Check an export offline. ``public_key_b64`` (the network key, learnt out of band) pins the key.

    Raises :class:`VerificationError` naming the first check that fails.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if not isinstance(document, dict) or document.get("format") != EXPORT_FORMAT:
        raise VerificationError(f"not a statement export (format {EXPORT_FORMAT} expected)")
    try:
        batch_text, digest = document["batchStatement"], document["digest"]
        signature, key = document["signature"], document["publicKey"]
        statements = (document["merchantStatements"] if "merchantStatements" in document
                      else [document["merchantStatement"]])
    except KeyError as missing:
        raise VerificationError(f"the export lacks {missing}") from None
    if public_key_b64 is not None and public_key_b64 != key:
        raise VerificationError("the export is signed with another key than the network's public key you gave")
    if sha256_hex(batch_text) != digest:
        raise VerificationError("the batch statement does not hash to the digest: it was altered")
    try:
        Ed25519PublicKey.from_public_bytes(base64.b64decode(key)).verify(base64.b64decode(signature),
                                                                        digest.encode("ascii"))
    except (InvalidSignature, ValueError):
        raise VerificationError("the signature does not verify with the public key") from None
    batch = json.loads(batch_text)
    if canonical(batch) != batch_text or batch.get("type") != BATCH_STATEMENT_TYPE:
        raise VerificationError("the batch statement is not in canonical form")
    hashes = {entry["merchantId"]: entry["sha256"] for entry in batch["merchantStatements"]}
    merchants = []
    for text in statements:
        statement = json.loads(text)
        if canonical(statement) != text or statement.get("type") != MERCHANT_STATEMENT_TYPE:
            raise VerificationError("a merchant statement is not in canonical form")
        merchant_id = statement.get("merchantId")
        if hashes.get(merchant_id) != sha256_hex(text):
            raise VerificationError(f"merchant {merchant_id}'s statement does not match the signed batch")
        if statement.get("batchSeq") != batch.get("seq"):
            raise VerificationError(f"merchant {merchant_id}'s statement belongs to another batch")
        merchants.append(statement)
    return Verified(digest=digest, batch=batch, merchants=merchants, public_key_pinned=public_key_b64 is not None)
