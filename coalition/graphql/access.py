"""Who may see what: the access rules of every object type, in one place.

============================  ==========  =====================================  ===================  =========
object                        admin       merchant                               member               anonymous
============================  ==========  =====================================  ===================  =========
Member                        all         enrolled it, or has a transaction      itself               none
                                          with it; or presented at the till
                                          (``member(loyaltyId:)``,
                                          ``memberByContact(contact:)``,
                                          mutations given a loyalty ID)
Transaction, Hold             all         its own                                its own              none
Merchant                      all         the partner directory                  the directory        none
SettlementBatch               all         every batch; in it only the lines,     none                 none
                                          position, transfers and adjustments
                                          that concern it
Insights                      network     its own members, network aggregates    none                 none
GiftCard                      all         the cards it sold; any card whose code     its wallet's cards;  none
                                          it presents (``giftCard(code:)``, the      any card whose code
                                          writes)                                    it presents
GiftCardLiability             all         its own (as issuer)                        none                 none
Campaign                      all         its own                                none                 none
TierPolicy                    yes         yes                                    yes                  yes
Reward, StampCard, Quest      all         all (the partners' public offers)      all                  none
Voucher                       all         of its own rewards                     its own              none
Member.stampCards, .quests,   all         its own cards / quests it is in /      its own              none
  .vouchers                               vouchers of its own rewards
CSV exports (pages)           network     its own members and transactions       none                 none
Cards (QR, PDF, wallet pass)  none        the members it enrolled                its own              none
WebhookEndpoint, -Delivery    all         its own                                none                 none
subscription transactions     all         its own                                its own              none
Network (public facts)        yes         yes                                    yes                  yes
============================  ==========  =====================================  ===================  =========

An object a caller may not see resolves to null, exactly as one that does not exist: the
same answer, and the same queries run (no "exists but forbidden" oracle, in content or in
time). ``tests/graphql/test_tenant_matrix.py`` checks every type and root field against
this table.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from coalition.auth.models import Role
from coalition.auth.service import Caller
from coalition.graphql.context import ResolveInfo
from coalition.graphql.dataloaders import MemberByIdLoader, RelatedMemberLoader
from coalition.graphql.errors import Forbidden


async def may_see_member(info: ResolveInfo, member_id: int) -> bool:
    caller = info.context.require_caller()
    if caller.role == Role.ADMIN:
        return True
    if caller.role == Role.MERCHANT and caller.merchant_id is not None:
        return bool(await info.context.loader(RelatedMemberLoader).load((int(caller.merchant_id), member_id)))
    return bool(caller.role == Role.MEMBER and caller.member_id == member_id)


async def visible_member(info: ResolveInfo, member_id: int) -> Any:
    """The member row if it exists and the caller may see it, else None.

    The row and the relationship are looked up together, whether or not the row exists, so
    "forbidden" costs what "not found" costs.
    """
    row, allowed = await asyncio.gather(info.context.loader(MemberByIdLoader).load(member_id),
                                        may_see_member(info, member_id))
    return row if row is not None and allowed else None


async def visible_member_ids(info: ResolveInfo, member_ids: Sequence[int]) -> set[int]:
    """Those of ``member_ids`` the caller may see (one query for the whole list)."""
    allowed = await asyncio.gather(*(may_see_member(info, member_id) for member_id in member_ids))
    return {member_id for member_id, ok in zip(member_ids, allowed, strict=True) if ok}


def may_see_ledger_row(info: ResolveInfo, merchant_id: int | None, member_id: int) -> bool:
    """Transactions and holds: admins all; a merchant its own; a member its own."""
    caller = info.context.require_caller()
    if caller.role == Role.ADMIN:
        return True
    if caller.role == Role.MERCHANT:
        return bool(merchant_id is not None and merchant_id == caller.merchant_id)
    return bool(caller.role == Role.MEMBER and caller.member_id == member_id)


def may_see_member_private(info: ResolveInfo, member_id: int) -> bool:
    """What is the member's own (its disputes): admins and the member itself, never a merchant."""
    caller = info.context.require_caller()
    return bool(caller.role == Role.ADMIN or (caller.role == Role.MEMBER and caller.member_id == member_id))


def may_see_merchant(info: ResolveInfo) -> bool:
    """The partner directory is open to every caller with credentials."""
    info.context.require_caller()
    return True


def may_see_batches(info: ResolveInfo) -> bool:
    """Settlement batches: admins and merchants (a member's ``node`` gets null, as for no batch)."""
    caller = info.context.require_caller()
    return bool(caller.role == Role.ADMIN or (caller.role == Role.MERCHANT and caller.merchant_id is not None))


