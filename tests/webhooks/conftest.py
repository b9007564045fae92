from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from coalition.config import Settings
from coalition.db import Database
from coalition.ledger.service import Ledger
from coalition.webhooks.outbox import install


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Fast retries and a short timeout so a test sees failures, timeouts and recovery in seconds.
    return dataclasses.replace(settings, webhook_allowed_hosts=frozenset({"127.0.0.1"}), webhook_timeout_s=0.3,
                               webhook_backoff_base_s=0.01, webhook_backoff_cap_s=0.05, webhook_cache_s=0.0)


@pytest.fixture
def outbox(db: Database, settings: Settings) -> Any:
    return install(db, cache_s=settings.webhook_cache_s)


@pytest.fixture
async def hooked_ledger(db: Database, settings: Settings, clock: Any, outbox: Any) -> Ledger:
    return Ledger(db, settings)
