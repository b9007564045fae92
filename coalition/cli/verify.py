"""``coalition verify-statement``: check an exported statement offline."""

from __future__ import annotations

import json
from pathlib import Path

import click

from coalition.cli._common import console, err_console


@click.command("verify-statement")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--public-key", help="The network's public key (GraphQL network.publicKey) to pin; "
                                   "without it the key inside the file is trusted.")
@click.option("--merchant", "merchant_id", type=int,
              help="Your merchant id: the statement must be yours, not another merchant's.")
def verify_statement(file: str, public_key: str | None, merchant_id: int | None) -> None:
    """Verify an exported statement offline (no database).

    Recomputes your salted leaf from your statement and its nonce, follows the inclusion
    proof to the Merkle root, and checks that the batch statement holding the root hashes to
    the digest and that the Ed25519 signature holds. Batches closed before salting (version 1)
    are checked by their plain SHA-256 as before.
    """
    from coalition.settlement.statements import VerificationError, verify_export

    try:
        verified = verify_export(json.loads(Path(file).read_text()), public_key, merchant_id=merchant_id)
    except (VerificationError, ValueError) as exc:
        raise click.ClickException(f"statement does NOT verify: {exc}") from None
    batch = verified.batch
    rule = ("salted Merkle leaf under the signed root" if verified.version == 2
            else "version 1: plain SHA-256 listed in the signed batch")
    console.print(f"statement verifies: batch #{batch['seq']} {batch['periodStart']} .. {batch['periodEnd']}, "
                  f"digest {verified.digest} ({rule})")
    for statement in verified.merchants:
        console.print(f"  merchant {statement['merchantId']}: net {statement['figures']['netMinor']:,} "
                      f"{statement['currency']} minor units, {len(statement['lines'])} lines")
    if not verified.public_key_pinned:
        err_console.print("note: the key inside the file was trusted; pass --public-key to pin the network's key")
