"""Every string the pages show has a real translation in every catalog, and formats follow the locale."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from starlette.requests import Request

from coalition.money import format_money_locale
from coalition.web.i18n import LANGUAGES, LOCALE_DIR, Formatter, choose_language, translations

SAME_WORD = {"Bonus", "Status", "E-mail", "Score", "score", "Type"}  # the same word in Danish or Swedish
WEB = Path(__file__).parents[2] / "coalition" / "web"
SETTLEMENT = WEB.parent / "settlement"  # the generated reports and statements
MESSAGE = re.compile(r'''(?:\b_|gettext)\(\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')((?:\s*"(?:[^"\\]|\\.)*")*)''')


def page_messages() -> set[str]:
    found = set()
    for path in [*WEB.rglob("*.html"), *WEB.glob("*.py"), *SETTLEMENT.glob("*.py"), WEB.parent / "i18n.py"]:
        for match in MESSAGE.finditer(path.read_text()):
            found.add("".join(eval(part) for part in re.findall(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'',
                                                                    match.group(0))))
    return found


@pytest.mark.parametrize("lang", [lang for lang in LANGUAGES if lang != "en"])
def test_every_message_is_translated(lang: str) -> None:
    assert (LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po").exists()
    catalog = translations(lang)
    messages = page_messages()
    assert len(messages) > 150
    untranslated = sorted(m for m in messages if catalog.gettext(m) == m and m not in SAME_WORD)
    assert untranslated == []
    # placeholders survive translation
    broken = [m for m in messages if set(re.findall(r"{\w+}", m)) != set(re.findall(r"{\w+}", catalog.gettext(m)))]
    assert broken == []


PLURAL = re.compile(r'''ngettext\(\s*"((?:[^"\\]|\\.)*)",\s*"((?:[^"\\]|\\.)*)"''')


def plural_messages() -> set[tuple[str, str]]:
    return {(one, many) for path in [*WEB.rglob("*.html"), *WEB.glob("*.py"), *SETTLEMENT.glob("*.py")]
            for one, many in PLURAL.findall(path.read_text())}


@pytest.mark.parametrize("lang", [lang for lang in LANGUAGES if lang != "en"])
def test_every_count_is_translated_in_each_plural_form(lang: str) -> None:
    catalog = translations(lang)
    plurals = plural_messages()
    assert ("{n} merchant", "{n} merchants") in plurals
    for one, many in plurals:
        for n in (0, 1, 2, 5, 11, 21):  # every form of Danish, Swedish, Latvian and Hebrew
            said = catalog.ngettext(one, many, n)
            assert said not in (one, many), (one, n)
            assert "{n}" in said, (one, n)


def test_counts_agree_with_their_number() -> None:
    assert Formatter("en", "EUR", 2).ngettext("{n} merchant", "{n} merchants", 1) == "1 merchant"
    assert Formatter("lv", "EUR", 2).ngettext("{n} merchant", "{n} merchants", 21) == "21 tirgotājs"
    assert Formatter("lv", "EUR", 2).ngettext("{n} merchant", "{n} merchants", 12) == "12 tirgotāju"
    assert Formatter("he", "EUR", 2).ngettext("{n} customer", "{n} customers", 2) == "2 לקוחות"
    assert Formatter("da", "EUR", 2).ngettext("{n} member", "{n} members", 1_000) == "1.000 medlemmer"


def request(headers: dict[str, str]) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "headers": [
        (k.lower().encode(), v.encode()) for k, v in headers.items()]})


@pytest.mark.parametrize(("header", "cookie", "expected"), [
    ("da-DK,da;q=0.9,en;q=0.8", None, "da"),
    ("fr-FR,sv;q=0.5,lv;q=0.7", None, "lv"),
    ("iw", None, "he"),
    ("fr", None, "en"),
    ("da", "he", "he"),
    ("sv;q=bad, da;q=0.1", None, "da"),
    ("", "xx", "en"),
])
def test_language_from_the_cookie_then_accept_language(header: str, cookie: str | None, expected: str) -> None:
    headers = {"accept-language": header}
    if cookie:
        headers["cookie"] = f"lang={cookie}"
    assert choose_language(request(headers)) == expected


def test_money_dates_and_direction_per_locale() -> None:
    assert format_money_locale(3799, 2, "EUR", "en") == "€37.99"
    assert format_money_locale(3799, 2, "EUR", "da") == "37,99\xa0€"
    assert format_money_locale(-123456789, 2, "EUR", "sv") == "-1\xa0234\xa0567,89\xa0€"
    assert format_money_locale(5, 0, "JPY", "en") == "¥5"
    assert format_money_locale(12345, 3, "EUR", "en") == "€12.345"  # an exponent other than ISO's keeps its digits
    with pytest.raises(TypeError):
        format_money_locale(37.99, 2, "EUR", "en")  # type: ignore[arg-type]
    assert Formatter("he", "EUR", 2).direction == "rtl"
    assert Formatter("lv", "EUR", 2).direction == "ltr"
    assert Formatter("da", "EUR", 2).number(1234567) == "1.234.567"
    # a minus sign marked left to right, so that a right-to-left page shows "-5", not "5-"
    assert Formatter("he", "EUR", 2).number(-5) == "\u200e-5" and Formatter("he", "EUR", 2).number(5) == "5"
    assert Formatter("he", "EUR", 2).percent(-0.25) == "\u200e-25.0%"
    assert Formatter("lv", "EUR", 2).number(-5) == "-5"
