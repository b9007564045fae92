"""Statements: canonical JSON, salted commitments, the batch digest and signature, offline verification.

Signing scheme, version 2 (batches closed since statements became salted). A merchant
verifies its own statement without anyone's help and learns nothing about another's:

1. Each merchant's statement is a canonical JSON document (sorted keys, no whitespace,
   ASCII, integers as integers, decimals as strings): its figures, its net position and
   its lines (the lines where it is the issuer or the redeemer).
2. Each statement becomes a salted leaf: ``leaf = SHA-256(0x00 || nonce || statement)``,
   with a 32-byte ``nonce`` of its own. The network derives the nonce from its master
   secret (HMAC over the batch id and the merchant id, :meth:`coalition.crypto.NetworkKeys.
   statement_nonce`), so nothing new is stored and nobody without the secret can guess it.
   Without the nonce a leaf says nothing about the figures: guessing them means guessing
   256 secret bits too.
3. The leaves, sorted by value (so a leaf's place says nothing about its merchant), are
   the bottom of a Merkle tree: ``node = SHA-256(0x01 || left || right)`` over the raw
   32-byte hashes; a level with an odd number of nodes carries its last node up as it is.
   The prefixes keep a leaf from passing for a node and the other way round.
4. The batch's canonical statement (type ``coalition.settlement-batch/2``) holds the
   previous batch's digest, the period, the entry window, the policies used, the
   network-level totals, the number of merchant statements and the tree's root
   (``merchantRoot``; null for a batch without any): no per-merchant hash at all.
5. ``digest`` = hex SHA-256 of the batch statement; ``signature`` = base64 Ed25519
   signature of the ASCII bytes of ``digest`` by the network key (``Network.publicKey``).

An export (:func:`export_document`, format ``coalition.statement-export/2``) carries the
batch statement, the digest, the signature, the public key and, for each statement in it
(a merchant: only its own), the statement text, its nonce and its inclusion proof: the
sibling hashes from its leaf up to the root, each saying on which side it sits.
:func:`verify_export` recomputes the leaf from the merchant's own text and nonce, folds
the proof up to the root and checks the root, the digest and the signature.

What a merchant still sees of the others: the totals in the batch statement (gross,
net, bilateral, network income, residue, netting ratio, counts), which are network-level
figures every merchant is shown anyway, and how many merchants have a statement in the
batch. With only two active merchants the other's net position follows from the network
income by subtraction; that is arithmetic on published aggregates, not a leak of the
commitments.

Version 1 (batches closed before): the batch statement (type ``coalition.settlement-batch/1``)
listed the plain SHA-256 of every merchant statement beside its merchant id, and guessing
a small merchant's figures and hashing them found the right hash in seconds. Those batches
are signed and hash-chained, so they are not rewritten: they keep verifying under the
version-1 rule, and their exports keep format ``coalition.statement-export/1``. The batch
statement's ``type`` says which rule applies.

:func:`verify_export` needs nothing but ``hashlib``, ``hmac``, ``json`` and ``cryptography``:
no database. The module is kept free of other project imports so it can be copied and run
on its own.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

EXPORT_FORMAT = "coalition.statement-export/2"
EXPORT_FORMAT_V1 = "coalition.statement-export/1"
MERCHANT_STATEMENT_TYPE = "coalition.merchant-statement/1"
BATCH_STATEMENT_TYPE = "coalition.settlement-batch/2"
BATCH_STATEMENT_TYPE_V1 = "coalition.settlement-batch/1"

NONCE_BYTES = 32  # 256 bits: out of reach of any guessing
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
MAX_PROOF_STEPS = 64  # a tree of 2^64 leaves; a longer proof is not one of ours


def canonical(document: Any) -> str:
    """The one text form of a document that gets hashed: sorted keys, no whitespace, ASCII."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def statement_version(batch_statement_text: str) -> int:
    """1 or 2: which rule a batch statement was signed under (its ``type``)."""
    kind = json.loads(batch_statement_text).get("type")
    return 1 if kind == BATCH_STATEMENT_TYPE_V1 else 2


# ---------------------------------------------------------------- the Merkle tree


def leaf_hash(nonce: bytes, statement: str) -> str:
    """Hex ``SHA-256(0x00 || nonce || statement)``: the salted commitment to one merchant statement."""
    return hashlib.sha256(LEAF_PREFIX + nonce + statement.encode("ascii")).hexdigest()


def node_hash(left: str, right: str) -> str:
    """Hex ``SHA-256(0x01 || left || right)`` over the raw 32-byte child hashes."""
    return hashlib.sha256(NODE_PREFIX + bytes.fromhex(left) + bytes.fromhex(right)).hexdigest()


