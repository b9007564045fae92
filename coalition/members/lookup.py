"""Finding a member at the till by exact e-mail or phone: a lost card is not a dead end.

The contact is normalized as enrollment normalizes it and looked up through the exact
blind index (``Member.email_index`` / ``phone_index``, unique): nothing is decrypted and
nothing but the one member with exactly that contact is found. The API rate-limits the
lookup per merchant (``COALITION_LOOKUP_PER_MIN``), so the index cannot be walked with
guesses; a found member counts as the customer presenting themselves (the rule of
``member(loyaltyId:)`` in ``coalition/graphql/access.py``).
"""

from __future__ import annotations

from sqlalchemy import select

from coalition.crypto import NetworkKeys
from coalition.db import Database
from coalition.members.models import Member
from coalition.members.service import normalize_email, normalize_phone


async def find_member_by_contact(db: Database, keys: NetworkKeys, contact: str) -> Member | None:
    """The member whose e-mail (``contact`` has an @) or phone is exactly ``contact``, else None.

    Raises ``InvalidInput`` (INVALID_EMAIL / INVALID_PHONE) for a contact that is neither.
    """
    if "@" in contact:
        email = normalize_email(contact)
        condition = Member.email_index == keys.blind_index("email", email or "")
    else:
        phone = normalize_phone(contact)
        condition = Member.phone_index == keys.blind_index("phone", phone or "")
    if not contact.strip():
        return None
    async with db.session() as session:
        return (await session.execute(select(Member).where(condition))).scalar_one_or_none()
