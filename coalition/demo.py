"""A demo network: a few shops, a few hundred members and fourteen months of history.

Everything goes through the real services (onboarding, enrollment, the ledger), so the
data obeys every rule the API does; the ledger's clock is moved along a simulated
timeline so entries, lots and expiries carry realistic dates. The only direct writes
backdate ``created_at`` of the merchants and members, which the services stamp "now".

Deterministic for a seed, apart from the random keys, loyalty IDs and referral codes.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import bindparam, func, select, update

from coalition.auth.service import create_admin_key
from coalition.config import Settings
from coalition.crypto import NetworkKeys
from coalition.db import Database, utcnow
from coalition.errors import DomainError
from coalition.ledger.core import LedgerResult
from coalition.ledger.models import Entry
from coalition.ledger.presence import presence_code
from coalition.ledger.service import Ledger
from coalition.members.credentials import reissue_claim_code
from coalition.members.models import Member
from coalition.members.service import enroll_member
from coalition.network.store import InsightStore
from coalition.partners.models import Merchant
from coalition.partners.service import onboard_merchant
from coalition.programs import purchases
from coalition.programs.campaign_models import Campaign, CampaignAudience
from coalition.programs.campaigns import create_campaign
from coalition.programs.earning import ProgramHook
from coalition.programs.quests import create_quest
from coalition.programs.reward_models import QuestCompletion, StampProgress
from coalition.programs.rewards import create_reward
from coalition.programs.stamps import create_stamp_card
from coalition.programs.tier_review import review_tiers, set_tier_policy
from coalition.programs.vouchers import claim_reward, use_voucher

HISTORY_DAYS = 420
PHONE_NUMBERS = 1000  # +44 7700 900000-900999: Ofcom's range for drama, never a real line

# Progress callback: (stage, done, total).
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ShopProfile:
    name: str
    category: str
    earn_rate: int  # points per whole currency unit
    basket_minor: int  # median purchase, minor units
    spread: float  # sigma of the log-normal purchase amount
    popularity: float  # how likely a member is to make it a favourite
    visits_per_month: float  # how often a regular comes back


SHOPS = [
    ShopProfile("Crumb & Co. Bakery", "bakery", 2, 650, 0.45, 3.0, 6.0),
    ShopProfile("Bean There Café", "café", 3, 420, 0.35, 3.0, 8.0),
    ShopProfile("Dog-Eared Books", "bookshop", 1, 1800, 0.55, 1.5, 1.0),
    ShopProfile("Petal & Stem", "florist", 1, 2900, 0.5, 1.0, 0.6),
    ShopProfile("Spoke Street Cycles", "bike repair", 1, 4500, 0.8, 0.7, 0.3),
    ShopProfile("Green Basket Grocer", "greengrocer", 1, 1500, 0.5, 2.0, 4.0),
    ShopProfile("Sharp Lines Barbers", "barber", 2, 1800, 0.2, 1.0, 1.0),
    ShopProfile("Steep Tea House", "tea shop", 2, 900, 0.4, 1.2, 2.0),
    ShopProfile("Groove Records", "record shop", 1, 2500, 0.5, 0.6, 0.5),
    ShopProfile("Nuts & Bolts Hardware", "hardware", 1, 2200, 0.8, 0.8, 0.5),
]
MAX_MERCHANTS = 50

FIRST_NAMES = ["ana", "ben", "chloe", "dev", "ella", "farid", "grace", "hugo", "isla", "jamal", "kate", "liam",
               "maya", "noah", "olga", "priya", "quinn", "rosa", "sam", "tariq", "uma", "vera", "wei", "yara", "zoe"]
LAST_NAMES = ["adams", "baker", "costa", "dubois", "evans", "fischer", "garcia", "hughes", "ito", "jones",
              "khan", "lopez", "murphy", "nowak", "okafor", "patel", "rossi", "silva", "taylor", "walsh"]


@dataclass(frozen=True)
class DemoMerchant:
    id: int
    name: str
    category: str
    earn_rate: int
    api_key: str  # shown once


@dataclass
class DemoNetwork:
    """What :func:`create_demo` made; the keys in it are shown once and stored only hashed."""

    admin_key: str
    merchants: list[DemoMerchant]
    sample_loyalty_id: str
    sample_balance: int
    members: int = 0
    referred: int = 0
    transactions: dict[str, int] = field(default_factory=dict)
    open_hold_id: int | None = None
    elapsed_s: float = 0.0
    total_merchants: int = 0  # when larger than ``merchants`` (a bulk-loaded demo lists keys for a few)
    campaign: str | None = None  # the finished campaign (with a result) and its merchant
    # A fresh one-time claim code for the sample member: the demo's customer exchanges it for a
    # member token (claimMemberAccess). Enrollment codes are dated with the simulated history, so
    # they have expired; this one is issued as an admin would for a member who lost access.
    sample_claim_code: str | None = None
    # Programs (coalition/programs/): rewards, vouchers claimed and used, stamp cards filled, quests done.
    programs: dict[str, int] = field(default_factory=dict)


@dataclass
class _Member:
    index: int
    enrolled_at: dt.datetime
    shops: list[int]  # favourite shops, by index into the merchant list
    visits: int
    email: str | None
    phone: str | None
    referrer: int | None = None  # index of the referring member
    loyalty_id: str = ""
    member_id: int = 0
    referral_code: str = ""
    balance: int = 0


class _Clock:
    """The ledger's clock, moved along the simulated timeline."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> dt.datetime:
        return self.now


