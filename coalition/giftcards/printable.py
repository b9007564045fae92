"""A printable gift card (PDF) and the QR code of its code (PNG), made from the code the sale returned.

The network never stores a card's code (only its keyed hash), so a printable card can only be
made at the till, from the ``code`` that ``issueGiftCard`` answers with that once: the till (or
``coalition gift-card-print``) renders it and keeps nothing. The QR code holds the code as
printed (``XXXX-XXXX-XXXX-XXXX-XXX``), which is what ``redeemGiftCard`` takes. The card is drawn
like a member's card (``coalition.members.cards``, segno and matplotlib).
"""

from __future__ import annotations

from coalition.config import Settings
from coalition.crypto import NetworkKeys
from coalition.giftcards import codes
from coalition.members.cards import printable_card, qr_png
from coalition.money import format_money


def printable_code(keys: NetworkKeys, raw_code: str) -> str:
    """The code as printed on the card, or :class:`codes.CodeError` when it is not one of this network's
    (a mistyped code is refused here rather than printed)."""
    return codes.format_code(codes.parse(keys, raw_code))


def gift_card_pdf(settings: Settings, keys: NetworkKeys, raw_code: str, amount_minor: int) -> bytes:
    """The card: the network's name, its value, the code and the code's QR."""
    code = printable_code(keys, raw_code)
    value = f"{format_money(amount_minor, settings.currency_exponent)} {settings.currency}"
    return printable_card(settings.network_name, f"Gift card · {value}", code, code,
                          "Spend it at any partner · keep the code secret", text_size=7,
                          document_title=f"{settings.network_name} gift card")


def gift_card_qr_png(keys: NetworkKeys, raw_code: str) -> bytes:
    """The QR code of the card's code, as PNG."""
    return qr_png(printable_code(keys, raw_code))