@dataclass(frozen=True)
class MerkleTree:
    """The levels of the tree, leaves (sorted) first, the root's level last."""

    levels: tuple[tuple[str, ...], ...]

    @classmethod
    def build(cls, leaves: Iterable[str]) -> MerkleTree:
        level = tuple(sorted(leaves))
        levels = [level]
        while len(level) > 1:
            pairs = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            if len(level) % 2:
                pairs.append(level[-1])  # the odd one out goes up as it is
            level = tuple(pairs)
            levels.append(level)
        return cls(tuple(levels))

    @property
    def root(self) -> str | None:
        return self.levels[-1][0] if self.levels[-1] else None

    def proof(self, leaf: str) -> list[dict[str, str]]:
        """The sibling hashes from ``leaf`` up to the root. Raises KeyError if it is not a leaf."""
        leaves = self.levels[0]
        index = bisect.bisect_left(leaves, leaf)
        if index == len(leaves) or leaves[index] != leaf:
            raise KeyError(leaf)
        steps: list[dict[str, str]] = []
        for level in self.levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                steps.append({"side": "left" if sibling < index else "right", "sha256": level[sibling]})
            index //= 2
        return steps


def fold_proof(leaf: str, proof: Any) -> str:
    """The root that ``proof`` leads to from ``leaf``. Raises VerificationError on a malformed proof."""
    if not isinstance(proof, list) or len(proof) > MAX_PROOF_STEPS:
        raise VerificationError("the inclusion proof is not a list of at most 64 steps")
    node = leaf
    for step in proof:
        if not isinstance(step, dict) or set(step) != {"side", "sha256"} or not _is_hash(step["sha256"]):
            raise VerificationError("an inclusion proof step is not {side, sha256} with a hex SHA-256")
        if step["side"] == "left":
            node = node_hash(step["sha256"], node)
        elif step["side"] == "right":
            node = node_hash(node, step["sha256"])
        else:
            raise VerificationError("an inclusion proof step's side is neither left nor right")
    return node


def _is_hash(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


# ---------------------------------------------------------------- building statements


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
                    totals: dict[str, Any], merchant_root: str | None, merchant_count: int) -> str:
    """The batch's canonical statement (version 2): the root of the salted leaves, never a plain hash."""
    return canonical({
        "type": BATCH_STATEMENT_TYPE, "seq": seq, "previousDigest": previous_digest,
        "periodStart": period_start, "periodEnd": period_end, "afterEntryId": after_entry_id,
        "throughEntryId": through_entry_id, "currency": currency, "policies": policies, "totals": totals,
        "merchantRoot": merchant_root, "merchantCount": merchant_count,
    })


def batch_statement_v1(*, seq: int, previous_digest: str | None, period_start: str, period_end: str,
                       after_entry_id: int, through_entry_id: int, currency: str, policies: list[dict[str, Any]],
                       totals: dict[str, Any], merchant_hashes: dict[int, str]) -> str:
    """The version-1 batch statement, as batches closed before version 2 hold it (tests build old batches)."""
    return canonical({
        "type": BATCH_STATEMENT_TYPE_V1, "seq": seq, "previousDigest": previous_digest,
        "periodStart": period_start, "periodEnd": period_end, "afterEntryId": after_entry_id,
        "throughEntryId": through_entry_id, "currency": currency, "policies": policies, "totals": totals,
        "merchantStatements": [{"merchantId": m, "sha256": h} for m, h in sorted(merchant_hashes.items())],
    })


@dataclass(frozen=True)
class Commitment:
    """One merchant statement as an export carries it: the text, its nonce (hex) and its inclusion proof."""

    statement: str
    nonce: str
    proof: list[dict[str, str]]

    def as_dict(self) -> dict[str, Any]:
        return {"statement": self.statement, "nonce": self.nonce, "proof": self.proof}


def export_document(*, batch_statement: str, digest: str, signature: str, public_key_b64: str,
                    commitments: list[Commitment], single: bool) -> dict[str, Any]:
    """The JSON export (version 2): one merchant's statement (``single``), or every merchant's (admin)."""
    document: dict[str, Any] = {
        "format": EXPORT_FORMAT, "batchStatement": batch_statement, "digest": digest, "signature": signature,
        "publicKey": public_key_b64,
    }
    if single:
        (own,) = commitments
        document.update(merchantStatement=own.statement, nonce=own.nonce, proof=own.proof)
    else:
        document["merchantStatements"] = [c.as_dict() for c in commitments]
    return document


def export_document_v1(*, batch_statement: str, digest: str, signature: str, public_key_b64: str,
                       merchant_statements: list[str], single: bool) -> dict[str, Any]:
    """The JSON export of a version-1 batch, in the format its merchants have always received."""
    document: dict[str, Any] = {
        "format": EXPORT_FORMAT_V1, "batchStatement": batch_statement, "digest": digest, "signature": signature,
        "publicKey": public_key_b64,
    }
    if single:
        (document["merchantStatement"],) = merchant_statements
    else:
        document["merchantStatements"] = merchant_statements
    return document


# ---------------------------------------------------------------- verifying


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
    version: int = 2


