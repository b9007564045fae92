"""The console dashboard's rollup (migration 0024): the ledger's entries summed per merchant, kept by the worker.

Written only by :func:`coalition.console.rollup.roll_up` (the worker's ``dashboards`` job);
read by :func:`coalition.console.dashboard.merchant_dashboard` with the entries not rolled up yet.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger
from sqlalchemy.orm import Mapped, mapped_column

from coalition.db import Base


class DashboardMember(Base):
    """One member's entries at one merchant, with id <= the state's ``rolled_through_id``."""

    __tablename__ = "dashboard_members"

    merchant_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    member_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    entries: Mapped[int]  # any kind: the member was served here
    earns: Mapped[int]
    issued: Mapped[int]  # the EARN entries' points
    honored: Mapped[int]  # minus the REDEEM entries' points


class DashboardWeek(Base):
    """A merchant's points issued and honored in the week (UTC, from Monday 00:00) that starts at ``week_start``."""

    __tablename__ = "dashboard_weeks"

    merchant_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    week_start: Mapped[dt.datetime] = mapped_column(primary_key=True)
    issued: Mapped[int]
    honored: Mapped[int]


class DashboardMerchant(Base):
    """A merchant's totals over its :class:`DashboardMember` rows, so a read need not add them up."""

    __tablename__ = "dashboard_merchants"

    merchant_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    served: Mapped[int]  # members with a row
    served_enrolled: Mapped[int]  # those of them this merchant enrolled (a member's enrolling merchant never changes)
    buyers: Mapped[int]  # members with earns >= 1
    repeat: Mapped[int]  # members with earns >= 2
    issued: Mapped[int]
    honored: Mapped[int]


class DashboardRollup(Base):
    """The one row saying how far the rollup goes (:mod:`coalition.console.rollup`)."""

    __tablename__ = "dashboard_rollup"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)  # always 1
    rolled_through_id: Mapped[int]  # entries with id <= this are in the rollup, the others are not
    pending_id: Mapped[int | None]  # the largest entry id seen at pending_seen_at: rolled up GRACE later
    pending_seen_at: Mapped[dt.datetime | None]
