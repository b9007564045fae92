"""Which language a request gets: the ``lang`` cookie (set by the picker on every page), else the
best match in ``Accept-Language``, else ``Settings.default_language``. The catalogs and the
:class:`Formatter` are in :mod:`coalition.i18n`, shared with the generated reports.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from coalition.i18n import LANGUAGES, LOCALE_DIR, Formatter, translations

__all__ = ["LANGUAGES", "LANGUAGE_COOKIE", "LOCALE_DIR", "Formatter", "choose_language", "formatter", "translations"]

LANGUAGE_COOKIE = "lang"


def choose_language(conn: HTTPConnection, default: str = "en") -> str:
    chosen = conn.cookies.get(LANGUAGE_COOKIE, "")
    if chosen in LANGUAGES:
        return chosen
    best: tuple[float, int, str] | None = None
    for position, part in enumerate(conn.headers.get("accept-language", "").split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        code = tag.strip().lower().split("-")[0]
        if code == "iw":  # the old code for Hebrew
            code = "he"
        if code not in LANGUAGES:
            continue
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        if quality > 0 and (best is None or (quality, -position) > (best[0], best[1])):
            best = (quality, -position, code)
    if best is not None:
        return best[2]
    return default if default in LANGUAGES else "en"


def formatter(conn: HTTPConnection) -> Formatter:
    """The request's words and number forms: its language (:func:`choose_language`), the network's money."""
    settings = conn.app.state.services.settings
    return Formatter(choose_language(conn, settings.default_language), settings.currency, settings.currency_exponent)
