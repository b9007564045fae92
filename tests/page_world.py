"""Two shops with owners, a cashier, an admin and customers, for the page tests (HTTP and browser)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from coalition.console.models import StaffRole
from coalition.console.service import create_user
from coalition.members.service import enroll_member
from coalition.partners.service import onboard_merchant

PASSWORD = "correct horse battery"


@dataclass
class World:
    merchant: dict[str, int] = field(default_factory=dict)
    key: dict[str, str] = field(default_factory=dict)
    email: dict[str, str] = field(default_factory=dict)  # who -> e-mail: ownerA, cashierA, ownerB, admin
    loyalty: dict[str, str] = field(default_factory=dict)  # alice (shop A's), bob (shop B's)
    claim: dict[str, str] = field(default_factory=dict)


async def build_world(db: Any, keys: Any) -> World:
    world = World()
    for shop in ("A", "B"):
        onboarding = await onboard_merchant(db, name=f"Shop {shop}", category="cafe")
        world.merchant[shop], world.key[shop] = onboarding.merchant.id, onboarding.api_key
        for role in ("owner", "cashier"):
            email = f"{role}{shop.lower()}@example.com"
            await create_user(db, email=email, password=PASSWORD, role=StaffRole(role.upper()),
                              merchant_id=onboarding.merchant.id)
            world.email[f"{role}{shop}"] = email
    await create_user(db, email="admin@example.com", password=PASSWORD, role=StaffRole.ADMIN, merchant_id=None)
    world.email["admin"] = "admin@example.com"
    for name, shop in (("alice", "A"), ("bob", "B")):
        enrolled = await enroll_member(db, keys, merchant_id=world.merchant[shop], idempotency_key=f"enroll-{name}",
                                       email=f"{name}@example.com", phone="+4512345678" if name == "alice" else None)
        world.loyalty[name] = enrolled.member.loyalty_id
        assert enrolled.claim is not None
        world.claim[name] = enrolled.claim.code
    return world


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]*)"', html)
    assert found is not None, "no CSRF field in the page"
    return found.group(1)


async def sign_in(client: Any, email: str, password: str = PASSWORD) -> Any:
    """Sign ``client`` (an httpx client over the app) in; returns the POST's response."""
    form = await client.get("/login", headers={"Accept": "text/html"})
    return await client.post("/login", data={"email": email, "password": password, "csrf": csrf_of(form.text),
                                             "next": ""})