async def count_merchants(db: Database) -> int:
    async with db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(Merchant))).scalar_one())


async def create_demo(
    db: Database, settings: Settings, keys: NetworkKeys, *, members: int = 300, merchants: int = 5, seed: int = 7,
    progress: Progress | None = None,
) -> DemoNetwork:
    """Create a demo network next to whatever the database holds (see ``coalition demo``)."""
    if not 1 <= merchants <= MAX_MERCHANTS:
        raise ValueError(f"--merchants must be from 1 to {MAX_MERCHANTS}, got {merchants}")
    if members < 1:
        raise ValueError(f"--members must be at least 1, got {members}")
    started = time.perf_counter()
    rng = random.Random(seed)
    report = progress or (lambda stage, done, total: None)
    now = utcnow()
    start = now - dt.timedelta(days=HISTORY_DAYS)
    async with db.read() as conn:
        # Contact data must be unique network-wide: a second demo (--force) numbers on.
        offset = int((await conn.execute(select(func.count()).select_from(Member))).scalar_one())

    profiles = [_profile(i) for i in range(merchants)]
    shops: list[DemoMerchant] = []
    for i, profile in enumerate(profiles):
        onboarding = await onboard_merchant(db, name=profile.name, category=profile.category,
                                            earn_rate_points_per_unit=profile.earn_rate)
        assert onboarding.api_key is not None  # onboarded without an idempotency key: the key is always shown
        shops.append(DemoMerchant(onboarding.merchant.id, profile.name, profile.category, profile.earn_rate,
                                  onboarding.api_key))
        report("merchants", i + 1, merchants)
    admin_key = await create_admin_key(db, label="demo admin")

    people = _people(rng, profiles, members, offset, start, now)
    timeline = _timeline(rng, people, profiles, now)
    clock = _Clock()
    ledger = Ledger(db, settings, clock=clock, programs=ProgramHook(db))
    programs = _DemoPrograms(db, keys, shops[0], now)
    await programs.tiers(start)
    receipts = 0
    next_expiry_run = start + dt.timedelta(days=30)
    last_earns: dict[int, LedgerResult] = {}  # member index -> their latest earn
    for done, (when, _, person, shop) in enumerate(timeline, 1):
        while when >= next_expiry_run:  # the nightly job, monthly here: enough for the dates to be right
            clock.now = next_expiry_run
            if (await ledger.expire_lots())[0]:
                await _refresh_balances(db, people)
            await review_tiers(db, now=next_expiry_run)  # the worker's tier review, monthly here too
            next_expiry_run += dt.timedelta(days=30)
        clock.now = when
        await programs.campaign_at(when)
        if shop < 0:
            referrer = people[person.referrer] if person.referrer is not None else None
            enrollment = await enroll_member(
                db, keys, merchant_id=shops[person.shops[0]].id,
                idempotency_key=f"demo-enroll-{offset + person.index}", email=person.email, phone=person.phone,
                referral_code=referrer.referral_code if referrer else None,
                referral_daily_limit=settings.referral_daily_limit, now=when,
            )
            person.member_id = enrollment.member.id
            person.loyalty_id = enrollment.member.loyalty_id
            person.referral_code = enrollment.member.referral_code
        else:
            receipts += 1
            result = await _visit(ledger, rng, shops[shop], profiles[shop], person, shop in person.shops,
                                  receipts, settings.currency_exponent)
            if result is not None:
                last_earns[person.index] = result
                if programs.responds(person.member_id, shops[shop].id, when, rng):  # the offer worked on them
                    receipts += 1
                    clock.now = when + dt.timedelta(minutes=90)
                    await _visit(ledger, rng, shops[shop], profiles[shop], person, True, receipts,
                                 settings.currency_exponent)
        report("history", done, len(timeline))

    recent = [(r, people[i]) for i, r in last_earns.items() if r.entry.created_at > now - dt.timedelta(days=14)]
    open_hold = await _refund_and_holds(ledger, clock, rng, shops, people, recent, now)
    clock.now = utcnow()
    offers = await _programs(ledger, clock, rng, shops, people)
    await ledger.expire_lots()  # as the nightly job would have: no lot is left past its date
    await review_tiers(db, now=clock.now)
    await _backdate(db, shops, people, start)

    async with db.read() as conn:
        counts = {str(kind): int(n) for kind, n in await conn.execute(
            select(Entry.kind, func.count()).where(Entry.member_id.in_(select(Member.id).where(
                Member.enrolled_by_merchant_id.in_([s.id for s in shops])))).group_by(Entry.kind)
        )}
    sample = max((p for p in people if p.member_id), key=lambda p: (p.balance, -p.index))
    assert sample.member_id is not None
    _, claim = await reissue_claim_code(db, sample.member_id, ttl_s=settings.member_claim_ttl_s)
    return DemoNetwork(
        admin_key=admin_key, merchants=shops, sample_loyalty_id=sample.loyalty_id, sample_balance=sample.balance,
        members=len(people), referred=sum(1 for p in people if p.referrer is not None), transactions=counts,
        open_hold_id=open_hold, elapsed_s=time.perf_counter() - started, sample_claim_code=claim.code,
        campaign=programs.described,
        programs=offers,
    )


