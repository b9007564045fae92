"""RFM scores and the four loyalty types, network-wide and per merchant.

RFM: for each member (network-wide) or each member at each merchant: recency (seconds since
the last earn), frequency (earns) and monetary (summed basket amounts, minor units), each
turned into a quintile score 1..5 where 5 is best (most recent, most frequent, biggest
spender). Quintiles are ranks within the population (the whole network, or one merchant's
members); tied values get the same score.

Loyalty types, per member at a merchant (``LOYALTY_RULES`` holds the same text):

- HIGH_RISK: no purchase at the merchant for more than ``lapse_s`` (default 90 days).
- TRULY_LOYAL: not lapsed, share of wallet >= ``high_share`` (default 0.5: at least half of
  the member's network spend is at this merchant) and frequency score >= 4 at the merchant.
- TRAPPED: not lapsed, share of wallet >= ``high_share`` but frequency score <= 3: the member
  buys here rather than elsewhere, but seldom: habit or convenience, not attachment.
- ACCESSIBLE: not lapsed, share of wallet < ``high_share``: a current customer who also
  shops at other partners.

Win-back list: a merchant's HIGH_RISK members and its ACCESSIBLE members without a purchase
there for more than ``win_back_s`` (default 45 days), biggest spenders first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from coalition.network.graphs import FloatArray, IntArray, PurchaseGraph, argsort_ints
from coalition.network.loyalty import LoyaltyType

DAY_S = 86400


LOYALTY_RULES: dict[LoyaltyType, str] = {
    LoyaltyType.TRULY_LOYAL: "bought here within {lapse_days} days, at least {share:.0%} of their network spend is "
                             "here, and frequency in this shop's top two quintiles",
    LoyaltyType.ACCESSIBLE: "bought here within {lapse_days} days, but less than {share:.0%} of their network spend "
                            "is here: they also shop at other partners",
    LoyaltyType.TRAPPED: "bought here within {lapse_days} days and at least {share:.0%} of their network spend is "
                         "here, but frequency in this shop's bottom three quintiles",
    LoyaltyType.HIGH_RISK: "no purchase here for more than {lapse_days} days",
}

SUGGESTED_ACTIONS: dict[LoyaltyType, str] = {
    LoyaltyType.TRULY_LOYAL: "Reward and keep them: tier perks, early access, and ask them to refer friends.",
    LoyaltyType.ACCESSIBLE: "Grow share of wallet: bonus points on what they buy elsewhere, joint offers with "
                            "partners they already visit.",
    LoyaltyType.TRAPPED: "Build real attachment before a competitor does: personal thank-you offers, service "
                         "improvements; watch for lapses.",
    LoyaltyType.HIGH_RISK: "Win them back: a time-limited bonus on the next visit, and ask why they stopped coming.",
}

Int8Array = NDArray[np.int8]


@dataclass(frozen=True, slots=True, eq=False)
class RFM:
    """RFM per member (``merchant_ids`` is None; rows in member id order) or per member and
    merchant (row i is member ``member_ids[i]`` at merchant ``merchant_ids[i]``; rows sorted by
    merchant id, then member id)."""

    member_ids: IntArray
    merchant_ids: IntArray | None
    recency_s: IntArray
    frequency: IntArray
    monetary_minor: IntArray
    r: Int8Array
    f: Int8Array
    m: Int8Array


@dataclass(frozen=True, slots=True)
class SegmentSummary:
    type: LoyaltyType
    members: int
    rule: str
    action: str


@dataclass(frozen=True, slots=True, eq=False)
class LoyaltySegments:
    """Loyalty type of each member at each merchant where they bought (aligned with ``rfm``)."""

    rfm: RFM
    share_of_wallet: FloatArray
    types: Int8Array
    lapse_s: int
    high_share: float
    win_back_s: int

    def rows_of(self, merchant_id: int) -> IntArray:
        """Row numbers of ``merchant_id``'s members (a contiguous range: rows are grouped by merchant)."""
        assert self.rfm.merchant_ids is not None
        lo, hi = np.searchsorted(self.rfm.merchant_ids, [merchant_id, merchant_id + 1])
        return np.arange(lo, hi, dtype=np.int64)

    def rule(self, loyalty_type: LoyaltyType) -> str:
        return LOYALTY_RULES[loyalty_type].format(lapse_days=self.lapse_s // DAY_S, share=self.high_share)

    def summary(self, merchant_id: int) -> list[SegmentSummary]:
        """Members per loyalty type at ``merchant_id``, with the rule and the suggested action."""
        counts = np.bincount(self.types[self.rows_of(merchant_id)], minlength=len(LoyaltyType))
        return [SegmentSummary(t, int(counts[t]), self.rule(t), SUGGESTED_ACTIONS[t]) for t in LoyaltyType]

    def win_back(self, merchant_id: int, limit: int = 100) -> list[tuple[int, int, int]]:
        """(member id, seconds since last purchase here, monetary here) for the win-back list."""
        rows = self.rows_of(merchant_id)
        types = self.types[rows]
        recency = self.rfm.recency_s[rows]
        wanted = (types == LoyaltyType.HIGH_RISK) | ((types == LoyaltyType.ACCESSIBLE) & (recency > self.win_back_s))
        rows = rows[wanted]
        rows = rows[np.lexsort((self.rfm.member_ids[rows], -self.rfm.monetary_minor[rows]))][:limit]
        return [(int(self.rfm.member_ids[i]), int(self.rfm.recency_s[i]), int(self.rfm.monetary_minor[i]))
                for i in rows]


def quintiles(values: NDArray[np.int64] | FloatArray, groups: IntArray | None = None) -> Int8Array:
    """Score 1..5 of each value within its group (5 = highest fifth); ties share the lower score."""
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype=np.int8)
    group = np.zeros(n, dtype=np.int64) if groups is None else groups.astype(np.int64)
    order = _group_value_order(values, group)
    sorted_group, sorted_values = group[order], values[order]
    position = np.arange(n)
    new_group = np.r_[True, sorted_group[1:] != sorted_group[:-1]]
    group_start = np.maximum.accumulate(np.where(new_group, position, 0))
    new_value = new_group | np.r_[True, sorted_values[1:] != sorted_values[:-1]]
    tie_start = np.maximum.accumulate(np.where(new_value, position, 0))
    starts = np.flatnonzero(new_group)
    sizes = np.diff(np.r_[starts, n])
    size = np.repeat(sizes, sizes)
    scores = np.empty(n, dtype=np.int8)
    scores[order] = (1 + ((tie_start - group_start) * 5) // size).astype(np.int8)
    return scores


def _group_value_order(values: NDArray[np.int64] | FloatArray, group: IntArray) -> IntArray:
    """Order by (group, value). One argsort of a packed int64 key when it fits (2-5x faster
    than lexsort on millions of rows); the order among equal keys does not matter here."""
    if values.dtype.kind in "iu" and len(values) and group.min() >= 0:
        span = int(values.max()) - int(values.min())
        group_bits = max(int(group.max()), 1).bit_length()
        if span.bit_length() + group_bits <= 62:
            key = (group << span.bit_length()) | (values.astype(np.int64) - int(values.min()))
            return argsort_ints(key)
    ordered: IntArray = np.lexsort((values, group))
    return ordered


def network_rfm(graph: PurchaseGraph, as_of: int) -> RFM:
    """RFM per member across the whole network (members with at least one earn)."""
    counts = graph.counts
    frequency = np.asarray(counts.sum(axis=1), dtype=np.int64).reshape(-1)
    monetary = np.asarray(graph.amounts_minor.sum(axis=1), dtype=np.int64).reshape(-1)
    last = np.maximum.reduceat(graph.last_times.data, graph.last_times.indptr[:-1]) if counts.nnz else frequency
    recency = (as_of - last).astype(np.int64)
    return RFM(graph.member_ids, None, recency, frequency, monetary, quintiles(-recency), quintiles(frequency),
               quintiles(monetary))


def merchant_rfm(graph: PurchaseGraph, as_of: int) -> RFM:
    """RFM per member at each merchant, quintiles within each merchant's own members.

    Rows are grouped by merchant (merchant ids ascending, then member ids), so one merchant's
    rows are a contiguous slice (``LoyaltySegments.rows_of``).
    """
    return _merchant_rfm(graph, as_of)[0]


def _merchant_rfm(graph: PurchaseGraph, as_of: int) -> tuple[RFM, IntArray]:
    """``merchant_rfm`` and each row's member position in ``graph`` (its row of the purchase graph)."""
    counts = graph.counts.tocsc()
    amounts = graph.amounts_minor.tocsc()
    last = graph.last_times.tocsc()
    for matrix in (counts, amounts, last):
        matrix.sort_indices()
    columns = np.repeat(np.arange(len(graph.merchant_ids), dtype=np.int64), np.diff(counts.indptr))
    members = graph.member_ids[counts.indices]
    frequency = counts.data.astype(np.int64)
    monetary = amounts.data.astype(np.int64)
    recency = (as_of - last.data).astype(np.int64)
    rfm = RFM(members, graph.merchant_ids[columns], recency, frequency, monetary, quintiles(-recency, columns),
              quintiles(frequency, columns), quintiles(monetary, columns))
    return rfm, counts.indices


def loyalty_segments(graph: PurchaseGraph, as_of: int, lapse_s: int = 90 * DAY_S, high_share: float = 0.5,
                     win_back_s: int = 45 * DAY_S) -> LoyaltySegments:
    """Loyalty type of every member at every merchant they bought at (rule in the module docstring)."""
    rfm, member_rows = _merchant_rfm(graph, as_of)
    totals = np.asarray(graph.amounts_minor.sum(axis=1), dtype=np.float64).reshape(-1)
    share = rfm.monetary_minor / np.maximum(totals[member_rows], 1.0)
    lapsed = rfm.recency_s > lapse_s
    high = share >= high_share
    types = np.where(high, LoyaltyType.TRAPPED, LoyaltyType.ACCESSIBLE).astype(np.int8)
    types[high & (rfm.f >= 4)] = LoyaltyType.TRULY_LOYAL
    types[lapsed] = LoyaltyType.HIGH_RISK
    return LoyaltySegments(rfm, share, types, lapse_s, high_share, win_back_s)
