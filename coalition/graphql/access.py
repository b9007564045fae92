"""Who may see what: the access rules of every object type, in one place.

============================  ==========  =====================================  ===================  =========
object                        admin       merchant                               member               anonymous
============================  ==========  =====================================  ===================  =========
Member                        all         enrolled it, or has a transaction      itself               none
                                          with it; or presented at the till
                                          (``member(loyaltyId:)``, mutations
                                          given a loyalty ID)
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