class _DemoPrograms:
    """A tier ladder from the start, and one campaign of the first shop two months ago that a newcomer
    finds finished, with its result: double points for 30 days, 30 % of the shop's members held out.
    The simulated customers respond to it: a treated member's visit there brings another, at times."""

    RESPONSE = 0.35  # the chance a treated member's visit during the campaign brings another purchase

    def __init__(self, db: Database, keys: NetworkKeys, shop: DemoMerchant, now: dt.datetime) -> None:
        self.db, self.keys, self.shop = db, keys, shop
        self.starts_at = now - dt.timedelta(days=60)
        self.ends_at = self.starts_at + dt.timedelta(days=30)
        self.treated: dict[int, bool] | None = None
        self.described: str | None = None

    async def tiers(self, when: dt.datetime) -> None:
        await set_tier_policy(self.db, tiers=[
            {"name": "BASIC", "threshold_points": 0}, {"name": "SILVER", "threshold_points": 500,
                                                        "multiplier_percent": 110},
            {"name": "GOLD", "threshold_points": 2_000, "multiplier_percent": 125}], grace_days=60,
            idempotency_key="demo-tiers", now=when)

    async def campaign_at(self, when: dt.datetime) -> None:
        if self.treated is not None or when < self.starts_at:
            return
        campaign = await demo_campaign(self.db, self.keys, self.shop.id, starts_at=when, ends_at=self.ends_at)
        async with self.db.read() as conn:
            rows = await conn.execute(select(CampaignAudience.member_id, CampaignAudience.treated)
                                      .where(CampaignAudience.campaign_id == campaign.id))
            self.treated = {int(m): bool(t) for m, t in rows}
        self.described = f"{campaign.name!r} of {self.shop.name} (double points, 30 % held out), finished"

    def responds(self, member_id: int, merchant_id: int, when: dt.datetime, rng: random.Random) -> bool:
        return (self.treated is not None and merchant_id == self.shop.id and when < self.ends_at
                and self.treated.get(member_id, False) and rng.random() < self.RESPONSE)


