"""Reading the programs, till and policy forms, and saying what was wrong in the reader's language.

A form field is text; the services take typed values and check their bounds. These helpers turn
text into the type (or refuse with the service's own error code, before anything is written),
and :func:`problem` turns a refusal's code into a sentence for the page. A code without a
sentence here shows the service's English message: better than nothing, and a test lists the
codes the pages can show (``tests/web/test_program_pages.py``).
"""

from __future__ import annotations

import datetime as dt
from datetime import tzinfo

from starlette.datastructures import FormData

from coalition.errors import DomainError, InvalidInput
from coalition.web.i18n import Formatter

MAX_DIGITS = 12


def text(form: FormData, name: str, limit: int = 200) -> str:
    return str(form.get(name, ""))[:limit].strip()


def whole(form: FormData, name: str, field: str, code: str) -> int | None:
    """A whole number typed in ``name`` (empty: None); anything else is refused with ``code``."""
    raw = text(form, name, 40).replace(" ", "").replace("\u00a0", "")
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= MAX_DIGITS):
        raise InvalidInput(f"{field} must be a whole number", code=code, field=field)
    return int(raw)


def required_whole(form: FormData, name: str, field: str, code: str) -> int:
    value = whole(form, name, field, code)
    if value is None:
        raise InvalidInput(f"{field} is required", code=code, field=field)
    return value


def day(form: FormData, name: str, field: str, code: str) -> dt.date | None:
    """A date from ``<input type=date>`` (YYYY-MM-DD; empty: None)."""
    raw = text(form, name, 20)
    if not raw:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(f"{field} must be a date (YYYY-MM-DD)", code=code, field=field) from None


def day_start(value: dt.date, zone: tzinfo) -> dt.datetime:
    """Midnight at the start of ``value`` on the clock of ``zone`` (the network policy's, named next to
    the input), as UTC: "from 1 June" in Copenhagen starts at 31 May 22:00 UTC in summer."""
    # Wall time first, then the offset that wall time has: a day next to a DST change keeps its midnight.
    return dt.datetime.combine(value, dt.time.min, tzinfo=zone).astimezone(dt.UTC)


def day_end(value: dt.date, zone: tzinfo) -> dt.datetime:
    """Midnight after ``value`` in ``zone``, as UTC: a period "until 31 May" includes the 31st.
    (The next day's midnight, not 24 hours on: the day a clock changes has 23 or 25 hours.)"""
    return day_start(value + dt.timedelta(days=1), zone)


def problem(t: Formatter, error: DomainError, overrides: dict[str, str] | None = None) -> str:
    """What was wrong, in the reader's language (the service's message when no sentence is written here).

    ``overrides``: the sentence for a code that means something else on this form (``INVALID_PERIOD``
    is a campaign's dates on one page and the settlement period on another)."""
    _ = t.gettext
    sentences = {
        "INVALID_NAME": _("Give it a name (up to 100 characters)."),
        "INVALID_POINTS": _("Points are a whole number above zero."),
        "INVALID_STOCK": _("Stock is a whole number from 1 to 1,000,000, or empty for unlimited."),
        "INVALID_VALIDITY": _("Check the dates: the end must be in the future and after the start; vouchers stay "
                              "valid 1 to 3,650 days."),
        "INVALID_DATE": _("Dates are written as year-month-day."),
        "INVALID_STAMPS": _("Stamps needed is a whole number from 1 to 100."),
        "INVALID_AMOUNT": _("The amount must be positive, to the cent."),
        "REWARD_NOT_FOUND": _("Choose one of your own rewards."),
        "INVALID_KIND": _("Choose a multiplier or a bonus."),
        "INVALID_MULTIPLIER": _("The multiplier is a whole percent from 101 to 1,000 (200 doubles the points)."),
        "INVALID_BONUS_POINTS": _("Bonus points are a whole number from 1 to 100,000."),
        "INVALID_SEGMENT": _("Choose a group of members from the list."),
        "INVALID_CONTROL_PERCENT": _("The control group is a whole percent from 0 to 90."),
        "INVALID_PERIOD": _("Check the dates: the campaign must end after it starts, in the future, and run at "
                            "most 366 days."),
        "OVERLAPPING_CAMPAIGN": _("Another campaign already runs for these members in that period."),
        "SEGMENT_NOT_ANALYZED": _("Your members have not been grouped yet. Target every member, or try again "
                                  "after the next analysis."),
        "MERCHANT_SUSPENDED": _("Your shop is suspended: contact the network."),
        "INVALID_VOUCHER_CODE": _("That is not a voucher code (10 letters and digits, e.g. 7KQ2M-4XW9P)."),
        "VOUCHER_NOT_FOUND": _("No voucher of your rewards has that code."),
        "VOUCHER_ALREADY_USED": _("That voucher was used already."),
        "VOUCHER_EXPIRED": _("That voucher has expired."),
        "VOUCHER_CANCELLED": _("That voucher was cancelled (its purchase was refunded)."),
        "REWARD_INACTIVE": _("That reward is not available now."),
        "OUT_OF_STOCK": _("That reward is out of stock."),
        "INSUFFICIENT_POINTS": _("The member does not have enough points."),
        "MEMBER_PROOF_REQUIRED": _("Ask for the code on the member's phone and type it in."),
        "MEMBER_NOT_FOUND": _("No member matches. Check the loyalty ID, e-mail or phone number."),
        "INVALID_POINT_VALUE": _("The point value is a whole number of cents from 0 to 1,000,000."),
        "INVALID_FUNDING_MODEL": _("Choose who funds the points: the issuing shop or the redeeming shop."),
        "INVALID_REIMBURSEMENT_RATE": _("The reimbursement rate is a decimal from 0 to 1, e.g. 0.90."),
        "INVALID_BREAKAGE_SHARE": _("The breakage share is a decimal from 0 to 1, e.g. 0.5."),
        "INVALID_TIMEZONE": _("The time zone is a name such as Europe/Copenhagen."),
        "INVALID_EFFECTIVE_FROM": _("The policy can only start now or later, after the last settled period."),
        "INVALID_REDEEM_WITHOUT_PROOF_POINTS": _("Points without the member's code is a whole number, 0 or more."),
        "INVALID_TIERS": _("List 1 to 10 tiers, lowest first."),
        "INVALID_TIER_NAME": _("Tier names are capital letters, digits or _, starting with a letter (e.g. GOLD), "
                               "each once."),
        "INVALID_THRESHOLD": _("Thresholds start at 0 for the first tier and rise from one tier to the next."),
        "INVALID_WINDOW": _("The window is rolling (1 to 36 months) or the calendar year."),
        "INVALID_GRACE_DAYS": _("Grace days are a whole number from 0 to 366."),
        "INVALID_BONUS_FUNDER": _("Choose who pays for the tier bonus: the shop or the network."),
    }
    sentences.update(overrides or {})
    return sentences.get(error.code, error.message)
