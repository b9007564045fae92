"""Proof of presence: the member's short-lived code that lets a merchant spend beyond the allowance.

A merchant that knows only a loyalty ID may redeem (or hold) at most the network policy's
``redeem_without_proof_points`` from one member in a rolling 24 hours. Beyond that it must
send ``memberProof``: the 8-digit code the member's wallet shows (``Member.presenceCode``,
member caller only), an HOTP (RFC 4226 truncation) of the current 30-second step under a key
derived from the master secret and the member's loyalty ID (``NetworkKeys.presence_key``).
The code of the previous step is accepted too, so a code lives 30 to 60 seconds; one code
backs one redemption, so a member redeeming twice within a step waits for the next code.

Where this lives. The check must run inside the redemption's transaction, under the member's
row lock: that lock is what serialises two redemptions of one member, so two of them cannot
both slip under the allowance, and it is where the used proof is written, once. The ledger
must not import the members' service (dependencies point API -> services -> ledger -> db), so
the code, its check and the allowance query live here, beside the ledger's other rules; the
GraphQL layer shows the code through :func:`presence_code`. The key is the loyalty ID's, not
the member id's, because the loyalty ID is what the till sends: the code is checked before the
database is touched, so a redemption with proof still takes the one-statement fast path on
PostgreSQL (``fastpath.py`` then only writes the proof, once).

Rules (``check``), with the member row locked:
- a proof given is always checked and used up, within the allowance or not; the redemption
  it backs does not count toward the allowance;
- without a proof, the merchant's redemptions and holds (as they stand: an open hold counts
  all its points, a captured one what it captured, a voided or expired one nothing) of the
  last 24 h without proof, plus this one, must stay within the allowance, else
  MEMBER_PROOF_REQUIRED (a reversed redemption still counts: refunds do not reopen it);
- a wrong, expired or already used proof: INVALID_MEMBER_PROOF (one code for all three, so
  the answer tells a guesser nothing), and after ``MAX_WRONG_PROOFS`` wrong proofs from one
  merchant for one member in an hour, every proof from it for that member is refused until
  the hour has passed: 10^8 codes, 2 valid at a time, make guessing hopeless.
"""

from __future__ import annotations

import datetime as dt
import hmac
from typing import Any

from sqlalchemy import BigInteger, bindparam, case, exists, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from coalition.crypto import NetworkKeys
from coalition.errors import InvalidInput, Refused
from coalition.ledger.models import Entry, EntryKind, Hold, HoldStatus, PresenceProof, Refusal

STEP_S = 30
DIGITS = 8
WINDOW = dt.timedelta(hours=24)
WRONG_PROOF_WINDOW = dt.timedelta(hours=1)  # fastpath.py writes it in its SQL as 3600 seconds
MAX_WRONG_PROOFS = 5


class MemberProofRequired(Refused):
    code = "MEMBER_PROOF_REQUIRED"


class InvalidMemberProof(Refused):
    code = "INVALID_MEMBER_PROOF"

    def __init__(self, message: str, *, member_id: int) -> None:
        super().__init__(message, field="memberProof")
        self.member_id = member_id  # kept with the refusal: wrong proofs are counted per member


def _step(now: dt.datetime) -> int:
    return int(now.timestamp()) // STEP_S


def _code(key: bytes, step: int) -> str:
    mac = hmac.new(key, step.to_bytes(8, "big"), "sha256").digest()
    offset = mac[-1] & 0x0F
    value = int.from_bytes(mac[offset:offset + 4], "big") & 0x7FFFFFFF
    return str(value % 10**DIGITS).zfill(DIGITS)


def presence_code(keys: NetworkKeys, loyalty_id: str, now: dt.datetime) -> str:
    """The member's current code (what the wallet shows, and later puts in the QR)."""
    return _code(keys.presence_key(loyalty_id), _step(now))


def matching_step(keys: NetworkKeys, loyalty_id: str, proof: str, now: dt.datetime) -> int | None:
    """The time step whose code ``proof`` is (this one or the one before), or None."""
    candidate = proof.strip().replace(" ", "").replace("-", "")
    if len(candidate) != DIGITS or not candidate.isascii() or not candidate.isdigit():
        return None
    key = keys.presence_key(loyalty_id)
    current = _step(now)
    found = None
    for step in (current, current - 1):  # compare both, always: the time taken says nothing
        if hmac.compare_digest(_code(key, step), candidate):
            found = step
    return found


