"""Per-request DataLoaders of the programs' tables."""

from __future__ import annotations

from coalition.graphql.dataloaders import _ByColumnLoader
from coalition.programs.reward_models import Quest, Reward, StampCard, Voucher


class RewardByIdLoader(_ByColumnLoader):
    model, column = Reward, "id"


class VoucherByIdLoader(_ByColumnLoader):
    model, column = Voucher, "id"


class StampCardByIdLoader(_ByColumnLoader):
    model, column = StampCard, "id"


class QuestByIdLoader(_ByColumnLoader):
    model, column = Quest, "id"