def may_see_campaign(info: ResolveInfo, merchant_id: int) -> bool:
    """Campaigns: admins all; a merchant its own (a member, or another merchant, sees none)."""
    caller = info.context.require_caller()
    return bool(caller.role == Role.ADMIN or (caller.role == Role.MERCHANT and caller.merchant_id == merchant_id))


def campaign_scope(info: ResolveInfo) -> int | None:
    """Listing campaigns: None for an admin (all), the merchant's id for a merchant; members may not."""
    caller = info.context.require_caller()
    if caller.role == Role.ADMIN:
        return None
    if caller.role == Role.MERCHANT and caller.merchant_id is not None:
        return int(caller.merchant_id)
    raise Forbidden("campaigns are for admins and merchants")


def settlement_scope(info: ResolveInfo) -> int | None:
    """None for an admin (sees all), the merchant's id for a merchant; members may not look."""
    caller = info.context.require_caller()
    if caller.role == Role.ADMIN:
        return None
    if caller.role == Role.MERCHANT and caller.merchant_id is not None:
        return int(caller.merchant_id)
    raise Forbidden("settlement is for admins and merchants")


def may_see_gift_card(info: ResolveInfo, issuer_merchant_id: int, member_id: int | None) -> bool:
    """A gift card named by ID (``node``): admins, its issuer, the member whose wallet holds it.

    Whoever presents the card's code sees the card (``giftCard(code:)`` and the writes): the code is the card.
    """
    caller = info.context.require_caller()
    if caller.role == Role.ADMIN:
        return True
    if caller.role == Role.MERCHANT:
        return caller.merchant_id == issuer_merchant_id
    return bool(caller.role == Role.MEMBER and member_id is not None and caller.member_id == member_id)


def gift_card_scope(info: ResolveInfo) -> int | None:
    """Whose gift card liability the caller may list: None for an admin (all), the merchant's own id."""
    return settlement_scope(info)


def may_see_offers(info: ResolveInfo) -> bool:
    """Rewards, stamp cards and quests are the partners' public offers: every caller with credentials."""
    info.context.require_caller()
    return True


def may_see_voucher(info: ResolveInfo, merchant_id: int, member_id: int) -> bool:
    """A voucher is like a transaction: admins all; the reward's merchant; the member itself."""
    return may_see_ledger_row(info, merchant_id, member_id)


def program_scope(info: ResolveInfo) -> int | None:
    """Whose programs a visible member's stamp cards, quests and vouchers are read for: None (all) for an
    admin or the member itself, the merchant's id for a merchant (its own cards, its quests, its rewards'
    vouchers). Called on a member the caller may see."""
    caller = info.context.require_caller()
    if caller.role == Role.MERCHANT and caller.merchant_id is not None:
        return int(caller.merchant_id)
    return None


def may_hold_card(caller: Caller, member_id: int, enrolled_by_merchant_id: int | None) -> bool:
    """A member's cards (/members/{id}/...): the member itself and the merchant that enrolled it."""
    if caller.role == Role.MEMBER:
        return caller.member_id == member_id
    return bool(caller.role == Role.MERCHANT and caller.merchant_id is not None
                and caller.merchant_id == enrolled_by_merchant_id)


def export_scope(caller: Caller, named_merchant: int | None) -> int | None:
    """Whose data a CSV export holds: None (the network) for an admin naming no merchant, else one merchant's.

    A merchant exports its own only; a member token exports nothing.
    """
    if caller.role == Role.MERCHANT and caller.merchant_id is not None:
        if named_merchant not in (None, caller.merchant_id):
            raise Forbidden("a merchant key exports its own data only")
        return int(caller.merchant_id)
    if caller.role != Role.ADMIN:
        raise Forbidden("exports are for merchant and admin keys, not member tokens")
    return named_merchant


def webhook_scope(info: ResolveInfo) -> int | None:
    """Webhook endpoints and deliveries: an admin all (its own endpoints get every merchant's events),
    a merchant its own; members none."""
    caller = info.context.require_caller()
    if caller.role == Role.ADMIN:
        return None
    if caller.role == Role.MERCHANT and caller.merchant_id is not None:
        return int(caller.merchant_id)
    raise Forbidden("webhooks are for admins and merchants")


def live_scope(info: ResolveInfo) -> tuple[int | None, int | None]:
    """``subscription { transactions }``: ``(merchant_id, member_id)`` to filter on, None for any.

    An admin every transaction; a merchant those it made; a member its own (as ``Transaction`` reads)."""
    caller = info.context.require_caller()
    if caller.role == Role.ADMIN:
        return None, None
    if caller.role == Role.MERCHANT and caller.merchant_id is not None:
        return int(caller.merchant_id), None
    if caller.role == Role.MEMBER and caller.member_id is not None:
        return None, int(caller.member_id)
    raise Forbidden("live transactions are for admins, merchants and members")
