"""The one money formatter: minor units (an integer, or a ``Decimal``) to text, never through a float.

Every place that shows money (the CLI, the settlement reports and pages, the what-if
simulation) calls :func:`format_money` with the currency's exponent (ISO 4217 minor
units: 2 for EUR, 0 for JPY, 3 for KWD; ``Settings.currency_exponent``). A float cannot
hold every amount of minor units exactly (above 2**53 it rounds), so one is refused.

The text is the locale-neutral form (comma thousands, point decimals): ``1,234.56``.
Arguments after the exponent are keyword-only so that the pages can later ask for a
locale (``format_money(amount, exponent, locale="de_CH")``, through Babel) without
changing a call site.
"""

from __future__ import annotations

from decimal import Context, Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from babel import Locale

__all__ = ["format_money", "format_money_locale"]

MAX_EXPONENT = 18  # no currency has more than 3; a larger one is a configuration mistake


def format_money(amount_minor: int | Decimal, exponent: int) -> str:
    """``1234`` with exponent 2 -> ``"12.34"``; thousands separated, ``-`` for a negative amount.

    ``amount_minor`` is in minor units: an ``int``, or a ``Decimal`` when it may hold a
    fraction of a minor unit (a rounding residue); a ``Decimal`` keeps every digit it has
    beyond the currency's and at least the currency's. A float (or a bool) is refused with
    a TypeError: convert it where it was made, not here.
    """
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int | Decimal):
        raise TypeError(f"money is formatted from integer minor units or a Decimal, got {type(amount_minor).__name__} "
                        f"{amount_minor!r}: pass the amount as an int of minor units")
    if isinstance(exponent, bool) or not isinstance(exponent, int) or not 0 <= exponent <= MAX_EXPONENT:
        raise ValueError(f"a currency exponent is an integer 0..{MAX_EXPONENT} (2 for EUR, 0 for JPY), "
                         f"got {exponent!r}")
    if isinstance(amount_minor, Decimal):
        return _decimal(amount_minor, exponent)
    if exponent == 0:
        return f"{amount_minor:,}"
    sign = "-" if amount_minor < 0 else ""
    whole, part = divmod(abs(amount_minor), 10**exponent)
    return f"{sign}{whole:,}.{part:0{exponent}d}"


def _decimal(amount_minor: Decimal, exponent: int) -> str:
    if not amount_minor.is_finite():
        raise ValueError(f"money is a finite amount, got {amount_minor}")
    # A precision wide enough for every digit: the default context (28 digits) would round a long amount.
    exact = Context(prec=len(amount_minor.as_tuple().digits) + 2 * MAX_EXPONENT + 2)
    major = amount_minor.scaleb(-exponent, context=exact)
    # The sub-minor digits a residue has, and at least the currency's.
    places = max(exponent, -int(major.as_tuple().exponent))
    major = major.quantize(Decimal(1).scaleb(-places), context=exact)  # adds zeros only
    if major.is_zero():
        major = abs(major)  # "0.00", not "-0.00"
    return f"{major:,f}"


def format_money_locale(amount_minor: int, exponent: int, currency: str, locale: str | Locale) -> str:
    """``3799`` EUR in ``da`` -> ``"37,99 €"``: the pages' form, per locale through Babel, from a Decimal.

    Same refusals as :func:`format_money` (no floats); the amount is exact before Babel sees it.
    ``locale`` parsed already (a ``babel.Locale``) saves Babel parsing it again on every amount:
    a batch report formats thousands.
    """
    from babel.numbers import format_currency, get_currency_precision  # the CLI and reports do not need Babel loaded

    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
        raise TypeError(f"money is formatted from integer minor units, got {type(amount_minor).__name__}")
    if isinstance(exponent, bool) or not isinstance(exponent, int) or not 0 <= exponent <= MAX_EXPONENT:
        raise ValueError(f"a currency exponent is an integer 0..{MAX_EXPONENT}, got {exponent!r}")
    major = Decimal(amount_minor).scaleb(-exponent)
    if get_currency_precision(currency) == exponent:
        return format_currency(major, currency, locale=locale)
    # A configured exponent other than ISO's: every digit shown, none rounded away.
    return format_currency(major, currency, locale=locale, currency_digits=False, decimal_quantization=False)
