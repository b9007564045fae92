"""Salted statements: a merchant verifies its own statement offline and learns nothing about another's.

Version 2 (coalition.settlement.statements): each merchant statement is a leaf
``SHA-256(0x00 || nonce || statement)`` of a Merkle tree whose root the signed batch
statement holds; a merchant's export carries its nonce and its inclusion proof. Batches
closed before (version 1) keep verifying by the old rule.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from coalition.errors import DomainError
from coalition.settlement.errors import StatementKeyMismatch
from coalition.settlement.models import SettlementBatch, SettlementPosition
from coalition.settlement.service import (
    batch_positions,
    export_statement,
    get_batch,
    merchant_root_of,
    statement_version_of,
)
from coalition.settlement.statements import (
    EXPORT_FORMAT,
    EXPORT_FORMAT_V1,
    MerkleTree,
    VerificationError,
    batch_statement_v1,
    canonical,
    fold_proof,
    leaf_hash,
    sha256_hex,
    verify_export,
)


async def five_shops(s: Any, make_merchant: Any) -> list[Any]:
    """A, B, C and two more, all active: five leaves, so four proofs have three steps and the odd one one."""
    d = (await make_merchant("Deli", 1)).merchant
    e = (await make_merchant("Eyewear", 1)).merchant
    await s.worked_example_activity()
    await s.earn(7, d)
    await s.redeem(3, e)
    return [s.a, s.b, s.c, d, e]


async def test_a_merchant_verifies_its_own_statement_offline(shops: Any, make_merchant: Any) -> None:
    s = shops
    merchants = await five_shops(s, make_merchant)
    batch = (await s.settle()).batch
    assert statement_version_of(batch) == 2
    positions = {p.merchant_id: p for p in await batch_positions(s.db, batch.id)}
    proof_lengths = []
    for merchant in merchants:
        document = json.loads(json.dumps(await export_statement(s.db, s.keys, batch.id, merchant.id)))
        assert document["format"] == EXPORT_FORMAT and len(bytes.fromhex(document["nonce"])) == 32
        verified = verify_export(document, s.keys.public_key_b64, merchant_id=merchant.id)
        (statement,) = verified.merchants
        assert statement["figures"]["netMinor"] == positions[merchant.id].net_minor
        proof_lengths.append(len(document["proof"]))
        # By hand, with hashlib only: the leaf, the path, the root in the signed statement.
        node = hashlib.sha256(b"\x00" + bytes.fromhex(document["nonce"])
                              + document["merchantStatement"].encode()).digest()
        for step in document["proof"]:
            sibling = bytes.fromhex(step["sha256"])
            node = hashlib.sha256(b"\x01" + (sibling + node if step["side"] == "left" else node + sibling)).digest()
        assert node.hex() == json.loads(document["batchStatement"])["merchantRoot"] == merchant_root_of(batch)
    # Five leaves: four pair up under a three-level tree; the fifth goes up alone and meets their root.
    assert sorted(proof_lengths) == [1, 3, 3, 3, 3]
    # The batch statement names no merchant and holds no per-merchant hash.
    signed = json.loads(batch.statement)
    assert "merchantStatements" not in signed and signed["merchantCount"] == 5
    for p in positions.values():
        assert sha256_hex(p.statement) not in batch.statement
    # Nonces differ per merchant and per batch.
    nonces = {s.keys.statement_nonce(batch.id, m.id) for m in merchants}
    assert len(nonces) == 5 and s.keys.statement_nonce(batch.id + 1, s.a.id) not in nonces


def _edit_statement(edit: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def apply(document: dict[str, Any]) -> None:
        statement = json.loads(document["merchantStatement"])
        edit(statement)
        document["merchantStatement"] = canonical(statement)
    return apply


def _flip_hex(value: str) -> str:
    return ("1" if value[0] == "0" else "0") + value[1:]


def _set(path: tuple[Any, ...], value: Callable[[Any], Any]) -> Callable[[dict[str, Any]], None]:
    def apply(document: dict[str, Any]) -> None:
        target = document
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value(target[path[-1]])
    return apply


def _resign_root(document: dict[str, Any]) -> None:
    """A forged root: the batch statement no longer hashes to the signed digest."""
    batch = json.loads(document["batchStatement"])
    batch["merchantRoot"] = _flip_hex(batch["merchantRoot"])
    document["batchStatement"] = canonical(batch)


def _rehash_forged_root(document: dict[str, Any]) -> None:
    """A forged root with the digest recomputed to match: the signature then fails."""
    _resign_root(document)
    document["digest"] = sha256_hex(document["batchStatement"])


def _signature_flip(signature: str) -> str:
    raw = bytearray(base64.b64decode(signature))
    raw[0] ^= 1
    return base64.b64encode(bytes(raw)).decode()


FIGURES = ("pointsIssued", "pointsHonored", "pointsReversed", "pointsExpired", "chargesMinor",
           "reimbursementsMinor", "breakageMinor", "adjustmentsMinor", "netMinor")
TAMPERING: dict[str, Callable[[dict[str, Any]], None]] = {
    **{f"figure {name}": _edit_statement(lambda st, n=name: st["figures"].__setitem__(n, st["figures"][n] + 1))
       for name in FIGURES},
    "a line's points": _edit_statement(lambda st: st["lines"][0].__setitem__("points", st["lines"][0]["points"] + 1)),
    "a line dropped": _edit_statement(lambda st: st["lines"].pop()),
    "the batch seq": _edit_statement(lambda st: st.__setitem__("batchSeq", st["batchSeq"] + 1)),
    "the nonce": _set(("nonce",), _flip_hex),
    "the nonce shortened": _set(("nonce",), lambda n: n[:32]),
    **{f"proof step {i} hash": _set(("proof", i, "sha256"), _flip_hex) for i in range(3)},
    **{f"proof step {i} side": _set(("proof", i, "side"), lambda side: "right" if side == "left" else "left")
       for i in range(3)},
    "a proof step dropped": _set(("proof",), lambda proof: proof[:-1]),
    "a proof step added": _set(("proof",), lambda proof: [*proof, {"side": "left", "sha256": "0" * 64}]),
    "the root": _resign_root,
    "the root and the digest": _rehash_forged_root,
    "the signature": _set(("signature",), _signature_flip),
    "the signature not base64": _set(("signature",), lambda sig: "!" + sig[1:]),
    "the statement not JSON": _set(("merchantStatement",), lambda text: text[:-1]),
    "the statement not ASCII": _set(("merchantStatement",), lambda text: text.replace("EUR", "\u20ac")),
    "the proof not a list": _set(("proof",), lambda proof: {"side": "left"}),
    "a proof step not an object": _set(("proof",), lambda proof: ["left", *proof[1:]]),
}


async def test_tampering_with_any_part_fails_verification(shops: Any, make_merchant: Any) -> None:
    s = shops
    merchants = await five_shops(s, make_merchant)
    batch = (await s.settle()).batch
    exports = [await export_statement(s.db, s.keys, batch.id, m.id) for m in merchants]
    original = max(exports, key=lambda e: len(e["proof"]))  # a merchant with a three-step proof
    victim = json.loads(original["merchantStatement"])["merchantId"]
    verify_export(original, s.keys.public_key_b64, merchant_id=victim)
    for what, tamper in TAMPERING.items():
        document = copy.deepcopy(original)
        tamper(document)
        assert document != original, what
        with pytest.raises(VerificationError):
            verify_export(document, s.keys.public_key_b64, merchant_id=victim)
            pytest.fail(f"tampering with {what} went unnoticed")
    # Another key pinned, or the export re-signed with another key: refused.
    other = json.loads(json.dumps(original))
    other["publicKey"] = "A" * 43 + "="
    with pytest.raises(VerificationError, match="another key"):
        verify_export(other, s.keys.public_key_b64)


async def test_another_merchants_statement_does_not_verify_as_yours(shops: Any, make_merchant: Any) -> None:
    s = shops
    await five_shops(s, make_merchant)
    batch = (await s.settle()).batch
    mine = await export_statement(s.db, s.keys, batch.id, s.a.id)
    theirs = await export_statement(s.db, s.keys, batch.id, s.b.id)
    # B's export is B's, not A's
    with pytest.raises(VerificationError, match="not merchant"):
        verify_export(theirs, s.keys.public_key_b64, merchant_id=s.a.id)
    # B's statement under A's nonce and proof
    swapped = dict(mine, merchantStatement=theirs["merchantStatement"])
    with pytest.raises(VerificationError, match="does not match the signed batch"):
        verify_export(swapped, s.keys.public_key_b64)
    # A's statement relabelled as B's
    relabelled = copy.deepcopy(mine)
    _edit_statement(lambda st: st.__setitem__("merchantId", s.b.id))(relabelled)
    with pytest.raises(VerificationError):
        verify_export(relabelled, s.keys.public_key_b64, merchant_id=s.b.id)
    # A's statement with B's nonce and proof
    borrowed = dict(mine, nonce=theirs["nonce"], proof=theirs["proof"])
    with pytest.raises(VerificationError):
        verify_export(borrowed, s.keys.public_key_b64)
    # A merchant's export of another batch does not verify against this one
    s.clock.advance(minutes=5)
    await s.earn(3, s.a)
    later = (await s.settle()).batch
    next_batch = await export_statement(s.db, s.keys, later.id, s.a.id)
    mixed = dict(next_batch, merchantStatement=mine["merchantStatement"], nonce=mine["nonce"], proof=mine["proof"])
    with pytest.raises(VerificationError):
        verify_export(mixed, s.keys.public_key_b64)


async def test_the_admin_export_proves_every_statement(shops: Any, make_merchant: Any) -> None:
    s = shops
    merchants = await five_shops(s, make_merchant)
    batch = (await s.settle()).batch
    whole = await export_statement(s.db, s.keys, batch.id)
    verified = verify_export(whole, s.keys.public_key_b64)
    assert sorted(m["merchantId"] for m in verified.merchants) == sorted(m.id for m in merchants)
    whole["merchantStatements"][2]["proof"][0]["sha256"] = _flip_hex(whole["merchantStatements"][2]["proof"][0]
                                                                     ["sha256"])
    with pytest.raises(VerificationError):
        verify_export(whole, s.keys.public_key_b64)


async def _make_version_1(s: Any, batch_id: int) -> SettlementBatch:
    """Rewrite a just-closed batch as a version-1 batch was closed: plain hashes, signed again."""
    batch = await get_batch(s.db, batch_id)
    positions = await batch_positions(s.db, batch_id)
    signed = json.loads(batch.statement)
    text = batch_statement_v1(
        seq=signed["seq"], previous_digest=signed["previousDigest"], period_start=signed["periodStart"],
        period_end=signed["periodEnd"], after_entry_id=signed["afterEntryId"],
        through_entry_id=signed["throughEntryId"], currency=signed["currency"], policies=signed["policies"],
        totals=signed["totals"], merchant_hashes={p.merchant_id: sha256_hex(p.statement) for p in positions})
    digest = sha256_hex(text)
    signature = base64.b64encode(s.keys.sign(digest.encode("ascii"))).decode()
    async with s.db.transaction() as conn:
        await conn.execute(update(SettlementBatch).where(SettlementBatch.id == batch_id)
                           .values(statement=text, digest=digest, signature=signature))
        for p in positions:
            await conn.execute(update(SettlementPosition)
                               .where(SettlementPosition.batch_id == batch_id,
                                      SettlementPosition.merchant_id == p.merchant_id)
                               .values(statement_sha256=sha256_hex(p.statement)))
    return await get_batch(s.db, batch_id)


async def test_batches_closed_before_salting_still_verify(shops: Any) -> None:
    s = shops
    await s.worked_example_activity()
    old = await _make_version_1(s, (await s.settle()).batch.id)
    assert statement_version_of(old) == 1 and merchant_root_of(old) is None
    s.clock.advance(minutes=5)
    await s.earn(5, s.c)
    new = (await s.settle()).batch
    assert statement_version_of(new) == 2
    assert json.loads(new.statement)["previousDigest"] == old.digest  # the chain runs through the change

    # an old batch's export keeps its version-1 format and verifies under the version-1 rule
    exported = await export_statement(s.db, s.keys, old.id, s.b.id)
    assert exported["format"] == EXPORT_FORMAT_V1 and "nonce" not in exported
    verified = verify_export(exported, s.keys.public_key_b64, merchant_id=s.b.id)
    assert verified.version == 1 and verified.merchants[0]["figures"]["netMinor"] == 22
    assert verify_export(await export_statement(s.db, s.keys, old.id), s.keys.public_key_b64).version == 1
    tampered = copy.deepcopy(exported)
    _edit_statement(lambda st: st["figures"].__setitem__("netMinor", 23))(tampered)
    with pytest.raises(VerificationError):
        verify_export(tampered, s.keys.public_key_b64)
    # a version-1 export cannot pass a version-2 batch off as version 1, nor the other way round
    downgraded = dict(await export_statement(s.db, s.keys, new.id, s.c.id), format=EXPORT_FORMAT_V1)
    with pytest.raises(VerificationError):
        verify_export(downgraded, s.keys.public_key_b64)
    upgraded = dict(exported, format=EXPORT_FORMAT, nonce="00" * 32, proof=[])
    with pytest.raises(VerificationError):
        verify_export(upgraded, s.keys.public_key_b64)


async def test_an_export_under_another_master_secret_is_refused_not_broken(shops: Any, settings: Any) -> None:
    s = shops
    await s.worked_example_activity()
    batch = (await s.settle()).batch
    from coalition.crypto import NetworkKeys

    other = NetworkKeys(b"another master secret")
    with pytest.raises(StatementKeyMismatch) as refused:
        await export_statement(s.db, other, batch.id, s.a.id)
    assert isinstance(refused.value, DomainError) and refused.value.code == "STATEMENT_KEY_MISMATCH"


@settings(max_examples=200, deadline=None)
@given(leaves=st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=70, unique=True),
       pick=st.integers(0, 10**6), flip=st.integers(0, 255))
def test_every_leaf_of_any_tree_proves_and_no_altered_proof_does(leaves: list[bytes], pick: int, flip: int) -> None:
    hexes = [leaf.hex() for leaf in leaves]
    tree = MerkleTree.build(hexes)
    for leaf in hexes:
        assert fold_proof(leaf, tree.proof(leaf)) == tree.root
    leaf = hexes[pick % len(hexes)]
    proof = tree.proof(leaf)
    assert len(proof) <= (len(hexes) - 1).bit_length()
    if proof:
        step = proof[pick % len(proof)]
        raw = bytearray(bytes.fromhex(step["sha256"]))
        raw[flip % 32] ^= 1 + flip % 255
        step["sha256"] = raw.hex()
        assert fold_proof(leaf, proof) != tree.root
    assert fold_proof(_flip_hex(leaf), tree.proof(leaf)) != tree.root
    assert leaf_hash(b"\0" * 32, "{}") != leaf_hash(b"\1" + b"\0" * 31, "{}")


activity = st.lists(st.tuples(st.sampled_from(["earn", "redeem"]), st.integers(0, 6), st.integers(1, 90)),
                    min_size=1, max_size=14)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=activity, active=st.integers(1, 7))
async def test_every_merchant_proves_its_statement_in_random_batches(shops: Any, make_merchant: Any,
                                                                    ops: list[tuple[str, int, int]],
                                                                    active: int) -> None:
    s = shops
    state: dict[str, Any] = s.__dict__.setdefault("_privacy_state", {})
    if "pool" not in state:
        state["pool"] = [s.a, s.b, s.c] + [(await make_merchant(f"Shop {i}", 1)).merchant for i in range(4)]
    pool = state["pool"][:active]
    for kind, who, points in ops:
        s.clock.advance(minutes=1)
        try:
            if kind == "earn":
                await s.earn(points, pool[who % len(pool)])
            else:
                await s.redeem(points, pool[who % len(pool)])
        except DomainError:
            pass  # not enough points: refused, nothing written
    batch = (await s.settle()).batch
    positions = await batch_positions(s.db, batch.id)
    # zero-sum: what the merchants get and pay, plus the network's income, is nothing
    assert sum(p.net_minor for p in positions) + batch.network_income_minor == 0
    signed = json.loads(batch.statement)
    assert signed["merchantCount"] == len(positions)
    for p in positions:
        document = json.loads(json.dumps(await export_statement(s.db, s.keys, batch.id, p.merchant_id)))
        (statement,) = verify_export(document, s.keys.public_key_b64, merchant_id=p.merchant_id).merchants
        assert statement["figures"]["netMinor"] == p.net_minor
        assert sha256_hex(p.statement) not in batch.statement
    async with s.db.read() as conn:
        leaves = list((await conn.execute(select(SettlementPosition.statement_sha256)
                                          .where(SettlementPosition.batch_id == batch.id))).scalars())
    assert MerkleTree.build(leaves).root == signed["merchantRoot"]


async def test_malformed_exports_fail_with_a_reason_not_a_crash(shops: Any) -> None:
    s = shops
    await s.worked_example_activity()
    batch = (await s.settle()).batch
    good = await export_statement(s.db, s.keys, batch.id, s.a.id)
    malformed: list[Any] = [
        [], "export", {}, {"format": "coalition.statement-export/9"}, {"format": EXPORT_FORMAT},
        {k: v for k, v in good.items() if k != "nonce"}, {k: v for k, v in good.items() if k != "proof"},
        dict(good, digest=None), dict(good, merchantStatements="all"), dict(good, publicKey="not a key"),
        dict(good, nonce=None), dict(good, nonce="Z" * 64), dict(good, proof=[{"side": "left"}] * 65),
    ]
    for document in malformed:
        with pytest.raises(VerificationError):
            verify_export(document, None)
