"""``coalition members``: the admin side of member access (claim codes, tokens)."""

from __future__ import annotations

from typing import Any

import click

from coalition.cli._common import _run, _settings, _with_db, console, err_console
from coalition.db import Database


@click.group()
def members() -> None:
    """Member access: claim codes and tokens (the admin side of issueMemberClaimCode / revokeMemberTokens)."""


@members.command("claim-code")
@click.argument("loyalty_id")
def members_claim_code(loyalty_id: str) -> None:
    """For a member who lost access: revoke its tokens and print a new one-time claim code (stdout).

    Hand the code to the customer only after verifying who they are; they exchange it for a
    token with the claimMemberAccess mutation (or the claim link).
    """
    from coalition.members.credentials import claim_url, reissue_claim_code
    from coalition.members.service import find_member

    settings = _settings()

    async def issue(db: Database) -> tuple[str, str, Any]:
        member = await find_member(db, loyalty_id)
        _, claim = await reissue_claim_code(db, member.id, ttl_s=settings.member_claim_ttl_s)
        return member.loyalty_id, claim.code, claim.expires_at

    lid, code, expires_at = _run(_with_db(settings, issue))
    err_console.print(f"member {lid}: earlier tokens and codes revoked; this code works once, until "
                      f"{expires_at:%Y-%m-%d %H:%M} UTC: {claim_url(settings.public_url, code)}")
    click.echo(code)


@members.command("revoke-tokens")
@click.argument("loyalty_id")
def members_revoke_tokens(loyalty_id: str) -> None:
    """Sign a member out everywhere: every token and unused claim code stops working."""
    from coalition.members.credentials import revoke_member_credentials
    from coalition.members.service import find_member

    settings = _settings()

    async def revoke(db: Database) -> int:
        return await revoke_member_credentials(db, (await find_member(db, loyalty_id)).id)

    count = _run(_with_db(settings, revoke))
    console.print(f"revoked {count} credential{'s' if count != 1 else ''} of member {loyalty_id.strip().upper()}")
