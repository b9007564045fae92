"""The four loyalty types, a module of its own so that the pure analysis needs no table layer."""

from __future__ import annotations

import enum


class LoyaltyType(enum.IntEnum):
    """The four loyalty types (rules in ``coalition.network.segments``), stored as these numbers."""

    TRULY_LOYAL = 0
    ACCESSIBLE = 1
    TRAPPED = 2
    HIGH_RISK = 3
