"""``coalition gift-card-print``: a printable gift card (PDF) and its QR code (PNG), from a code just sold.

A card's code is shown once, by ``issueGiftCard``, and never stored; the till that sold the card
passes that code here to print it. Nothing is read from or written to the database.
"""

from __future__ import annotations

from pathlib import Path

import click

from coalition.cli._common import _settings, console


@click.command("gift-card-print")
@click.argument("code")
@click.option("--amount-minor", type=click.IntRange(min=1), required=True,
              help="The card's value in minor units, as sold (printed on the card).")
@click.option("--pdf", "pdf_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the printable card (85.6 x 54 mm PDF) here.")
@click.option("--qr", "qr_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the QR code of the code (PNG) here.")
def gift_card_print(code: str, amount_minor: int, pdf_path: Path | None, qr_path: Path | None) -> None:
    """Print a gift card CODE that issueGiftCard just returned (the network keeps no copy of it)."""
    from coalition.crypto import NetworkKeys
    from coalition.giftcards import codes, printable

    if pdf_path is None and qr_path is None:
        raise click.UsageError("say where to write the card: --pdf and/or --qr")
    settings = _settings()
    keys = NetworkKeys.from_settings(settings)
    try:
        if pdf_path is not None:
            pdf_path.write_bytes(printable.gift_card_pdf(settings, keys, code, amount_minor))
        if qr_path is not None:
            qr_path.write_bytes(printable.gift_card_qr_png(keys, code))
    except codes.CodeError as exc:
        raise click.ClickException(f"not a gift card code of this network: {exc}") from None
    console.print("wrote " + " and ".join(str(p) for p in (pdf_path, qr_path) if p is not None))
