"""Languages: gettext catalogs and locale formatting (Babel) for the pages and the generated reports.

Catalogs live in ``coalition/web/locale/<lang>/LC_MESSAGES/messages.po`` and ship with the
package. They are compiled in memory from the ``.po`` the first time a language is used, so a
clean checkout needs no build step; a translator adds a language by adding a folder and its
code to ``LANGUAGES``. Which language a request gets is :mod:`coalition.web.i18n`'s business;
the settlement reports and statements take a :class:`Formatter` like the pages do.
"""

from __future__ import annotations

import datetime as dt
import functools
import gettext
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_datetime, get_timezone_location
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal, format_percent, get_decimal_symbol, get_group_symbol

from coalition.money import format_money_locale

LOCALE_DIR = Path(__file__).parent / "web" / "locale"
LANGUAGES = {"en": "English", "da": "Dansk", "sv": "Svenska", "lv": "Latviešu", "he": "עברית"}


@functools.cache
def translations(lang: str) -> gettext.NullTranslations:
    po = LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po"
    if lang == "en" or not po.exists():
        return gettext.NullTranslations()
    with po.open("rb") as handle:
        catalog = read_po(handle, locale=lang)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


@functools.cache
def locale_of(lang: str) -> Locale:
    """Babel's locale, parsed once: a page formats hundreds of numbers (the network map's edges)."""
    return Locale.parse(lang)


@functools.cache
def zone_of(name: str) -> ZoneInfo:
    return ZoneInfo(name)


LEFT_TO_RIGHT_MARK = "\u200e"
UTC_NAMES = {"UTC", "Etc/UTC", "Etc/UCT", "UCT", "Zulu", "Etc/Zulu", "Universal", "Etc/Universal"}


@dataclass(frozen=True, slots=True)
class _IntegerForm:
    """How a locale writes an integer amount: Babel's output with the digits swapped, built once.

    Babel takes 20-200 microseconds an amount and a batch report shows some 10,000 (points and
    money per line, most of them different), a third of its first render. The form is kept only
    when it gives Babel's exact text for every probe (:func:`_integer_form`); otherwise Babel it is.
    """

    group: str  # between groups of three digits
    decimal: str  # before the minor digits (money with an exponent > 0)
    exponent: int  # minor digits
    positive: tuple[str, str]  # prefix and suffix around the digits
    negative: tuple[str, str]

    def format(self, value: int) -> str:
        whole, part = divmod(abs(value), 10**self.exponent)
        digits = f"{whole:,}".replace(",", self.group)
        if self.exponent:
            digits += f"{self.decimal}{part:0{self.exponent}d}"
        prefix, suffix = self.negative if value < 0 else self.positive
        return f"{prefix}{digits}{suffix}"


_PROBE = 123456789  # digits that occur once in a form: what is around them is the prefix and suffix
_CHECKS = (0, 1, -1, 7, -7, 99, 100, -100, 999, 1000, -1000, 9999, 10000, -10000, 12345, 123456, -123456, 1234567,
           -1234567, 10**9, 10**12 + 5, -(10**15) - 3, 10**18)


def _integer_form(babel: Callable[[int], str], group: str, decimal: str, exponent: int) -> _IntegerForm | None:
    """The form of ``babel`` (a formatter of integer amounts), or None when it is not one this class can write."""
    around = []
    digits = _IntegerForm(group, decimal, exponent, ("", ""), ("", "")).format(_PROBE)
    for probe in (_PROBE, -_PROBE):
        text = babel(probe)
        if text.count(digits) != 1:
            return None
        prefix, suffix = text.split(digits)
        around.append((prefix, suffix))
    form = _IntegerForm(group, decimal, exponent, around[0], around[1])
    return form if all(form.format(v) == babel(v) for v in _CHECKS) else None


@functools.cache
def _number_form(lang: str) -> _IntegerForm | None:
    locale = locale_of(lang)
    return _integer_form(lambda v: format_decimal(v, locale=locale), get_group_symbol(locale),
                         get_decimal_symbol(locale), 0)


@functools.cache
def _money_form(exponent: int, currency: str, lang: str) -> _IntegerForm | None:
    locale = locale_of(lang)
    return _integer_form(lambda v: format_money_locale(v, exponent, currency, locale), get_group_symbol(locale),
                         get_decimal_symbol(locale), exponent)


@functools.lru_cache(maxsize=16384)
def _money(amount_minor: int, exponent: int, currency: str, lang: str) -> str:
    """Babel's currency formatting takes a fifth of a millisecond, and a batch report shows thousands
    of amounts, many alike (zeros, the same reimbursement): each is formatted once, by the
    locale's form when it has one (the same text, a twentieth of the time)."""
    form = _money_form(exponent, currency, lang)
    if form is not None:
        return form.format(amount_minor)
    return format_money_locale(amount_minor, exponent, currency, locale_of(lang))


