"""What the page tests share: a signed-up network (``page_world``) and a client that keeps cookies."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from page_world import World, build_world


@pytest.fixture
async def world(db: Any, keys: Any) -> World:
    return await build_world(db, keys)


@pytest.fixture
async def browser(app: Any) -> Any:
    """A client that keeps cookies, like a browser."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        yield client
