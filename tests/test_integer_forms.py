"""The pages' fast integer and money forms write exactly what Babel writes, in every language."""

from __future__ import annotations

from babel.numbers import format_decimal
from hypothesis import given, settings
from hypothesis import strategies as st

from coalition.i18n import LANGUAGES, Formatter, _money_form, _number_form, locale_of
from coalition.money import format_money_locale

CURRENCIES = [("EUR", 2), ("JPY", 0), ("KWD", 3), ("EUR", 3), ("DKK", 2), ("ILS", 2)]
amounts = st.one_of(st.integers(-10**6, 10**6), st.integers(-10**20, 10**20))


@settings(max_examples=300, deadline=None)
@given(value=amounts, lang=st.sampled_from(sorted(LANGUAGES)), currency=st.sampled_from(CURRENCIES))
def test_each_form_is_babels_text(value: int, lang: str, currency: tuple[str, int]) -> None:
    code, exponent = currency
    t = Formatter(lang, code, exponent)
    assert t.money(value) == format_money_locale(value, exponent, code, locale_of(lang))
    plain = format_decimal(value, locale=locale_of(lang))
    assert t.number(value) in (plain, "\u200e" + plain)  # a right-to-left page marks the minus (Formatter._signed)


def test_the_languages_have_forms_and_a_currency_exponent_unlike_isos_has_none() -> None:
    # What makes the report fast is used: every language has both forms for the usual currencies.
    for lang in LANGUAGES:
        assert _number_form(lang) is not None
        assert _money_form(2, "EUR", lang) is not None and _money_form(0, "JPY", lang) is not None
        # EUR with 3 digits: Babel shows every digit given (not a fixed count), so Babel it stays.
        assert _money_form(3, "EUR", lang) is None
