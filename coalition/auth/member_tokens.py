"""Member tokens as the authenticator reads them.

The members' service issues, claims and revokes tokens (``coalition.members.credentials``);
the authenticator only needs to recognise one and find its member. Both read the
credentials table (``coalition.members.models``, the table layer), so the authenticator does
not depend on the members' service.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from coalition.db import utcnow
from coalition.members.models import CredentialKind, MemberCredential

TOKEN_PREFIX = "cmt_"


def live_credential(now: dt.datetime) -> ColumnElement[bool]:
    """A credential neither revoked nor expired at ``now``."""
    return and_(MemberCredential.revoked_at.is_(None),
                or_(MemberCredential.expires_at.is_(None), MemberCredential.expires_at > now))


async def member_id_for_token(conn: AsyncConnection, digest: str) -> int | None:
    """The member a token's SHA-256 belongs to, if the token is live; the authenticator's one lookup."""
    return (await conn.execute(
        select(MemberCredential.member_id).where(
            MemberCredential.secret_hash == digest, MemberCredential.kind == CredentialKind.TOKEN,
            live_credential(utcnow()))
    )).scalar()