async def demo_campaign(db: Database, keys: NetworkKeys, merchant_id: int, *, starts_at: dt.datetime,
                        ends_at: dt.datetime) -> Campaign:
    """The demo's campaign at ``merchant_id``: double points from ``starts_at`` to ``ends_at``, 30 % of the
    merchant's members held out, created as of ``starts_at`` (a campaign in the past is made as the
    merchant made it then). The benchmarks give a bulk-loaded network the same campaign."""
    created: Campaign = await create_campaign(
        db, keys, InsightStore(db), merchant_id=merchant_id, name="Double points month", kind="MULTIPLIER",
        multiplier_percent=200, control_percent=30, starts_at=starts_at, ends_at=ends_at,
        idempotency_key=f"demo-campaign-{merchant_id}", now=starts_at)
    return created


async def _visit(
    ledger: Ledger, rng: random.Random, shop: DemoMerchant, profile: ShopProfile, person: _Member,
    favourite: bool, receipt: int, exponent: int,
) -> LedgerResult | None:
    """One purchase: perhaps spend points first (as a discount), then earn on the bill."""
    reference = f"R-{receipt:06d}"
    # Members spend points more readily away from their usual shops: that is the coalition's draw.
    if person.balance >= 50 and rng.random() < (0.1 if favourite else 0.4):
        wanted = rng.choice([50, 50, 100, 100, 150, 200, 300, 500])
        points = min(wanted, person.balance // 25 * 25)
        # The customer is at the till: the wallet's proof of presence lets a large redemption through.
        proof = presence_code(ledger.keys, person.loyalty_id, ledger.clock()) if points > 50 else None
        redeemed = await ledger.redeem(merchant_id=shop.id, loyalty_id=person.loyalty_id, points=points,
                                       idempotency_key=f"demo-{receipt}-redeem", reference=reference,
                                       member_proof=proof)
        person.balance = redeemed.member.balance
    amount = _basket(rng, profile)
    if amount * profile.earn_rate < 10**exponent:
        return None  # earns no whole point
    earned = await ledger.earn(merchant_id=shop.id, loyalty_id=person.loyalty_id, purchase_amount_minor=amount,
                               idempotency_key=f"demo-{receipt}", reference=reference)
    person.balance = earned.member.balance
    return earned


async def _refresh_balances(db: Database, people: list[_Member]) -> None:
    by_id = {p.member_id: p for p in people if p.member_id}
    async with db.read() as conn:
        for member_id, balance in await conn.execute(
            select(Member.id, Member.balance).where(Member.id.in_(list(by_id)))
        ):
            by_id[member_id].balance = balance


def _profile(i: int) -> ShopProfile:
    base = SHOPS[i % len(SHOPS)]
    if i < len(SHOPS):
        return base
    return ShopProfile(f"{base.name} #{i // len(SHOPS) + 1}", base.category, base.earn_rate, base.basket_minor,
                       base.spread, base.popularity, base.visits_per_month)


def _people(rng: random.Random, profiles: list[ShopProfile], count: int, offset: int, start: dt.datetime,
            now: dt.datetime) -> list[_Member]:
    weights = [p.popularity for p in profiles]
    span_s = (now - start).total_seconds() - 7 * 86400
    # More members joined early on than lately: the network has been growing, then filling up.
    enrolled = sorted(start + dt.timedelta(seconds=span_s * rng.random() ** 1.4) for _ in range(count))
    people: list[_Member] = []
    used: set[str] = set()
    for i, when in enumerate(enrolled):
        favourites = min(len(profiles), rng.choices([1, 2, 3], weights=[5, 3, 2])[0])
        shops: list[int] = []
        while len(shops) < favourites:
            shop = rng.choices(range(len(profiles)), weights=weights)[0]
            if shop not in shops:
                shops.append(shop)
        # Visits follow a power law: most people come by a few times, a few come all the time.
        visits = 0 if rng.random() < 0.08 else min(60, int(rng.paretovariate(1.1)))
        email = None
        if rng.random() < 0.6:
            local = f"{rng.choice(FIRST_NAMES)}.{rng.choice(LAST_NAMES)}"
            if offset or local in used:
                local += str(offset + i)
            used.add(local)
            email = f"{local}@example.com"
        number = offset + i
        phone = f"+44 7700 900{number:03d}" if number < PHONE_NUMBERS and rng.random() < 0.35 else None
        people.append(_Member(i, when, shops, visits, email, phone))
    # A few members bring in friends; a handful of them bring many (referral influence).
    champions = rng.sample(range(count), k=max(1, count // 40))
    for person in people[1:]:
        if rng.random() < 0.12:
            earlier = [c for c in champions if c < person.index]
            if earlier and rng.random() < 0.6:
                person.referrer = rng.choice(earlier)
            else:
                person.referrer = rng.randrange(person.index)
            if rng.random() < 0.7:  # friends tend to like the same shops
                person.shops = list(people[person.referrer].shops)
    return people


def _timeline(rng: random.Random, people: list[_Member], profiles: list[ShopProfile],
              now: dt.datetime) -> list[tuple[dt.datetime, int, _Member, int]]:
    """Every enrollment (shop -1) and visit, in time order; ties broken by a sequence number."""
    events: list[tuple[dt.datetime, int, _Member, int]] = []
    seq = 0
    for person in people:
        events.append((person.enrolled_at, seq, person, -1))
        seq += 1
        active_s = (now - person.enrolled_at).total_seconds() - 3 * 3600
        rates = [profiles[s].visits_per_month for s in person.shops]
        for _ in range(person.visits):
            passing_by = rng.random() < 0.12  # a purchase at another partner
            shop = rng.randrange(len(profiles)) if passing_by else rng.choices(person.shops, weights=rates)[0]
            # Purchases cluster after enrollment and thin out (some members drift away).
            offset_s = active_s * rng.random() ** 1.2
            if offset_s < 60:
                offset_s = 60 + offset_s  # the first purchase comes after the enrollment
            events.append((person.enrolled_at + dt.timedelta(seconds=offset_s), seq, person, shop))
            seq += 1
    events.sort(key=lambda e: (e[0], e[1]))
    return events


def _basket(rng: random.Random, profile: ShopProfile) -> int:
    amount = profile.basket_minor * math.exp(rng.gauss(0, profile.spread))
    return max(100, round(amount / 5) * 5)


async def _refund_and_holds(
    ledger: Ledger, clock: _Clock, rng: random.Random, shops: list[DemoMerchant], people: list[_Member],
    recent_earns: list[tuple[LedgerResult, _Member]], now: dt.datetime,
) -> int | None:
    """Today's activity: one refund (a reversed earn), one partly captured hold, one open hold.

    The refunded earn is its member's latest, and the member still has at least its points,
    so its lot is untouched (lots are spent oldest first) and the refund leaves no debt.
    """
    clock.now = now - dt.timedelta(hours=3)
    refundable = [(r, p) for r, p in recent_earns if p.balance >= r.entry.points]
    if refundable:
        result, person = rng.choice(refundable)
        assert result.entry.merchant_id is not None
        reversal = await ledger.reverse(merchant_id=result.entry.merchant_id, transaction_id=result.entry.id,
                                        idempotency_key=f"demo-refund-{result.entry.id}", reason="item returned")
        person.balance = reversal.member.balance
    wealthy = sorted((p for p in people if p.balance >= 40), key=lambda p: (-p.balance, p.index))
    open_hold = None
    if len(wealthy) >= 2:
        first, second = wealthy[0], wealthy[1]
        clock.now = now - dt.timedelta(hours=2)
        shop = shops[first.shops[-1]]
        reserved = min(200, first.balance)
        hold = await ledger.authorize(merchant_id=shop.id, loyalty_id=first.loyalty_id, points=reserved,
                                      idempotency_key="demo-hold-1", expires_in_s=900,
                                      member_proof=presence_code(ledger.keys, first.loyalty_id, clock.now))
        assert hold.hold is not None
        clock.now += dt.timedelta(minutes=4)  # the card payment cleared; the basket came to less
        captured = await ledger.capture(merchant_id=shop.id, hold_id=hold.hold.id, points=reserved * 3 // 4,
                                        idempotency_key="demo-hold-1-capture")
        first.balance = captured.member.balance
        clock.now = utcnow()
        shop = shops[second.shops[0]]
        pending = await ledger.authorize(merchant_id=shop.id, loyalty_id=second.loyalty_id,
                                         points=min(120, second.balance // 2), idempotency_key="demo-hold-2",
                                         expires_in_s=24 * 3600)
        assert pending.hold is not None
        second.balance = pending.member.balance
        open_hold = pending.hold.id
    return open_hold


async def _programs(ledger: Ledger, clock: _Clock, rng: random.Random, shops: list[DemoMerchant],
                    people: list[_Member]) -> dict[str, int]:
    """A few rewards, a stamp card and a partner quest, used as a newcomer would see them used: claims at the
    till (with the wallet's proof), a voucher used, cards stamped full by purchases, a quest completed."""
    db, now = ledger.db, clock.now
    offers = [(0, "Free coffee", 100, 50), (min(1, len(shops) - 1), "Tote bag", 300, 10),
              (min(2, len(shops) - 1), "Pastry of the day", 150, None)]
    made = [await create_reward(db, merchant_id=shops[i].id, name=name, points_cost=cost, stock=stock,
                                idempotency_key=f"demo-reward-{n}", now=now)
            for n, (i, name, cost, stock) in enumerate(offers)]
    card = await create_stamp_card(ledger, merchant_id=shops[0].id, name="Five visits, a coffee on us",
                                   stamps_required=5, min_purchase_minor=300, reward_id=made[0].id,
                                   idempotency_key="demo-card", now=now)
    partners = shops[:min(4, len(shops))]
    await create_quest(db, name="Neighbourhood tour", merchant_ids=[s.id for s in partners],
                       visits_required=min(3, len(partners)), window_days=30, bonus_points=150, funding="PARTNERS",
                       starts_at=now - dt.timedelta(days=1), ends_at=now + dt.timedelta(days=60),
                       idempotency_key=f"demo-quest-{shops[0].id}", now=now)
    counts = {"rewards": len(made), "vouchers claimed": 0, "vouchers used": 0, "cards filled": 0, "quests done": 0}
    richest = sorted((p for p in people if p.member_id), key=lambda p: -p.balance)
    for n, person in enumerate(richest[:6]):
        reward = made[n % len(made)]
        if person.balance < reward.points_cost:
            continue
        clock.now += dt.timedelta(minutes=7)
        try:
            claimed = await claim_reward(ledger, reward_id=reward.id, loyalty_id=person.loyalty_id,
                                         merchant_id=reward.merchant_id, idempotency_key=f"demo-claim-{n}",
                                         now=clock.now,
                                         member_proof=presence_code(ledger.keys, person.loyalty_id, clock.now))
        except DomainError:  # e.g. the member owes points after a refund: no claim for now
            continue
        person.balance = claimed.member.balance
        counts["vouchers claimed"] += 1
        if n % 2 == 0:
            await use_voucher(ledger, merchant_id=reward.merchant_id, code=claimed.voucher.code,
                              idempotency_key=f"demo-use-{n}", now=clock.now)
            counts["vouchers used"] += 1
    for n, person in enumerate(rng.sample(richest, min(3, len(richest)))):  # regulars fill the card, tour the shops
        for visit in range(5):
            clock.now += dt.timedelta(hours=5)
            shop = shops[0] if visit < 4 else partners[n % len(partners)]
            await purchases.earn(ledger, merchant_id=shop.id, loyalty_id=person.loyalty_id,
                                 purchase_amount_minor=450 + 50 * visit, idempotency_key=f"demo-program-{n}-{visit}")
        for other in partners[1:3]:
            clock.now += dt.timedelta(hours=5)
            await purchases.earn(ledger, merchant_id=other.id, loyalty_id=person.loyalty_id,
                                 purchase_amount_minor=800, idempotency_key=f"demo-tour-{n}-{other.id}")
    async with db.read() as conn:
        counts["cards filled"] = int((await conn.execute(select(func.coalesce(func.sum(
            StampProgress.completed_cards), 0)).where(StampProgress.card_id == card.id))).scalar_one())
        counts["quests done"] = int((await conn.execute(select(func.count()).select_from(QuestCompletion)))
                                    .scalar_one())
    return counts


async def _backdate(db: Database, shops: list[DemoMerchant], people: list[_Member], start: dt.datetime) -> None:
    async with db.transaction() as conn:
        await conn.execute(
            update(Merchant).where(Merchant.id.in_([s.id for s in shops])).values(
                created_at=start - dt.timedelta(days=30))
        )
        rows = [{"mid": p.member_id, "at": p.enrolled_at} for p in people if p.member_id]
        if rows:
            await conn.execute(
                update(Member).where(Member.id == bindparam("mid")).values(created_at=bindparam("at")), rows
            )


def claim_request(claim_code: str) -> dict[str, object]:
    """The customer's request (no key): a claim code in, the member's token out, shown once."""
    return {"query": "mutation Claim($input: ClaimMemberAccessInput!) { claimMemberAccess(input: $input) { "
                     "memberToken member { loyaltyId balance } userErrors { code message } } }",
            "variables": {"input": {"claimCode": claim_code}}}


def example_requests(merchant_key: str, loyalty_id: str) -> list[tuple[str, dict[str, object]]]:
    """Two requests to try against the API: who am I, and an earn (with a fresh idempotency key)."""
    earn = (
        "mutation Earn($input: EarnPointsInput!) { earnPoints(input: $input) { "
        "transaction { id kind points } member { loyaltyId balance } userErrors { field code message } } }"
    )
    return [
        ("who am I", {"query": "{ viewer { ... on MerchantViewer { merchant { name } } } }"}),
        ("earn points for a 12.50 purchase", {"query": earn, "variables": {"input": {
            "loyaltyId": loyalty_id, "purchaseAmountMinor": 1250, "reference": "R-CURL-1",
            "idempotencyKey": "curl-example-1",
        }}}),
    ]


LARGE_DEMO_MEMBERS = 5_000
"""From this many members on, ``coalition demo`` writes a synthetic network in bulk instead of
simulating every purchase through the services (which takes about a minute per 10,000)."""


async def create_synthetic_demo(
    db: Database, settings: Settings, keys: NetworkKeys, *, members: int, merchants: int = 5, seed: int = 7,
    purchases_per_member: int = 10, progress: Progress | None = None,
) -> DemoNetwork:
    """A large demo network: ``coalition.network.synthetic`` arrays bulk-loaded into the ledger.

    Power-law referrals, neighbourhood clusters of merchants and planted fraud (sybil farms,
    colluding merchant pairs) as the generator makes them; a year of history ending now.
    Merchants: at least ``merchants``, and one per 2,000 members (at most 1,000).
    """
    from coalition.auth.models import Role
    from coalition.auth.service import create_api_key
    from coalition.network.bulkload import load_synthetic
    from coalition.network.synthetic import generate

    started = time.perf_counter()
    report = progress or (lambda stage, done, total: None)
    n_merchants = max(merchants, min(1000, members // 2000))
    report("generating", 0, 1)
    network = generate(n_members=members, n_merchants=n_merchants, n_purchases=members * purchases_per_member,
                       seed=seed)
    report("generating", 1, 1)
    shift_s = int(utcnow().timestamp()) - network.as_of
    names = [(_profile(i).name, _profile(i).category) for i in range(n_merchants)]
    loaded = await load_synthetic(db, keys, network, merchant_names=names, shift_s=shift_s, progress=progress)
    admin_key = await create_admin_key(db, label="demo admin")
    shops: list[DemoMerchant] = []
    async with db.sessions.begin() as session:
        for merchant_id, (name, category) in list(zip(loaded.merchant_ids, names, strict=True))[:5]:
            key = await create_api_key(session, Role.MERCHANT, merchant_id=merchant_id, label="demo")
            shops.append(DemoMerchant(merchant_id, name, category, 1, key))
    async with db.read() as conn:
        sample = (await conn.execute(
            select(Member.id, Member.loyalty_id, Member.balance)
            .where(Member.id.in_([int(i) for i in loaded.member_ids[:1000]]))
            .order_by(Member.balance.desc(), Member.id).limit(1))).one()
    _, claim = await reissue_claim_code(db, sample.id, ttl_s=settings.member_claim_ttl_s)
    return DemoNetwork(
        admin_key=admin_key, merchants=shops, sample_loyalty_id=sample.loyalty_id, sample_balance=sample.balance,
        members=members, referred=len(network.referrals),
        transactions={"EARN": loaded.rows["lots"], "REDEEM": loaded.rows["entries"] - loaded.rows["lots"]},
        elapsed_s=time.perf_counter() - started, total_merchants=n_merchants, sample_claim_code=claim.code,
    )