def verify_export(document: dict[str, Any], public_key_b64: str | None = None, *,
                  merchant_id: int | None = None) -> Verified:
    """Check an export offline. ``public_key_b64`` (the network key, learnt out of band) pins the key;
    ``merchant_id`` (yours) insists that every statement in it is that merchant's.

    Raises :class:`VerificationError` naming the first check that fails.
    """
    if not isinstance(document, dict) or document.get("format") not in (EXPORT_FORMAT, EXPORT_FORMAT_V1):
        raise VerificationError(f"not a statement export (format {EXPORT_FORMAT} or {EXPORT_FORMAT_V1} expected)")
    version = 2 if document["format"] == EXPORT_FORMAT else 1
    try:
        batch_text, digest = document["batchStatement"], document["digest"]
        signature, key = document["signature"], document["publicKey"]
        if version == 1:
            entries: list[Any] = (document["merchantStatements"] if "merchantStatements" in document
                                  else [document["merchantStatement"]])
        elif "merchantStatements" in document:
            entries = document["merchantStatements"]
        else:
            entries = [{"statement": document["merchantStatement"], "nonce": document["nonce"],
                        "proof": document["proof"]}]
    except KeyError as missing:
        raise VerificationError(f"the export lacks {missing}") from None
    if not all(isinstance(v, str) for v in (batch_text, digest, signature, key)) or not isinstance(entries, list):
        raise VerificationError("the export's batchStatement, digest, signature and publicKey must be strings")
    if public_key_b64 is not None and public_key_b64 != key:
        raise VerificationError("the export is signed with another key than the network's public key you gave")
    if not batch_text.isascii() or sha256_hex(batch_text) != digest:
        raise VerificationError("the batch statement does not hash to the digest: it was altered")
    _check_signature(key, signature, digest)
    batch = json.loads(batch_text)
    expected_type = BATCH_STATEMENT_TYPE if version == 2 else BATCH_STATEMENT_TYPE_V1
    if not isinstance(batch, dict) or canonical(batch) != batch_text or batch.get("type") != expected_type:
        raise VerificationError(f"the batch statement is not a canonical {expected_type} statement")
    if version == 2:
        merchants = [_check_v2(entry, batch) for entry in entries]
    else:  # every merchant's plain hash is in the version-1 batch statement: read them once
        listed = batch.get("merchantStatements", []) if entries else []
        hashes = {entry["merchantId"]: entry["sha256"] for entry in listed}
        merchants = [_check_v1(entry, hashes) for entry in entries]
    for statement in merchants:
        if statement.get("batchSeq") != batch.get("seq"):
            raise VerificationError(f"merchant {statement.get('merchantId')}'s statement belongs to another batch")
        if merchant_id is not None and statement.get("merchantId") != merchant_id:
            raise VerificationError(f"the statement is merchant {statement.get('merchantId')}'s, "
                                    f"not merchant {merchant_id}'s")
    return Verified(digest=digest, batch=batch, merchants=merchants, public_key_pinned=public_key_b64 is not None,
                    version=version)


def _check_signature(key: str, signature: str, digest: str) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(base64.b64decode(key, validate=True)).verify(
            base64.b64decode(signature, validate=True), digest.encode("ascii"))
    except (InvalidSignature, ValueError):
        raise VerificationError("the signature does not verify with the public key") from None


def _statement(text: Any) -> dict[str, Any]:
    if not isinstance(text, str) or not text.isascii():
        raise VerificationError("a merchant statement is not ASCII text")
    try:
        statement = json.loads(text)
    except (ValueError, RecursionError):
        raise VerificationError("a merchant statement is not JSON") from None
    if not isinstance(statement, dict) or canonical(statement) != text \
            or statement.get("type") != MERCHANT_STATEMENT_TYPE:
        raise VerificationError("a merchant statement is not in canonical form")
    return statement


def _check_v2(entry: Any, batch: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(entry, dict) or not {"statement", "nonce", "proof"} <= set(entry):
        raise VerificationError("a merchant statement lacks its statement, nonce or proof")
    statement = _statement(entry["statement"])
    nonce = entry["nonce"]
    if not isinstance(nonce, str) or len(nonce) != 2 * NONCE_BYTES or not _is_hash(nonce):
        raise VerificationError(f"merchant {statement.get('merchantId')}'s nonce is not {NONCE_BYTES} bytes of hex")
    root = fold_proof(leaf_hash(bytes.fromhex(nonce), entry["statement"]), entry["proof"])
    expected = batch.get("merchantRoot")
    if not isinstance(expected, str) or not _is_hash(expected) or not hmac.compare_digest(root, expected):
        raise VerificationError(f"merchant {statement.get('merchantId')}'s statement does not match the signed batch")
    return statement


def _check_v1(text: Any, hashes: dict[Any, Any]) -> dict[str, Any]:
    statement = _statement(text)
    if hashes.get(statement.get("merchantId")) != sha256_hex(text):
        raise VerificationError(f"merchant {statement.get('merchantId')}'s statement does not match the signed batch")
    return statement
