"""The printable gift card: made at the till from the code the sale returned, never from storage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from coalition.cli import cli
from coalition.config import load_settings
from coalition.crypto import NetworkKeys
from coalition.giftcards import codes, printable
from coalition.giftcards.models import GiftCard


async def test_a_card_just_sold_prints_with_its_code_and_value(shops: Any, settings: Any, keys: Any,
                                                                db: Any) -> None:
    sold = await shops.issue(2550)
    assert sold.code is not None
    pdf = printable.gift_card_pdf(settings, keys, sold.code, 2550)
    assert pdf.startswith(b"%PDF")
    # the QR holds the code as printed, in any spelling the till typed it
    assert printable.printable_code(keys, sold.code.lower().replace("-", " ")) == sold.code
    png = printable.gift_card_qr_png(keys, sold.code)
    assert png.startswith(b"\x89PNG")
    assert png == printable.gift_card_qr_png(keys, sold.code.replace("-", ""))
    # printing reads nothing and stores nothing: the network still has only the hash
    async with db.read() as conn:
        stored = (await conn.execute(select(GiftCard.code_hash, GiftCard.last4))).one()
    assert stored.code_hash == codes.code_hash(keys, codes.normalize(sold.code)) and sold.code not in stored


@pytest.mark.parametrize("mangle", [lambda c: c[:-1] + ("0" if c[-1] != "0" else "1"), lambda c: "X" + c[1:]])
def test_a_mistyped_or_foreign_code_is_not_printed(keys: Any, mangle: Any) -> None:
    code = codes.new_code(keys)
    with pytest.raises(codes.CodeError):
        printable.gift_card_pdf(load_settings({"COALITION_SECRET_KEY": "test-secret-key"}), keys, mangle(code), 100)
    other_network = NetworkKeys.from_settings(load_settings({"COALITION_SECRET_KEY": "another-network"}))
    with pytest.raises(codes.CodeError):
        printable.gift_card_qr_png(keys, codes.new_code(other_network))


def test_the_cli_prints_a_code_and_refuses_a_mistyped_one(tmp_path: Path) -> None:
    env = {"COALITION_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'none.db'}",
           "COALITION_SECRET_KEY": "cli-print-secret", "COALITION_REDIS_URL": "", "COALITION_ADMIN_KEY": ""}
    code = codes.new_code(NetworkKeys.from_settings(load_settings(env)))
    pdf, qr = tmp_path / "card.pdf", tmp_path / "card.png"
    result = CliRunner().invoke(cli, ["gift-card-print", code, "--amount-minor", "1000", "--pdf", str(pdf),
                                      "--qr", str(qr)], env=env)
    assert result.exit_code == 0, result.output
    assert pdf.read_bytes().startswith(b"%PDF") and qr.read_bytes().startswith(b"\x89PNG")
    assert not (tmp_path / "none.db").exists()  # no database was opened
    typo = code[:-1] + ("0" if code[-1] != "0" else "1")
    refused = CliRunner().invoke(cli, ["gift-card-print", typo, "--amount-minor", "1000", "--pdf",
                                       str(tmp_path / "typo.pdf")], env=env)
    assert refused.exit_code == 1 and "not a gift card code" in refused.output
    assert not (tmp_path / "typo.pdf").exists()
    nowhere = CliRunner().invoke(cli, ["gift-card-print", code, "--amount-minor", "1000"], env=env)
    assert nowhere.exit_code == 2
