"""Guessing codes is useless: 10,000 guesses find no card, and the guesser is throttled and noticed."""

from __future__ import annotations

import logging
import secrets
from typing import Any

import pytest

from coalition.giftcards import codes
from coalition.giftcards.guard import LOOKUP_FAILURES, GuessGuard
from coalition.giftcards.service import GiftCards
from coalition.loyalty_id import ALPHABET, _check_character


def random_code(tagged_by: Any = None) -> str:
    """A code with a valid check character; with ``tagged_by`` (keys) also this network's tag."""
    body = "".join(secrets.choice(ALPHABET) for _ in range(codes.RANDOM_LENGTH))
    if tagged_by is not None:
        tagged = body + codes._tag(tagged_by, body)
    else:
        tagged = body + "".join(secrets.choice(ALPHABET) for _ in range(codes.TAG_LENGTH))
    return tagged + _check_character(tagged)


BUDGET = 20  # the default of COALITION_GIFT_CARD_LOOKUP_FAILURES (the test settings lift it)


async def test_ten_thousand_guesses_find_nothing_and_are_throttled(shops: Any, caplog: Any) -> None:
    # given real cards in the network, and the default budget of failed look-ups
    shops.gift.guard = GuessGuard.in_process(BUDGET, 600)
    sold = [await shops.issue(1000) for _ in range(20)]
    real = {s.card.id for s in sold}
    failures_before = LOOKUP_FAILURES.labels("no_card")._value.get()
    # when one caller makes 10,000 guesses (well-formed: a valid check character)
    found, throttled = 0, 0
    caplog.set_level(logging.WARNING, logger="coalition.giftcards")
    for _ in range(10_000):
        guess = random_code()
        card = None
        try:
            card = await shops.gift.look_up(caller_key="MERCHANT:attacker", code=guess)
        except Exception as exc:
            assert getattr(exc, "code", None) == "RATE_LIMITED", repr(exc)
            throttled += 1
        if card is not None:
            found += 1
    # then none succeeded, all but the budget were refused unread, and one warning without any code went out
    assert found == 0
    budget = BUDGET
    assert throttled >= 10_000 - budget
    assert LOOKUP_FAILURES.labels("no_card")._value.get() - failures_before == budget
    warnings = [r for r in caplog.records if r.name == "coalition.giftcards"]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert not any(r.levelno >= logging.ERROR for r in caplog.records)
    message = warnings[0].getMessage()
    assert all(s.code.replace("-", "")[:8] not in message for s in sold)
    # and even a right code is refused to the throttled caller, while another caller still gets its card
    with pytest.raises(Exception) as info:
        await shops.gift.look_up(caller_key="MERCHANT:attacker", code=sold[0].code)
    assert getattr(info.value, "code", None) == "RATE_LIMITED"
    honest = await shops.gift.look_up(caller_key="MERCHANT:honest", code=sold[0].code)
    assert honest is not None and honest.id in real
    # and spending with a guessed code is throttled the same way
    with pytest.raises(Exception) as info:
        await shops.gift.redeem(merchant_id=shops.b.id, caller_key="MERCHANT:attacker", code=sold[1].code,
                                amount_minor=1, idempotency_key="steal")
    assert getattr(info.value, "code", None) == "RATE_LIMITED"


async def test_even_codes_with_the_network_tag_find_nothing(shops: Any, db: Any, settings: Any, keys: Any) -> None:
    # an insider who could tag codes (no budget) still finds no card in 2,000 database look-ups
    await shops.issue(1000)
    gift = GiftCards(db, settings, keys, guard=GuessGuard.in_process(1_000_000, 600))
    hits = [await gift.look_up(caller_key="x", code=random_code(keys)) for _ in range(2_000)]
    assert not any(hits)