def check_proof_input(proof: object) -> str | None:
    """A proof as sent (None: none). Its format is checked against the code, inside the transaction."""
    if proof is None:
        return None
    if not isinstance(proof, str):
        raise InvalidInput("memberProof must be a string of 8 digits", code=InvalidMemberProof.code,
                           field="memberProof")
    return proof[:64] or None


# Points taken from the member by this merchant in the window without a proof: redemptions,
# and holds as they stand. Built once, run with bind parameters.
_m = bindparam("p_member_id", type_=BigInteger)
_mc = bindparam("p_merchant_id", type_=BigInteger)
_since = bindparam("p_since", type_=Entry.__table__.c.created_at.type)
_this = bindparam("p_entry_id", type_=BigInteger)  # the redemption being checked is not its own history
_redeemed = (
    select(func.coalesce(func.sum(-Entry.points), 0))
    .where(Entry.member_id == _m, Entry.merchant_id == _mc, Entry.kind == EntryKind.REDEEM, Entry.created_at > _since,
           Entry.id != _this, ~exists().where(PresenceProof.entry_id == Entry.id))
    .scalar_subquery()
)
_held = (
    select(func.coalesce(func.sum(case(
        (Hold.status == HoldStatus.AUTHORIZED, Hold.points),
        (Hold.status == HoldStatus.CAPTURED, func.coalesce(Hold.captured_points, 0)),
        else_=0,
    )), 0))
    .where(Hold.member_id == _m, Hold.merchant_id == _mc, Hold.created_at > _since,
           Hold.id != _this, ~exists().where(PresenceProof.entry_id == Hold.id))
    .scalar_subquery()
)
_used = select((_redeemed + _held).label("used"))
_wrong_proofs = select(func.count()).where(
    Refusal.member_id == _m, Refusal.merchant_id == _mc, Refusal.code == InvalidMemberProof.code,
    Refusal.created_at > _since,
)


async def used_without_proof(
    conn: AsyncConnection, member_id: int, merchant_id: int, now: dt.datetime, entry_id: int
) -> int:
    params = {"p_member_id": member_id, "p_merchant_id": merchant_id, "p_since": now - WINDOW, "p_entry_id": entry_id}
    return int((await conn.execute(_used, params)).scalar_one())


async def check(
    conn: AsyncConnection, keys: NetworkKeys, *, member_id: int, loyalty_id: str, merchant_id: int, entry_id: int,
    points: int, proof: str | None, allowance: int, now: dt.datetime,
) -> None:
    """Apply the rules above to a redemption or hold ``entry_id`` of ``points``; the member row is locked."""
    if proof is None:
        used = await used_without_proof(conn, member_id, merchant_id, now, entry_id)
        if used + points > allowance:
            raise MemberProofRequired(
                f"member {loyalty_id}: this merchant may take {allowance} points in 24 hours without the member's "
                f"proof of presence and has taken {used}; ask for the code in the member's wallet and send it as "
                "memberProof, with a new idempotencyKey (this key keeps this refusal)", field="memberProof")
        return
    wrong = f"memberProof is not the current code of member {loyalty_id}: ask for the code in the member's wallet"
    params = {"p_member_id": member_id, "p_merchant_id": merchant_id, "p_since": now - WRONG_PROOF_WINDOW}
    if int((await conn.execute(_wrong_proofs, params)).scalar_one()) >= MAX_WRONG_PROOFS:
        raise InvalidMemberProof(wrong + f" (too many wrong codes in the last hour; at most {MAX_WRONG_PROOFS})",
                                 member_id=member_id)
    step = matching_step(keys, loyalty_id, proof, now)
    if step is None:
        raise InvalidMemberProof(wrong, member_id=member_id)
    make_insert: Any = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    used_now = (await conn.execute(
        make_insert(PresenceProof)
        .values(member_id=member_id, step=step, merchant_id=merchant_id, entry_id=entry_id, created_at=now)
        .on_conflict_do_nothing()
        .returning(PresenceProof.step)
    )).first()
    if used_now is None:  # the code was used before: a proof backs one redemption only
        raise InvalidMemberProof(wrong, member_id=member_id)


__all__ = ["InvalidMemberProof", "MemberProofRequired", "check", "presence_code"]