@dataclass(frozen=True)
class Formatter:
    """One language's words and number forms, handed to every template as ``t``.

    ``zone`` (an IANA name, the network policy's time zone) is where dates and times are shown:
    a shop owner in Copenhagen reads Copenhagen's clock, and a stored UTC instant late in the
    evening falls on the local day it happened.
    """

    lang: str
    currency: str
    exponent: int
    zone: str = "UTC"

    @property
    def direction(self) -> str:
        return (locale_of(self.lang).character_order == "right-to-left" and "rtl") or "ltr"

    def gettext(self, message: str, **values: object) -> str:
        text = translations(self.lang).gettext(message)
        return text.format(**values) if values else text

    def ngettext(self, singular: str, plural: str, n: int, **values: object) -> str:
        return translations(self.lang).ngettext(singular, plural, n).format(n=self.number(n), **values)

    def money(self, amount_minor: int) -> str:
        if type(amount_minor) is not int:  # refused (a bool or float), and never from the cache: True == 1
            return format_money_locale(amount_minor, self.exponent, self.currency, self.lang)
        return _money(amount_minor, self.exponent, self.currency, self.lang)

    def _signed(self, text: str) -> str:
        # A right-to-left page shows "-5" as "5-" unless the minus is marked left to right, as
        # CLDR's Hebrew minus sign is ("\u200e-"); Babel's number formats leave the mark out.
        if text.startswith("-") and self.direction == "rtl":
            return LEFT_TO_RIGHT_MARK + text
        return text

    def number(self, value: int) -> str:
        form = _number_form(self.lang) if type(value) is int else None
        if form is not None:
            return self._signed(form.format(value))
        return self._signed(format_decimal(value, locale=locale_of(self.lang)))

    def percent(self, value: object) -> str:
        return self._signed(format_percent(value, locale=locale_of(self.lang), format="#,##0.0%"))  # type: ignore[arg-type]

    def decimal(self, value: float, digits: int = 3) -> str:
        """``value`` to at most ``digits`` decimals, e.g. a p-value (below 10^-digits: "< 0.001")."""
        if 0 < value < 10**-digits:
            return "< " + format_decimal(10**-digits, format="0." + "#" * digits, locale=locale_of(self.lang))
        return self._signed(format_decimal(value, format="0." + "#" * digits, locale=locale_of(self.lang)))

    def smallest_purchase(self, amount_minor: int) -> str:
        """A stamp card's smallest purchase that earns a stamp: "any purchase" when it has none."""
        return self.money(amount_minor) if amount_minor > 0 else self.gettext("any purchase")

    @property
    def tzinfo(self) -> ZoneInfo:
        return zone_of(self.zone)

    @property
    def zone_label(self) -> str:
        """The zone in the reader's words ("Danmark-tid"), named next to date inputs; "UTC" for UTC."""
        if self.zone in UTC_NAMES:
            return "UTC"
        return get_timezone_location(self.tzinfo, locale=locale_of(self.lang))

    def local(self, value: dt.datetime) -> dt.datetime:
        """``value`` (aware; naive is taken as UTC) on the zone's clock."""
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).astimezone(self.tzinfo)

    def date(self, value: dt.datetime | dt.date) -> str:
        """The day, in the zone for an instant (23:30 UTC is already tomorrow in Copenhagen)."""
        day = self.local(value).date() if isinstance(value, dt.datetime) else value
        return format_date(day, "medium", locale=locale_of(self.lang))

    def last_day(self, end: dt.datetime) -> str:
        """The last day a period ending at ``end`` (exclusive: midnight after it, as the forms store
        "until 31 May") includes, in the zone."""
        return self.date((self.local(end) - dt.timedelta(microseconds=1)).date())

    def datetime(self, value: dt.datetime) -> str:
        return format_datetime(self.local(value), "short", tzinfo=self.tzinfo, locale=locale_of(self.lang))


def warm_up() -> None:
    """Read every language's catalog and Babel's locale data now (at start-up): the first page in a
    language otherwise compiles its ``.po`` and loads its locale on a visitor's request."""
    moment = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    for lang in LANGUAGES:
        t = Formatter(lang, "EUR", 2)
        t.gettext("Net")
        t.number(1234), t.money(1234), t.percent(0.5), t.decimal(0.5), t.date(moment), t.datetime(moment)
        _ = t.direction
