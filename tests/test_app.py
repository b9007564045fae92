"""The application's lifespan: what it sets up for the process and takes down again."""

from __future__ import annotations

import gc
from typing import Any


async def test_startup_freezes_what_is_alive_and_shutdown_unfreezes_it(app: Any) -> None:
    # The collector's full passes then skip the objects that live as long as the process
    # (modules, the schema, caches) instead of stalling every request to walk them again.
    assert gc.get_freeze_count() == 0
    async with app.router.lifespan_context(app):
        assert gc.get_freeze_count() > 10_000
    assert gc.get_freeze_count() == 0
