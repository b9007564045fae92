"""Fraud alerts as ``fraud.alert`` webhook events, and which alerts a merchant is shown.

A merchant is shown the network's alerts that name it (its console's insights page), and of
their members only its own (``console.dashboard.own_members``): :func:`alerts_naming` is that
rule, for the page and for the events. An analysis run (``network.jobs.run_analysis``) tells
the admin's endpoints of every alert the previous run did not have (by :func:`alert_key`:
kind and members) and each merchant's of those it is shown, in the transaction that stores
the run. Alerts a reviewer dismissed leave the analysis, so they are not told again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable
from typing import Any

from coalition.console.dashboard import own_members
from coalition.db import Change, Database
from coalition.network.reviews import alert_key

FRAUD_ALERT = "fraud.alert"


def alerts_naming(alerts: Iterable[dict[str, Any]], merchant_id: int) -> list[dict[str, Any]]:
    """The network's fraud alerts ``merchant_id`` is shown: those that name it (of their members, it is
    told only its own: ``own_members``)."""
    return [alert for alert in alerts if merchant_id in alert.get("merchant_ids", [])]


def _event(alert: dict[str, Any], member_ids: list[int], merchant_ids: list[int] | None) -> dict[str, Any]:
    """The admin's copy (``merchant_ids`` given) has the analysis's explanation too; a merchant's has
    what its console shows (kind, score, its own members): the explanation names the other merchants."""
    data: dict[str, Any] = {"kind": alert["kind"], "score": alert["score"], "member_ids": member_ids}
    if merchant_ids is not None:
        data["merchant_ids"] = merchant_ids
        data["reason"] = alert.get("explanation")
    return data


async def alert_changes(db: Database, alerts: list[dict[str, Any]], seen: Collection[str],
                        now: dt.datetime) -> list[Change]:
    """The ``fraud.alert`` events of ``alerts`` (a run's network payload) whose key is not in ``seen``:
    one for the admin's endpoints with everything, one per merchant shown it with its own members only."""
    hooks = db.hooks
    if hooks is None:
        return []
    new = [alert for alert in alerts if alert_key(alert["kind"], alert.get("member_ids", [])) not in seen]
    changes = [Change(FRAUD_ALERT, None, None, now, _event(alert, list(alert.get("member_ids", [])),
                                                              list(alert.get("merchant_ids", []))))
               for alert in new]
    for merchant_id in sorted({m for alert in new for m in alert.get("merchant_ids", [])}):
        if not await hooks.wants(merchant_id, FRAUD_ALERT):
            continue
        for alert in alerts_naming(new, merchant_id):
            own = await own_members(db, merchant_id, list(alert.get("member_ids", [])))
            changes.append(Change(FRAUD_ALERT, merchant_id, None, now, _event(alert, own, None)))
    return changes


def seen_keys(alerts: Iterable[dict[str, Any]]) -> set[str]:
    return {alert_key(alert["kind"], alert.get("member_ids", [])) for alert in alerts}
