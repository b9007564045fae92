"""Tenant isolation, proven by a generated matrix.

A small network (merchants A, B and C, members of each, transactions, holds, a reversal, a
settlement batch, stored insights) is walked as admin, as each merchant, as two members and
anonymously:

* every root field of the INTROSPECTED schema, with every field of every type it reaches
  (required arguments filled from the seeded data, other tenants' loyalty IDs and IDs
  included), and ``node(id:)`` with every seeded object's ID, as issued and as a caller
  would guess it (``base64("Member:2")``);
* every mutation, as every role that may not call it (refused, nothing written), and the
  ledger mutations with every other merchant's hold and transaction (not found, nothing
  written);
* every page route of the app, path parameters filled from the seeded data.

Every object in every response is checked against ``TYPE_RULES`` (who may see it) and every
root field, mutation and page against ``ROOT_RULES`` / ``sample_inputs`` / ``PAGE_RULES``. A new
type, root field, mutation or page without a rule here fails the test: whoever adds one
decides who may see or call it.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from planted_network import forget_cached_insights
from sqlalchemy import func, select, update
from starlette.routing import Mount, Route

from coalition.config import QUERY_BUDGET_NAMES, Settings
from coalition.crypto import NetworkKeys
from coalition.giftcards.models import GiftCard, GiftEntry
from coalition.giftcards.service import GiftCards
from coalition.ledger.errors import HoldNotFound, TransactionNotFound
from coalition.ledger.models import Entry, Hold
from coalition.ledger.service import Ledger
from coalition.members.credentials import add_token
from coalition.members.disputes import dispute_transaction
from coalition.members.models import Dispute, Member, MemberCredential
from coalition.members.service import enroll_member
from coalition.network.jobs import run_analysis
from coalition.network.store import InsightStore
from coalition.partners.models import Merchant
from coalition.partners.service import onboard_merchant
from coalition.programs.campaign_models import Campaign
from coalition.programs.campaigns import create_campaign
from coalition.programs.hooks import after_earn
from coalition.programs.quests import create_quest
from coalition.programs.reward_models import Quest, Reward, StampCard, Voucher
from coalition.programs.rewards import create_reward
from coalition.programs.stamps import create_stamp_card
from coalition.programs.tier_models import TierPolicyVersion
from coalition.programs.vouchers import claim_reward
from coalition.settlement.models import NetworkPolicy, SettlementBatch
from coalition.settlement.service import run_settlement
from coalition.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from coalition.webhooks.outbox import install
from coalition.webhooks.service import EVENT_TYPE_NAMES, create_endpoint

ADMIN, ANON = "admin", "anonymous"
MERCHANTS = ("A", "B", "C")
MEMBERS = ("m1", "m2")  # the members who call with their own token
ROLES = (ADMIN, *MERCHANTS, *MEMBERS, ANON)
NODE_TYPES = ("Merchant", "Member", "Transaction", "Hold", "SettlementBatch", "Dispute", "GiftCard", "Campaign",
              "Reward", "Voucher", "StampCard", "Quest", "WebhookEndpoint", "WebhookDelivery")
MAX_TYPE_REPEATS = 2  # a type may appear twice on one path (Transaction.reverses: a Transaction)
DENIED = {"UNAUTHENTICATED", "FORBIDDEN"}
HOLD_NOT_FOUND, TRANSACTION_NOT_FOUND = HoldNotFound.code, TransactionNotFound.code


@dataclass
class Net:
    """The seeded network and what each role may see of it (recorded as it is built)."""

    merchant: dict[str, int] = field(default_factory=dict)  # A -> merchant id
    api_key: dict[str, str] = field(default_factory=dict)  # role -> credential
    member: dict[str, Any] = field(default_factory=dict)  # m1 -> member row
    related: dict[int, set[int]] = field(default_factory=dict)  # merchant id -> member ids it may see
    entries: dict[int, tuple[int | None, int]] = field(default_factory=dict)  # entry id -> (merchant, member)
    holds: dict[int, tuple[int, int]] = field(default_factory=dict)  # hold id -> (merchant, member)
    batches: list[int] = field(default_factory=list)
    disputes: dict[int, int] = field(default_factory=dict)  # dispute id -> member id
    gift_cards: dict[int, tuple[int, int | None]] = field(default_factory=dict)  # card id -> (issuer, member)
    gift_codes: list[str] = field(default_factory=list)  # every seeded card's code
    campaigns: dict[int, int] = field(default_factory=dict)  # campaign id -> merchant id
    rewards: dict[int, int] = field(default_factory=dict)  # reward id -> merchant id
    vouchers: dict[int, tuple[int, int]] = field(default_factory=dict)  # voucher id -> (merchant, member)
    voucher_codes: dict[str, int] = field(default_factory=dict)  # code -> merchant id
    cards: dict[int, int] = field(default_factory=dict)  # stamp card id -> merchant id
    quests: dict[int, set[int]] = field(default_factory=dict)  # quest id -> its merchants
    webhooks: dict[int, int | None] = field(default_factory=dict)  # endpoint id -> merchant id (None: admin's)
    deliveries: dict[int, int | None] = field(default_factory=dict)  # delivery id -> its endpoint's merchant
    ids: dict[str, tuple[str, int]] = field(default_factory=dict)  # global ID as issued -> (type, id)
    guesses: dict[str, tuple[str, int]] = field(default_factory=dict)  # base64("Type:n") -> (type, id)

    def member_id_of(self, role: str) -> int | None:
        return int(self.member[role].id) if role in MEMBERS else None

    def merchant_id_of(self, role: str) -> int | None:
        return self.merchant.get(role)


async def member_token(db: Any, member_id: int, now: Any) -> str:
    """How a member gets its credential (the one place to change when credentials change)."""
    async with db.sessions.begin() as session:
        return await add_token(session, member_id, now=now)


async def seed(db: Any, keys: NetworkKeys, ledger: Ledger, settings: Any, clock: Any) -> Net:
    net = Net()
    for name in MERCHANTS:
        onboarded = await onboard_merchant(db, name=f"Shop {name}", category="test", earn_rate_points_per_unit=1)
        net.merchant[name], net.api_key[name] = onboarded.merchant.id, onboarded.api_key
        net.related[onboarded.merchant.id] = set()
    counter = iter(range(1, 10_000))

    async def enroll(label: str, shop: str, referred_by: Any = None) -> Any:
        enrolled = await enroll_member(db, keys, merchant_id=net.merchant[shop], idempotency_key=f"e{next(counter)}",
                                       email=f"{label}@example.com",
                                       referral_code=referred_by.referral_code if referred_by else None,
                                       now=clock.now)
        net.member[label] = enrolled.member
        net.related[net.merchant[shop]].add(enrolled.member.id)
        return enrolled.member

    def wrote(result: Any, shop: str, label: str) -> None:
        member_id, merchant_id = net.member[label].id, net.merchant[shop]
        net.related[merchant_id].add(member_id)
        net.entries[result.entry.id] = (merchant_id, member_id)
        if result.hold is not None:
            net.holds[result.hold.id] = (merchant_id, member_id)

    async def earn(label: str, shop: str, amount: int) -> Any:
        result = await ledger.earn(merchant_id=net.merchant[shop], loyalty_id=net.member[label].loyalty_id,
                                   purchase_amount_minor=amount, idempotency_key=f"p{next(counter)}")
        wrote(result, shop, label)
        clock.advance(minutes=5)
        return result

    async def redeem(label: str, shop: str, points: int) -> Any:
        result = await ledger.redeem(merchant_id=net.merchant[shop], loyalty_id=net.member[label].loyalty_id,
                                     points=points, idempotency_key=f"p{next(counter)}")
        wrote(result, shop, label)
        clock.advance(minutes=5)
        return result

    # Endpoints for A, B and the admin: every write below fills their outbox (C has none).
    install(db, cache_s=0.0)
    for owner in ("A", "B", None):
        made = await create_endpoint(db, keys, merchant_id=net.merchant[owner] if owner else None,
                                     url=f"http://127.0.0.1:9/{owner or 'admin'}", events=list(EVENT_TYPE_NAMES),
                                     idempotency_key="w", allowed_hosts=frozenset({"127.0.0.1"}))
        net.webhooks[made.endpoint.id] = made.endpoint.merchant_id
    # A enrolls m1 and m4 (referred by m1), B enrolls m2 and m5, C enrolls m3.
    m1 = await enroll("m1", "A")
    await enroll("m2", "B")
    await enroll("m3", "C")
    await enroll("m4", "A", referred_by=m1)
    await enroll("m5", "B")
    await earn("m1", "A", 50_00)
    await earn("m2", "B", 50_00)
    await earn("m3", "C", 50_00)
    earned = await earn("m4", "A", 30_00)
    await earn("m1", "B", 20_00)  # B now knows m1 through a purchase
    disputed = await redeem("m1", "C", 10)  # and C through a redemption
    await redeem("m2", "A", 10)
    held = await ledger.authorize(merchant_id=net.merchant["C"], loyalty_id=net.member["m3"].loyalty_id,
                                  points=20, idempotency_key="h1")
    wrote(held, "C", "m3")
    held = await ledger.authorize(merchant_id=net.merchant["A"], loyalty_id=net.member["m1"].loyalty_id,
                                  points=15, idempotency_key="h2")
    wrote(held, "A", "m1")
    wrote(await ledger.capture(merchant_id=net.merchant["A"], hold_id=held.hold.id, idempotency_key="c2"), "A", "m1")
    wrote(await ledger.reverse(merchant_id=net.merchant["A"], transaction_id=earned.entry.id, idempotency_key="r1"),
          "A", "m4")
    clock.advance(hours=1)
    run = await run_settlement(db, settings, keys, period_end=clock.now, idempotency_key="s1", now=clock.now)
    net.batches.append(run.batch.id)
    clock.advance(hours=1)
    await earn("m3", "C", 10_00)  # after the batch: unsettled
    await run_analysis(db, settings, now=clock.now)
    dispute = await dispute_transaction(db, member_id=net.member["m1"].id, entry_id=disputed.entry.id,
                                        reason="I was not there", idempotency_key="d1", now=clock.now)
    net.disputes[dispute.id] = net.member["m1"].id
    for shop in ("A", "B"):
        campaign = await create_campaign(db, keys, InsightStore(db), merchant_id=net.merchant[shop],
                                         name=f"{shop} days", kind="BONUS", bonus_points=5, control_percent=10,
                                         starts_at=clock.now, ends_at=clock.now + dt.timedelta(days=3),
                                         idempotency_key="c1", now=clock.now)
        net.campaigns[campaign.id] = net.merchant[shop]
    await seed_programs(db, ledger, net, clock)

    # Every entry and hold as written (bonuses and expiries included), and the relationships
    # they make: a merchant knows the members it enrolled or has a transaction with.
    async with db.read() as conn:
        for entry_id, merchant_id, member_id in (await conn.execute(select(Entry.id, Entry.merchant_id,
                                                                           Entry.member_id))).all():
            net.entries[entry_id] = (merchant_id, member_id)
            if merchant_id is not None:
                net.related[merchant_id].add(member_id)
        for hold_id, merchant_id, member_id in (await conn.execute(select(Hold.id, Hold.merchant_id,
                                                                          Hold.member_id))).all():
            net.holds[hold_id] = (merchant_id, member_id)
    # Gift cards: one sold at A, spent at B and put in m1's wallet; one sold at C.
    gift = GiftCards(db, settings, keys, clock=clock)
    sold_a = await gift.issue(merchant_id=net.merchant["A"], amount_minor=5000, idempotency_key="g1")
    await gift.redeem(merchant_id=net.merchant["B"], caller_key="seed", code=str(sold_a.code), amount_minor=700,
                      idempotency_key="g2")
    await gift.attach(member_id=net.member["m1"].id, code=str(sold_a.code))
    sold_c = await gift.issue(merchant_id=net.merchant["C"], amount_minor=900, idempotency_key="g3")
    net.gift_cards[sold_a.card.id] = (net.merchant["A"], net.member["m1"].id)
    net.gift_cards[sold_c.card.id] = (net.merchant["C"], None)
    net.gift_codes += [str(sold_a.code), str(sold_c.code)]
    async with db.read() as conn:
        for delivery_id, endpoint_id in (await conn.execute(select(WebhookDelivery.id,
                                                                   WebhookDelivery.endpoint_id))).all():
            net.deliveries[delivery_id] = net.webhooks[endpoint_id]
    async with db.transaction() as conn:  # as if sent: a replay then shows as PENDING again
        await conn.execute(update(WebhookDelivery).values(status=DeliveryStatus.DELIVERED, attempts=1,
                                                          delivered_at=clock.now))
    db.hooks = None
    for label in MEMBERS:
        net.api_key[label] = await member_token(db, net.member[label].id, clock.now)
    objects = [("Merchant", i) for i in net.merchant.values()] + [("Member", m.id) for m in net.member.values()]
    objects += [("Transaction", i) for i in net.entries] + [("Hold", i) for i in net.holds]
    objects += [("SettlementBatch", i) for i in net.batches] + [("Dispute", i) for i in net.disputes]
    objects += [("GiftCard", i) for i in net.gift_cards]
    objects += [("Campaign", i) for i in net.campaigns]
    objects += [("Reward", i) for i in net.rewards] + [("Voucher", i) for i in net.vouchers]
    objects += [("StampCard", i) for i in net.cards] + [("Quest", i) for i in net.quests]
    objects += [("WebhookEndpoint", i) for i in net.webhooks] + [("WebhookDelivery", i) for i in net.deliveries]
    for type_name, value in objects:
        net.ids[keys.global_ids.encode(type_name, value)] = (type_name, value)
        net.guesses[base64.b64encode(f"{type_name}:{value}".encode()).decode()] = (type_name, value)
    return net


async def seed_programs(db: Any, ledger: Ledger, net: Net, clock: Any) -> None:
    """A reward, a stamp card and a quest of each kind, with claims and a full card."""
    shop = net.merchant
    for name in MERCHANTS:
        made = await create_reward(db, merchant_id=shop[name], name=f"Gift of {name}", points_cost=5, stock=10,
                                   idempotency_key="rw", now=clock.now)
        net.rewards[made.id] = shop[name]
    reward_of = {merchant: reward for reward, merchant in net.rewards.items()}
    card = await create_stamp_card(ledger, merchant_id=shop["A"], name="Coffee card", stamps_required=2,
                                   min_purchase_minor=100, reward_id=reward_of[shop["A"]], idempotency_key="sc",
                                   now=clock.now)
    net.cards[card.id] = shop["A"]
    quest = await create_quest(db, name="Tour", merchant_ids=[shop["A"], shop["B"], shop["C"]], visits_required=2,
                               window_days=30, bonus_points=9, funding="PARTNERS",
                               starts_at=clock.now - dt.timedelta(days=1), ends_at=clock.now + dt.timedelta(days=30),
                               idempotency_key="q", now=clock.now)
    net.quests[quest.id] = {shop["A"], shop["B"], shop["C"]}
    for n, where in enumerate(("A", "A", "B")):  # m1: a full card at A, the quest done at B
        earned = await ledger.earn(merchant_id=shop[where], loyalty_id=net.member["m1"].loyalty_id,
                                   purchase_amount_minor=5_00, idempotency_key=f"prog-{n}")
        await after_earn(ledger, earned)
    claims = [await claim_reward(ledger, reward_id=reward_of[shop["B"]], loyalty_id=net.member["m2"].loyalty_id,
                                 merchant_id=shop["B"], idempotency_key="cl1", now=clock.now),
              await claim_reward(ledger, reward_id=reward_of[shop["C"]], loyalty_id=net.member["m1"].loyalty_id,
                                 member_id=net.member["m1"].id, idempotency_key="cl2", now=clock.now)]
    async with db.read() as conn:
        for v in await conn.execute(select(Voucher.id, Voucher.merchant_id, Voucher.member_id, Voucher.code)):
            net.vouchers[v.id] = (v.merchant_id, v.member_id)
            net.voucher_codes[v.code] = v.merchant_id
    assert len(net.vouchers) == 3 and claims[0].voucher.id in net.vouchers


# --- who may see what -------------------------------------------------------------------

@dataclass
class Seen:
    """One object in a response, with what the rules need to judge it."""

    role: str
    type_name: str
    obj: dict[str, Any]
    presented: set[int]  # members whose loyalty ID the request itself presented (the till lookup)
    net: Net
    where: str = ""  # the root field (or node(...)) the object came from

    def ref(self, value: Any) -> tuple[str, int] | None:
        """(type, id) of a nested object or ID, None for null; raises for an ID nobody issued."""
        if value is None:
            return None
        global_id = value["id"] if isinstance(value, dict) else value
        if global_id not in self.net.ids:
            raise AssertionError(f"{self.role} got an ID that is not a seeded object's: {global_id!r}")
        return self.net.ids[global_id]

    @property
    def own(self) -> tuple[str, int]:
        found = self.ref(self.obj)
        assert found is not None and found[0] == self.type_name, (self.type_name, found)
        return found

    def merchant_is_me(self, key: str) -> bool:
        found = self.ref(self.obj.get(key))
        return found is not None and found[1] == self.net.merchant_id_of(self.role)


def anyone_with_a_key(seen: Seen) -> bool:
    return seen.role != ANON


def staff(seen: Seen) -> bool:
    return seen.role == ADMIN or seen.role in MERCHANTS


def admin_only(seen: Seen) -> bool:
    return seen.role == ADMIN


def everyone(seen: Seen) -> bool:
    return True


def merchant_only(seen: Seen) -> bool:
    return seen.role in MERCHANTS


def member_rule(seen: Seen) -> bool:
    member_id = seen.own[1]
    if seen.role == ADMIN:
        return True
    if seen.role in MERCHANTS:
        return member_id in seen.net.related[seen.net.merchant[seen.role]] or member_id in seen.presented
    return member_id == seen.net.member_id_of(seen.role)


def ledger_rule(table: str) -> Callable[[Seen], bool]:
    def rule(seen: Seen) -> bool:
        merchant_id, member_id = getattr(seen.net, table)[seen.own[1]]
        if seen.role == ADMIN:
            return True
        if seen.role in MERCHANTS:
            return merchant_id == seen.net.merchant[seen.role]
        return member_id == seen.net.member_id_of(seen.role)

    return rule


def concerns_me(*keys: str) -> Callable[[Seen], bool]:
    """Settlement rows: an admin sees all, a merchant those naming it in one of ``keys``."""

    def rule(seen: Seen) -> bool:
        if seen.role == ADMIN:
            return True
        return seen.role in MERCHANTS and any(seen.merchant_is_me(key) for key in keys)

    return rule


def insights_view(seen: Seen) -> bool:
    if seen.role == ADMIN:
        return True
    return seen.role in MERCHANTS and seen.obj.get("scope") == "MERCHANT" and seen.merchant_is_me("merchant")


def recommendation_rule(seen: Seen) -> bool:
    return seen.role == ADMIN or (seen.role in MERCHANTS and seen.merchant_is_me("forMerchant"))


def adjustment_rule(seen: Seen) -> bool:
    return concerns_me("issuer", "redeemer")(seen)


def dispute_rule(seen: Seen) -> bool:
    """An admin, or the member who disputes (never a merchant, not even the one disputed)."""
    return seen.role == ADMIN or seen.net.disputes[seen.own[1]] == seen.net.member_id_of(seen.role)


def gift_card_rule(seen: Seen) -> bool:
    """Whoever presents a card's code sees it (``giftCard(code:)``); by ID, its issuer and the member's wallet."""
    issuer, member_id = seen.net.gift_cards[seen.own[1]]
    if seen.role == ADMIN or (seen.where == "giftCard" and seen.role != ANON):
        return True
    if seen.role in MERCHANTS:
        return issuer == seen.net.merchant[seen.role]
    return member_id is not None and member_id == seen.net.member_id_of(seen.role)


def campaign_rule(seen: Seen) -> bool:
    """An admin, or the merchant that runs it."""
    return seen.role == ADMIN or seen.net.campaigns[seen.own[1]] == seen.net.merchant_id_of(seen.role)


def admin_or_member(seen: Seen) -> bool:
    return seen.role == ADMIN or seen.role in MEMBERS


def member_only(seen: Seen) -> bool:
    return seen.role in MEMBERS


def claimant(seen: Seen) -> bool:
    """Claiming a code: the customer, with no key yet or with its own token."""
    return seen.role == ANON or seen.role in MEMBERS


def _ref_in(seen: Seen, type_name: str, name: str) -> tuple[str, int] | None:
    values = field_values(seen.obj, type_name, name)
    return seen.ref(values[0]) if values else None


def stamp_progress_rule(seen: Seen) -> bool:
    """Reached through a Member the caller may see; a merchant sees progress on its own cards only."""
    if seen.role in MERCHANTS:
        card = _ref_in(seen, "StampProgress", "stampCard")
        return card is not None and seen.net.cards[card[1]] == seen.net.merchant[seen.role]
    return seen.role != ANON


def quest_progress_rule(seen: Seen) -> bool:
    """Reached through a Member the caller may see; a merchant sees the quests it is in only."""
    if seen.role in MERCHANTS:
        quest = _ref_in(seen, "QuestProgress", "quest")
        return quest is not None and seen.net.merchant[seen.role] in seen.net.quests[quest[1]]
    return seen.role != ANON


def merchant_or_member(seen: Seen) -> bool:
    return seen.role in MERCHANTS or seen.role in MEMBERS
def webhook_rule(table: str) -> Callable[[Seen], bool]:
    """Webhook endpoints and deliveries: the admin all, a merchant those of its own endpoints."""

    def rule(seen: Seen) -> bool:
        owner = getattr(seen.net, table)[seen.own[1]]
        return seen.role == ADMIN or (seen.role in MERCHANTS and owner == seen.net.merchant[seen.role])

    return rule


def viewer_of(role_kind: str) -> Callable[[Seen], bool]:
    def rule(seen: Seen) -> bool:
        kind = ADMIN if seen.role == ADMIN else "merchant" if seen.role in MERCHANTS else "member"
        return kind == role_kind

    return rule


TYPE_RULES: dict[str, Callable[[Seen], bool]] = {
    # objects with an ID
    "Member": member_rule,
    "Transaction": ledger_rule("entries"),
    "Hold": ledger_rule("holds"),
    "Merchant": anyone_with_a_key,  # the partner directory
    "SettlementBatch": staff,  # its totals are in the signed statement every merchant verifies
    "Dispute": dispute_rule,
    "GiftCard": gift_card_rule,
    "GiftCardLiability": concerns_me("issuer"),
    "WebhookEndpoint": webhook_rule("webhooks"),
    "WebhookDelivery": webhook_rule("deliveries"),
    "WebhookEndpointConnection": staff,
    "WebhookEndpointEdge": staff,
    "WebhookDeliveryConnection": staff,
    "WebhookDeliveryEdge": staff,
    "CreateWebhookEndpointPayload": staff,
    "DeleteWebhookEndpointPayload": staff,
    "ReplayWebhookDeliveryPayload": staff,
    "DisputeConnection": admin_or_member,  # disputes (admin), Member.disputes (the member itself)
    "DisputeEdge": admin_or_member,
    "Campaign": campaign_rule,
    "CampaignConnection": staff,  # campaigns: an admin every one, a merchant its own (checked as Campaign)
    "CampaignEdge": staff,
    "CampaignResult": staff,  # inside a Campaign only
    "TierStatus": anyone_with_a_key,  # inside a Member only (checked as Member)
    "TierPolicy": everyone,
    "TierLevel": everyone,
    # programs: the offers are public to every key; a voucher is like a transaction
    "Reward": anyone_with_a_key,
    "RewardConnection": anyone_with_a_key,
    "RewardEdge": anyone_with_a_key,
    "StampCard": anyone_with_a_key,
    "Quest": anyone_with_a_key,
    "Voucher": ledger_rule("vouchers"),
    "VoucherConnection": anyone_with_a_key,  # Member.vouchers: its nodes are checked as Voucher
    "VoucherEdge": anyone_with_a_key,
    "StampProgress": stamp_progress_rule,
    "QuestProgress": quest_progress_rule,
    "RewardPayload": merchant_only,
    "VoucherPayload": merchant_or_member,  # claimReward (till or wallet), useVoucher (merchant)
    "StampCardPayload": merchant_only,
    "QuestPayload": admin_only,
    # settlement: only what concerns the merchant
    "SettlementLine": concerns_me("issuer", "redeemer"),
    "NetPosition": concerns_me("merchant"),
    "SettlementTransfer": concerns_me("payer", "payee"),
    "SettlementAdjustment": adjustment_rule,
    "SettlementBatchConnection": staff,
    "SettlementBatchEdge": staff,
    "SettlementSimulation": admin_only,
    "SimulatedPosition": admin_only,
    "SettlementTotals": admin_only,
    # insights: a merchant's own view, its own members (checked as Member objects)
    "NetworkInsights": insights_view,
    "ReferralInsight": staff,
    "PartnerRecommendation": recommendation_rule,
    "FraudAlert": admin_only,
    "SegmentCount": staff,
    "MerchantCommunity": staff,
    "WinBackMember": staff,
    "MemberRfm": staff,
    # who is calling
    "AdminViewer": viewer_of(ADMIN),
    "MerchantViewer": viewer_of("merchant"),
    "MemberViewer": viewer_of("member"),
    # mutation payloads (what they hold is checked on its own)
    "LedgerPayload": merchant_only,
    "IssueGiftCardPayload": merchant_only,
    "GiftCardPayload": merchant_or_member,  # the gift card writes (merchant), attachGiftCard (member)
    "EnrollMemberPayload": merchant_only,
    "MemberTokenPayload": claimant,  # claimMemberAccess (the customer), rotateMemberToken (the member)
    "RevokeMemberTokensPayload": admin_or_member,
    "IssueMemberClaimCodePayload": admin_only,
    "DisputePayload": admin_or_member,  # disputeTransaction (member), resolveDispute (admin)
    "OnboardMerchantPayload": admin_only,
    "SuspendMerchantPayload": admin_only,
    "ReviewFraudAlertPayload": admin_only,
    "FraudReview": admin_only,
    "RunSettlementPayload": admin_only,
    "SetNetworkPolicyPayload": admin_only,
    "SetTierPolicyPayload": admin_only,
    "CampaignPayload": merchant_only,
    "ReconcilePosExportPayload": staff,
    "ReconciliationReport": concerns_me("merchant"),
    "ReconciliationLine": staff,
    "ReconciliationTotals": staff,
    "ReconciliationTotalsByStatus": staff,
    "CsvRowError": staff,
    "UserError": everyone,
    # containers and public facts (what they hold is checked on its own)
    "MerchantConnection": anyone_with_a_key,
    "MerchantEdge": anyone_with_a_key,
    "TransactionConnection": anyone_with_a_key,
    "TransactionEdge": anyone_with_a_key,
    "PageInfo": everyone,
    "Network": everyone,
    "NetworkPolicy": everyone,
}

# Root fields: the roles that get an answer (the others get null and UNAUTHENTICATED/FORBIDDEN).
STAFF_ROLES = {ADMIN, *MERCHANTS}
KEY_ROLES = set(ROLES) - {ANON}
ROOT_RULES: dict[str, set[str]] = {
    "node": KEY_ROLES,
    "viewer": set(ROLES),  # null without credentials
    "network": set(ROLES),
    "merchants": KEY_ROLES,
    "member": STAFF_ROLES,  # the till lookup by presented loyalty ID
    "memberByContact": set(MERCHANTS),  # the till lookup by the customer's exact e-mail or phone
    "settlementBatches": STAFF_ROLES,
    "networkPolicy": set(ROLES),
    "simulateSettlement": {ADMIN},
    "insights": STAFF_ROLES,
    "disputes": {ADMIN},
    "giftCard": KEY_ROLES,  # anyone with a key who has the code
    "giftCardLiabilities": STAFF_ROLES,  # a merchant its own, an admin every issuer's
    "campaigns": STAFF_ROLES,
    "tierPolicy": set(ROLES),
    "rewards": KEY_ROLES,  # the partners' public offers
    "webhookEndpoints": STAFF_ROLES,
}


# --- walking the introspected schema -------------------------------------------------------

INTROSPECTION = """{ __schema { queryType { name } mutationType { name } types { kind name
  possibleTypes { name }
  fields { name args { name type { kind name ofType { kind name ofType { kind name ofType { kind name } } } } }
           type { kind name ofType { kind name ofType { kind name ofType { kind name } } } } }
  inputFields { name type { kind name ofType { kind name ofType { kind name } } } } } } }"""


def named(type_ref: dict[str, Any]) -> str:
    while type_ref.get("ofType"):
        type_ref = type_ref["ofType"]
    return str(type_ref["name"])


def required(type_ref: dict[str, Any]) -> bool:
    return type_ref["kind"] == "NON_NULL"


class Walker:
    """Builds documents that select every field the schema offers, and checks the answers."""

    def __init__(self, schema: dict[str, Any], net: Net) -> None:
        self.types = {t["name"]: t for t in schema["types"]}
        self.query = self.types[schema["queryType"]["name"]]
        self.net = net
        self.selected: set[tuple[str, str]] = set()
        loyalty = [m.loyalty_id for m in net.member.values()]
        merchants = [i for i, (t, _) in net.ids.items() if t == "Merchant"]
        batch = next(i for i, (t, _) in net.ids.items() if t == "SettlementBatch")
        # argument values by name: required ones get every value (as aliases or variants)
        # a contact the customer gives at the till presents that member, as a loyalty ID does
        self.contact_loyalty = {f"{label}@example.com": m.loyalty_id for label, m in net.member.items()}
        self.values: dict[str, list[Any]] = {
            "loyaltyId": loyalty,
            "code": net.gift_codes,
            "contact": list(self.contact_loyalty),
            "merchantId": merchants,
            "input": [{"policy": {"reimbursementRate": "0.5"}, "batchId": batch}],
        }

    def reachable(self, root: str | None = None) -> set[str]:
        """Object types reachable from ``root`` (default Query; node's possible types included)."""
        root = root or self.query["name"]
        seen: set[str] = set()
        todo = [root]
        while todo:
            name = todo.pop()
            if name in seen or name.startswith("__"):
                continue
            seen.add(name)
            t = self.types[name]
            todo += [p["name"] for p in t.get("possibleTypes") or []]
            todo += [named(f["type"]) for f in t.get("fields") or []]
        return {n for n in seen if self.types[n]["kind"] == "OBJECT" and n != root}

    def _arguments(self, owner: str, f: dict[str, Any]) -> list[str]:
        """Argument lists to try: every value of each required argument; optional ``first`` at 100."""
        variants = [""]
        for arg in f["args"]:
            if arg["name"] == "first":
                variants = [v + "first: 100 " for v in variants]
            elif required(arg["type"]):
                assert arg["name"] in self.values, f"no seeded value for {owner}.{f['name']}({arg['name']}:)"
                variants = [v + f"{arg['name']}: {literal(value)} " for v in variants
                            for value in self.values[arg["name"]]]
        return [f"({v.strip()})" if v else "" for v in variants]

    def selection(self, type_name: str, path: tuple[str, ...], in_fragment: bool = False) -> str:
        """Every field of ``type_name``; in a fragment of an interface or union each field is
        aliased ``Type_field`` (``Hold.status`` and ``Merchant.status`` differ in type)."""
        t = self.types[type_name]
        parts = ["__typename"]
        if t["kind"] in ("INTERFACE", "UNION"):
            parts += [f"... on {p['name']} {{ {self.selection(p['name'], path, True)} }}" for p in t["possibleTypes"]]
            if t["kind"] == "UNION":
                return " ".join(parts)
        for f in t["fields"]:
            target = named(f["type"])
            nested = self.types[target]["kind"] in ("OBJECT", "INTERFACE", "UNION")
            if nested and path.count(target) >= MAX_TYPE_REPEATS:
                continue
            self.selected.add((type_name, f["name"]))
            for n, args in enumerate(self._arguments(type_name, f)):
                alias = f"{f['name']}_{n}: " if n else ""
                if in_fragment and f["name"] != "id":
                    alias = f"{type_name}_{f['name']}_{n}: "
                body = f" {{ {self.selection(target, (*path, target))} }}" if nested else ""
                parts.append(f"{alias}{f['name']}{args}{body}")
        return " ".join(parts)

    def root_documents(self) -> Iterator[tuple[str, str, set[str]]]:
        """(root field, document, loyalty IDs it presents) for every root field and argument variant."""
        for f in self.query["fields"]:
            if f["name"] == "node":
                continue  # walked with every ID by node_documents
            target = named(f["type"])
            self.selected.add((self.query["name"], f["name"]))
            nested = self.types[target]["kind"] in ("OBJECT", "INTERFACE", "UNION")
            body = f" {{ {self.selection(target, (target,))} }}" if nested else ""
            variants = self._arguments(self.query["name"], f)
            if f["name"] == "insights":  # optional merchantId: every merchant's view, as every role
                variants += [f"(merchantId: {literal(m)})" for m in self.values["merchantId"]]
            for args in variants:
                document = f"{{ {f['name']}{args}{body} }}"
                presented = {lid for lid in self.values["loyaltyId"] if lid in document}
                presented |= {lid for contact, lid in self.contact_loyalty.items() if json.dumps(contact) in document}
                yield f["name"], document, presented

    def node_document(self) -> str:
        self.selected.add((self.query["name"], "node"))
        return f"query($id: ID!) {{ node(id: $id) {{ {self.selection('Node', ('Node',))} }} }}"


def literal(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + " ".join(f"{k}: {literal(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def objects_in(data: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(data, dict):
        if "__typename" in data:
            yield data["__typename"], data
        for value in data.values():
            yield from objects_in(value)
    elif isinstance(data, list):
        for item in data:
            yield from objects_in(item)


# --- the test ------------------------------------------------------------------------------

def the_member_itself(seen: Seen) -> bool:
    return seen.own[1] == seen.net.member_id_of(seen.role)


# Fields only some of those who see the object may read (others get null): a member's contact
# data and its proof of presence are the member's own.
FIELD_RULES: dict[tuple[str, str], Callable[[Seen], bool]] = {
    ("Member", "email"): the_member_itself,
    ("Member", "phone"): the_member_itself,
    ("Member", "presenceCode"): the_member_itself,
    ("Member", "giftCards"): the_member_itself,
}


def field_values(obj: dict[str, Any], type_name: str, name: str) -> list[Any]:
    """The values of field ``name`` in ``obj``, plain or aliased as the walker aliases them."""
    return [value for key, value in obj.items() if key == name or key.startswith(f"{type_name}_{name}_")]


def judged(net: Net, role: str, where: str, data: Any, presented: set[int]) -> list[str]:
    """What ``role`` should not have seen in ``data``."""
    leaks = []
    for type_name, obj in objects_in(data):
        seen = Seen(role, type_name, obj, presented, net, where)
        try:
            allowed = TYPE_RULES[type_name](seen)
            hidden = [name for (owner, name), rule in FIELD_RULES.items() if owner == type_name and not rule(seen)]
        except AssertionError as error:
            leaks.append(f"{role} {where}: {type_name}: {error}")
            continue
        if not allowed:
            leaks.append(f"{role} {where}: may not see {type_name} {json.dumps(obj)[:160]}")
        for name in hidden:
            if any(value is not None for value in field_values(obj, type_name, name)):
                leaks.append(f"{role} {where}: may not read {type_name}.{name}")
    return leaks


RETRIES_WHILE_UNAVAILABLE = 10


async def asked(api: Any, net: Net, role: str, document: str, variables: dict[str, Any] | None = None
                ) -> dict[str, Any]:
    """The response to ``document`` sent with ``role``'s credential; never a 5xx or an internal error.

    A 503 SERVICE_UNAVAILABLE (the database refused a connection: a shared server out of
    connections) is asked again after the availability probe's interval, a few times: it says
    nothing about access, and the request did nothing (tests/test_outage.py tests outages)."""
    headers = {"Authorization": f"Bearer {net.api_key[role]}"} if role != ANON else {}
    for _ in range(RETRIES_WHILE_UNAVAILABLE):
        response = await api.client.post("/graphql", json={"query": document, "variables": variables or {}},
                                          headers=headers)
        if response.status_code != 503 or "SERVICE_UNAVAILABLE" not in response.text:
            break
        await asyncio.sleep(1.0)
    assert response.status_code < 500, (role, document[:200], response.text[:300])
    body: dict[str, Any] = response.json()
    codes = [e.get("extensions", {}).get("code") for e in body.get("errors", [])]
    assert "INTERNAL_SERVER_ERROR" not in codes and None not in codes, (role, document[:200], body["errors"])
    return body


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The walk selects every field of every type in one document: lift the document limits
    (they are tested in tests/graphql/test_limits.py) and the API's database timeouts, which such a
    document can pass on PostgreSQL (tests/test_outage.py tests them); here only access is judged."""
    lifted = {name: 1_000_000 for name in QUERY_BUDGET_NAMES if name != "slowdown"} | {"slowdown": 0}
    return dataclasses.replace(settings, max_query_bytes=10_000_000, query_budget=lifted,
                               anonymous_query_budget=lifted, db_statement_timeout_s=30.0,
                               db_command_timeout_s=40.0, db_pool_timeout_s=30.0, db_connect_timeout_s=10.0)


@pytest.fixture(autouse=True)
async def _no_cached_insights(settings: Any) -> None:
    await forget_cached_insights(settings.redis_url)


async def test_every_role_sees_only_what_it_may(api: Any, admin_key: str, db: Any, keys: NetworkKeys,
                                                ledger: Ledger, settings: Any, clock: Any) -> None:
    net = await seed(db, keys, ledger, settings, clock)
    net.api_key[ADMIN] = admin_key
    schema = (await api.call(INTROSPECTION, key=admin_key))["__schema"]
    walker = Walker(schema, net)

    # Every type and root field has a rule: a new one without a rule fails here.
    reachable = walker.reachable()
    payloads = walker.reachable(schema["mutationType"]["name"])
    assert (reachable | payloads) - TYPE_RULES.keys() == set(), "add these types to TYPE_RULES (who may see them?)"
    roots = {f["name"] for f in walker.query["fields"]}
    assert roots == ROOT_RULES.keys(), "add root fields to ROOT_RULES (who may call them?)"

    leaks: list[str] = []
    checked = 0

    def judge(role: str, where: str, data: Any, presented: set[int]) -> None:
        nonlocal checked
        checked += len(list(objects_in(data)))
        leaks.extend(judged(net, role, where, data, presented))

    async def ask(role: str, document: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        return await asked(api, net, role, document, variables)

    loyalty_to_member = {m.loyalty_id: m.id for m in net.member.values()}
    for root, document, presented_ids in walker.root_documents():
        presented = {loyalty_to_member[lid] for lid in presented_ids}
        for role in ROLES:
            body = await ask(role, document)
            data = (body.get("data") or {}).get(root)
            if role not in ROOT_RULES[root]:
                codes = {e["extensions"]["code"] for e in body.get("errors", [])}
                if data is not None or not codes <= DENIED:
                    leaks.append(f"{role} {root}: answered ({codes or 'no error'}) where it should be refused")
            judge(role, root, data, presented)

    node = walker.node_document()
    for role in ROLES:
        # What "no such object" looks like to this role: a hidden object must look the same.
        missing = {t: await ask(role, node, {"id": keys.global_ids.encode(t, 10**12)}) for t in NODE_TYPES}
        for global_id in [*net.ids, *net.guesses, base64.b64encode(b"Member:99999999999999999999").decode()]:
            body = await ask(role, node, {"id": global_id})
            data = (body.get("data") or {}).get("node")
            if global_id in net.ids and data is None and body != missing[net.ids[global_id][0]]:
                leaks.append(f"{role} node({net.ids[global_id]}): hidden differs from missing: {body}")
            if global_id not in net.ids:  # a guess, or beyond 64 bits: not an ID, for everyone
                codes = {e["extensions"]["code"] for e in body.get("errors", [])}
                if data is not None or not codes <= {"INVALID_ID", *DENIED}:
                    leaks.append(f"{role} node({global_id}) [a guessed ID]: {codes} {json.dumps(data)[:120]}")
            judge(role, f"node({global_id})", data, set())

    # every field of every reachable type was asked for at least once
    unasked = {(t, f["name"]) for t in reachable for f in walker.types[t]["fields"]} - walker.selected
    assert unasked == set(), f"the walk never selected {sorted(unasked)}"
    assert checked > 1000, checked  # the walk saw the network, not just errors
    assert leaks == [], f"{len(leaks)} leaks:\n" + "\n".join(leaks[:40])


# --- mutations -------------------------------------------------------------------------------

def sample_inputs(net: Net) -> dict[str, tuple[set[str], dict[str, Any]]]:
    """Every mutation: the roles that may call it, and an input that would work for them."""
    some_hold = next(i for i, (t, _) in net.ids.items() if t == "Hold")
    some_entry = next(i for i, (t, _) in net.ids.items() if t == "Transaction")
    shop_a = next(i for i, ref in net.ids.items() if ref == ("Merchant", net.merchant["A"]))
    lid = net.member["m1"].loyalty_id
    merchants = set(MERCHANTS)
    some_dispute = next(i for i, (t, _) in net.ids.items() if t == "Dispute")
    some_reward = next(i for i, (t, _) in net.ids.items() if t == "Reward")
    some_endpoint = next(i for i, (t, _) in net.ids.items() if t == "WebhookEndpoint")
    some_delivery = next(i for i, (t, _) in net.ids.items() if t == "WebhookDelivery")
    return {
        "claimMemberAccess": ({ANON, *MEMBERS}, {"claimCode": "7KQ2M-7KQ2M-7KQ2M-7KQ2M"}),
        "rotateMemberToken": (set(MEMBERS), {}),
        "revokeMemberTokens": ({ADMIN, *MEMBERS}, {"loyaltyId": lid}),
        "issueMemberClaimCode": ({ADMIN}, {"loyaltyId": lid}),
        "disputeTransaction": (set(MEMBERS), {"transactionId": some_entry, "reason": "x", "idempotencyKey": "x"}),
        "resolveDispute": ({ADMIN}, {"disputeId": some_dispute, "status": "DISMISSED"}),
        "runSettlement": ({ADMIN}, {"periodEnd": "2026-01-09T00:00:00+00:00", "idempotencyKey": "x"}),
        "setNetworkPolicy": ({ADMIN}, {"reimbursementRate": "0.5"}),
        "reconcilePosExport": (STAFF_ROLES, {"csv": "reference,time,amount_minor,points\n"}),
        "earnPoints": (merchants, {"loyaltyId": lid, "purchaseAmountMinor": 100, "idempotencyKey": "x"}),
        "redeemPoints": (merchants, {"loyaltyId": lid, "points": 1, "idempotencyKey": "x"}),
        "authorizeRedemption": (merchants, {"loyaltyId": lid, "points": 1, "idempotencyKey": "x"}),
        "captureRedemption": (merchants, {"holdId": some_hold, "idempotencyKey": "x"}),
        "voidRedemption": (merchants, {"holdId": some_hold, "idempotencyKey": "x"}),
        "reverseTransaction": (merchants, {"transactionId": some_entry, "idempotencyKey": "x"}),
        "enrollMember": (merchants, {"idempotencyKey": "x"}),
        "onboardMerchant": ({ADMIN}, {"name": "Rogue"}),
        "issueGiftCard": (merchants, {"amountMinor": 100, "idempotencyKey": "x"}),
        "redeemGiftCard": (merchants, {"code": net.gift_codes[0], "amountMinor": 1, "idempotencyKey": "x"}),
        "authorizeGiftCard": (merchants, {"code": net.gift_codes[0], "amountMinor": 1, "idempotencyKey": "x"}),
        "captureGiftCard": (merchants, {"holdId": "x", "idempotencyKey": "x"}),
        "voidGiftCard": (merchants, {"holdId": "x", "idempotencyKey": "x"}),
        "refundGiftCard": (merchants, {"transactionId": "x", "idempotencyKey": "x"}),
        "attachGiftCard": (set(MEMBERS), {"code": net.gift_codes[1]}),
        "suspendMerchant": ({ADMIN}, {"merchantId": shop_a}),
        "reactivateMerchant": ({ADMIN}, {"merchantId": shop_a}),
        "createCampaign": (merchants, {"name": "x", "kind": "BONUS", "bonusPoints": 5, "controlPercent": 10,
                                       "startsAt": "2027-06-01T00:00:00+00:00", "endsAt": "2027-06-02T00:00:00+00:00",
                                       "idempotencyKey": "x"}),
        "setTierPolicy": ({ADMIN}, {"tiers": [{"name": "BASIC", "thresholdPoints": 0}], "idempotencyKey": "tp"}),
        "createReward": (merchants, {"name": "x", "pointsCost": 1, "idempotencyKey": "x"}),
        "claimReward": ({*MERCHANTS, *MEMBERS}, {"loyaltyId": lid, "rewardId": some_reward, "idempotencyKey": "x"}),
        "useVoucher": (merchants, {"code": "7KQ2M-4XW9P", "idempotencyKey": "x"}),
        "createStampCard": (merchants, {"name": "x", "stampsRequired": 2, "minPurchaseMinor": 0,
                                        "rewardId": some_reward, "idempotencyKey": "x"}),
        "createQuest": ({ADMIN}, {"name": "x", "merchantIds": [shop_a], "visitsRequired": 1, "windowDays": 1,
                                  "bonusPoints": 1, "funding": "NETWORK", "startsAt": "2026-01-01T00:00:00Z",
                                  "endsAt": "2027-01-01T00:00:00Z", "idempotencyKey": "x"}),
        "reviewFraudAlert": ({ADMIN}, {"subjectId": shop_a, "decision": "DISMISSED"}),
        "createWebhookEndpoint": (STAFF_ROLES, {"url": "http://127.0.0.1:9/x", "events": ["points.earned"],
                                                "idempotencyKey": "x"}),
        "deleteWebhookEndpoint": (STAFF_ROLES, {"endpointId": some_endpoint}),
        "replayWebhookDelivery": (STAFF_ROLES, {"deliveryId": some_delivery}),
    }


async def row_counts(db: Any) -> dict[str, int]:
    tables = (Entry, Hold, Member, Merchant, SettlementBatch, NetworkPolicy, MemberCredential, Dispute, GiftCard,
              GiftEntry, Campaign, TierPolicyVersion, Reward, Voucher, StampCard, Quest, WebhookEndpoint,
              WebhookDelivery)
    async with db.read() as conn:
        counts = {t.__tablename__: int((await conn.execute(select(func.count()).select_from(t))).scalar_one())
                  for t in tables}
        # endpoints deleted or deliveries replayed: a change, not a new row
        counts["active_endpoints"] = int((await conn.execute(select(func.count()).select_from(WebhookEndpoint)
                                                             .where(WebhookEndpoint.active))).scalar_one())
        # the seed marks every delivery DELIVERED: a replay would make one PENDING again
        counts["pending_deliveries"] = int((await conn.execute(
            select(func.count()).select_from(WebhookDelivery)
            .where(WebhookDelivery.status == DeliveryStatus.PENDING))).scalar_one())
    return counts


async def test_no_role_acts_on_what_is_not_its_own(api: Any, admin_key: str, db: Any, keys: NetworkKeys,
                                                   ledger: Ledger, settings: Any, clock: Any) -> None:
    net = await seed(db, keys, ledger, settings, clock)
    net.api_key[ADMIN] = admin_key
    schema = (await api.call(INTROSPECTION, key=admin_key))["__schema"]
    walker = Walker(schema, net)
    mutation = walker.types[schema["mutationType"]["name"]]
    inputs = sample_inputs(net)
    assert {f["name"] for f in mutation["fields"]} == inputs.keys(), "add new mutations to sample_inputs"

    def document(name: str) -> str:
        f = next(f for f in mutation["fields"] if f["name"] == name)
        input_type = named(f["args"][0]["type"])
        target = named(f["type"])
        body = walker.selection(target, (target,))
        return f"mutation($input: {input_type}!) {{ {name}(input: $input) {{ {body} }} }}"

    wrong: list[str] = []
    before = await row_counts(db)
    # A role that may not call a mutation is refused, and nothing is written.
    for name, (allowed, sample) in inputs.items():
        for role in set(ROLES) - allowed:
            body = await asked(api, net, role, document(name), {"input": sample})
            codes = {e["extensions"]["code"] for e in body.get("errors", [])}
            if (body.get("data") or {}).get(name) is not None or not codes or not codes <= DENIED:
                wrong.append(f"{role} {name}: {codes or 'no error'}")
    # A merchant names another's hold or transaction (as issued, or guessed): not found, nothing written.
    probes = [("captureRedemption", "holdId", "Hold", HOLD_NOT_FOUND), ("voidRedemption", "holdId", "Hold",
              HOLD_NOT_FOUND), ("reverseTransaction", "transactionId", "Transaction", TRANSACTION_NOT_FOUND)]
    for shop in MERCHANTS:
        mine = net.merchant[shop]
        for name, field_name, type_name, not_found in probes:
            owners = net.holds if type_name == "Hold" else net.entries
            for global_id, (kind, value) in [*net.ids.items(), *net.guesses.items()]:
                if kind != type_name or owners[value][0] == mine:
                    continue
                body = await asked(api, net, shop, document(name),
                                   {"input": {field_name: global_id, "idempotencyKey": f"probe-{name}-{global_id}"}})
                payload = body["data"][name]
                codes = {e["code"] for e in payload["userErrors"]}
                if not codes or not codes <= {not_found, "INVALID_ID"}:
                    wrong.append(f"{shop} {name}({kind} {value} of merchant {owners[value][0]}): {codes}")
                wrong.extend(judged(net, shop, name, payload, set()))
                if any(payload.get(key) is not None for key in ("transaction", "hold", "member")):
                    wrong.append(f"{shop} {name}({kind} {value}): answered with {json.dumps(payload)[:160]}")
        # ... and another's reward (claim it, build a stamp card on it) or voucher (use it): not found.
        for global_id, (kind, value) in [*net.ids.items(), *net.guesses.items()]:
            if kind != "Reward" or net.rewards[value] == mine:
                continue
            for name, extra in (("claimReward", {"loyaltyId": net.member["m1"].loyalty_id}),
                                ("createStampCard", {"name": "x", "stampsRequired": 2, "minPurchaseMinor": 0})):
                body = await asked(api, net, shop, document(name), {"input": {
                    "rewardId": global_id, "idempotencyKey": f"probe-{name}-{global_id}", **extra}})
                payload = body["data"][name]
                codes = {e["code"] for e in payload["userErrors"]}
                if not codes or not codes <= {"REWARD_NOT_FOUND", "INVALID_ID"}:
                    wrong.append(f"{shop} {name}(reward {value} of merchant {net.rewards[value]}): {codes}")
        for code, owner in net.voucher_codes.items():
            if owner == mine:
                continue
            body = await asked(api, net, shop, document("useVoucher"), {"input": {"code": code,
                                                                                    "idempotencyKey": "probe"}})
            payload = body["data"]["useVoucher"]
            if {e["code"] for e in payload["userErrors"]} != {"VOUCHER_NOT_FOUND"} or payload["voucher"]:
                wrong.append(f"{shop} useVoucher(a voucher of merchant {owner}): {payload}")
        others = [i for i, ref in net.ids.items() if ref[0] == "Merchant" and ref[1] != mine]
        for other in others:
            body = await asked(api, net, shop, document("reconcilePosExport"),
                               {"input": {"csv": "reference,time,amount_minor,points\n", "merchantId": other}})
            codes = {e["extensions"]["code"] for e in body.get("errors", [])}
            codes |= {e["code"] for e in ((body.get("data") or {}).get("reconcilePosExport") or {}).get(
                "userErrors", [])}
            if not codes or not codes <= {"FORBIDDEN"}:
                wrong.append(f"{shop} reconcilePosExport(another merchant): {codes or 'answered'}")
    # A merchant deletes or replays another's endpoint or delivery (as issued, or guessed): not found.
    webhook_probes = [("deleteWebhookEndpoint", "endpointId", "WebhookEndpoint", "WEBHOOK_ENDPOINT_NOT_FOUND",
                       net.webhooks),
                      ("replayWebhookDelivery", "deliveryId", "WebhookDelivery", "WEBHOOK_DELIVERY_NOT_FOUND",
                       net.deliveries)]
    for shop in MERCHANTS:
        for name, field_name, type_name, not_found, owner_of in webhook_probes:
            for global_id, (kind, value) in [*net.ids.items(), *net.guesses.items()]:
                if kind != type_name or owner_of[value] == net.merchant[shop]:
                    continue
                body = await asked(api, net, shop, document(name), {"input": {field_name: global_id}})
                payload = body["data"][name]
                codes = {e["code"] for e in payload["userErrors"]}
                if not codes or not codes <= {not_found, "INVALID_ID"}:
                    wrong.append(f"{shop} {name}({kind} {value} of {owner_of[value]}): {codes}")
                wrong.extend(judged(net, shop, name, payload, set()))
    # A member disputes another member's transaction (as issued, or guessed): not found, nothing written.
    for label in MEMBERS:
        for global_id, (kind, value) in [*net.ids.items(), *net.guesses.items()]:
            if kind != "Transaction" or net.entries[value][1] == net.member_id_of(label):
                continue
            body = await asked(api, net, label, document("disputeTransaction"),
                               {"input": {"transactionId": global_id, "reason": "not me",
                                          "idempotencyKey": f"probe-{global_id}"}})
            payload = body["data"]["disputeTransaction"]
            codes = {e["code"] for e in payload["userErrors"]}
            if not codes or not codes <= {"TRANSACTION_NOT_FOUND", "INVALID_ID"} or payload["dispute"] is not None:
                wrong.append(f"{label} disputeTransaction({kind} {value} of member {net.entries[value][1]}): {codes}")
    assert await row_counts(db) == before
    assert wrong == [], "\n".join(wrong)


# --- page routes -----------------------------------------------------------------------------

STAFF_PAGE = {ADMIN, *MERCHANTS}
ALL = set(ROLES)
PAGE_RULES: dict[str, list[tuple[str, set[str]]]] = {
    # path: [(URL to request, roles that get a 2xx or a redirect)]; {batch}: its number and its global ID
    "/graphql": [("/graphql", ALL)],  # GraphiQL: a page with no data in it
    "/healthz": [("/healthz", ALL)],
    "/readyz": [("/readyz", ALL)],
    "/": [("/", ALL)],  # a redirect to /graphql
    "/admin/network-map.{fmt}": [("/admin/network-map.svg", {ADMIN}), ("/admin/network-map.png", {ADMIN})],
    "/admin/settlement": [("/admin/settlement", {ADMIN})],
    "/admin/settlement/simulate.{fmt}": [("/admin/settlement/simulate.html?batch={batch}", {ADMIN})],
    "/admin/settlement/{batch}/report.{fmt}": [(f"/admin/settlement/{{batch}}/report.{fmt}", {ADMIN})
                                               for fmt in ("html", "json", "csv")],
    # a merchant's own statement (all three were active in the batch); an admin names the merchant
    "/statements/{batch}.{fmt}": [
        *[(f"/statements/{{batch}}.{fmt}", set(MERCHANTS)) for fmt in ("html", "json", "csv")],
        ("/statements/{batch}.json?merchant={A}", {ADMIN, "A"}),
        ("/statements/{batch}.json?merchant={B}", {ADMIN, "B"}),
    ],
    "/metrics": [("/metrics", {ADMIN})],  # or the metrics token, or its own port (tests/test_metrics.py)
    # exports: a merchant its own, an admin the network's or a named merchant's
    **{f"/export/{what}.csv": [(f"/export/{what}.csv", STAFF_PAGE),
                                (f"/export/{what}.csv?merchant={{A}}", {ADMIN, "A"})]
       for what in ("members", "transactions")},
    "/import/members": [("/import/members", STAFF_PAGE)],  # GET: the template; POST: tests/portability
    # a member's cards: the member and the merchant that enrolled it (A enrolled m1, B m2)
    "/members/{member}/{kind}": [(f"/members/{{{label}}}/{kind}", {label, shop})
                                 for label, shop in (("m1", "A"), ("m2", "B"))
                                 for kind in ("qr.png", "qr.svg", "card.pdf", "pass.pkpass")],
    # The pages people use (issue 18). A merchant's API key opens its owner's pages (a GET; forms need a
    # signed-in session, tests/web/test_pages.py), an admin key the admin's, a member token the wallet.
    # An anonymous browser is sent to /login: that redirect counts as refused below.
    "/login": [("/login", ALL)],
    "/logout": [("/logout", set())],  # POST only
    "/language": [("/language?lang=da&next=/console", ALL)],
    "/console": [("/console", set(MERCHANTS))],
    "/console/till": [("/console/till", set(MERCHANTS)), ("/console/till?q={loyalty:m3}", set(MERCHANTS))],
    "/console/customers": [("/console/customers", set(MERCHANTS))],
    "/console/customers/{loyalty_id}": [("/console/customers/{loyalty:m3}", {"C"}),
                                        ("/console/customers/{loyalty:m5}", {"B"}),
                                        ("/console/customers/{loyalty:m4}", {"A"})],
    "/console/insights": [("/console/insights", set(MERCHANTS))],
    "/console/insights/win-back.csv": [("/console/insights/win-back.csv", set(MERCHANTS))],
    "/console/statements": [("/console/statements", set(MERCHANTS))],
    "/console/staff": [("/console/staff", set(MERCHANTS))],
    "/console/programs": [("/console/programs", set(MERCHANTS))],
    "/console/campaigns": [("/console/campaigns", set(MERCHANTS))],
    # a campaign's result: its own merchant only (A and B each run one; C none)
    "/console/campaigns/{campaign_id}": [("/console/campaigns/{campaign:A}", {"A"}),
                                         ("/console/campaigns/{campaign:B}", {"B"})],
    "/admin/policy": [("/admin/policy", {ADMIN})],
    "/admin": [("/admin", {ADMIN})],
    "/admin/merchants": [("/admin/merchants", {ADMIN})],
    "/admin/fraud": [("/admin/fraud", {ADMIN})],
    "/admin/network": [("/admin/network", {ADMIN})],
    "/me": [("/me", set(MEMBERS))],
    "/me/claim": [("/me/claim", ALL)],  # the form that spends a claim code: nothing private in it
    "/me/revoke": [("/me/revoke", set())],  # POST only
}


async def test_every_page_answers_only_whom_it_may(api: Any, admin_key: str, db: Any, keys: NetworkKeys,
                                                   ledger: Ledger, settings: Any, clock: Any, app: Any) -> None:
    net = await seed(db, keys, ledger, settings, clock)
    net.api_key[ADMIN] = admin_key
    paths = {route.path for route in app.routes if isinstance(route, Route)}
    assert paths - PAGE_RULES.keys() == set(), "add new pages to PAGE_RULES (who may see them?)"
    assert any(isinstance(route, Mount) and route.path == "/static" for route in app.routes)
    batch_ids = [str(net.batches[0]), keys.global_ids.encode("SettlementBatch", net.batches[0])]

    wrong: list[str] = []
    for route_path, requests in PAGE_RULES.items():
        for template, allowed in requests:
            for batch in batch_ids:
                url = template.replace("{batch}", batch)
                for shop in MERCHANTS:
                    url = url.replace(f"{{{shop}}}", str(net.merchant[shop]))
                for label in MEMBERS:
                    url = url.replace(f"{{{label}}}", keys.global_ids.encode("Member", net.member[label].id))
                for label, member in net.member.items():
                    url = url.replace(f"{{loyalty:{label}}}", member.loyalty_id)
                for campaign_id, merchant_id in net.campaigns.items():
                    shop = next(s for s in MERCHANTS if net.merchant[s] == merchant_id)
                    url = url.replace(f"{{campaign:{shop}}}", str(campaign_id))
                for role in ROLES:
                    headers = {"Accept": "text/html"}
                    if role != ANON:
                        headers["Authorization"] = f"Bearer {net.api_key[role]}"
                    response = await api.client.get(url, headers=headers)
                    ok = 200 <= response.status_code < 400 and not response.headers.get(
                        "location", "").startswith("/login")  # sent to sign in: refused
                    if response.status_code >= 500 or ok != (role in allowed):
                        wrong.append(f"{role} GET {url} ({route_path}): {response.status_code}")
    # a merchant's statement carries its own figures only; an admin names the merchant
    for shop in MERCHANTS:
        statement = await api.client.get(f"/statements/{net.batches[0]}.json",
                                         headers={"Authorization": f"Bearer {net.api_key[shop]}"})
        names = {text for text in ("Shop A", "Shop B", "Shop C") if text in statement.text}
        if names - {f"Shop {shop}"}:
            wrong.append(f"{shop}'s statement names {sorted(names)}")
    assert wrong == [], "\n".join(wrong)
