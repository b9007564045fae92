"""Reading a member import file: streamed, line by line, with every problem tied to its line.

The file is UTF-8 CSV (a BOM is allowed) with a header row. Columns, in any order::

    external_id   required: the customer's id in the previous program (at most 128 characters)
    type          member (the default) or earn
    email, phone  member rows: contact data (encrypted at rest, blind-indexed, like enrollment)
    balance       member rows: the opening balance, points, an integer >= 0 (default 0)
    points        earn rows: points the customer earned then, an integer > 0
    amount_minor  earn rows: the purchase amount in minor units (optional, >= 0)
    date          member rows: when the balance was struck (optional); earn rows: the
                  original date (required). ISO 8601, e.g. 2024-05-01 or 2024-05-01T09:30:00Z
                  (no zone: UTC); never in the future. It becomes the entry's ``effective_at``.
    reference     optional free text (at most 128 characters)

An ``earn`` row belongs to the ``member`` row with the same external_id, anywhere in the
file. A member's balance after the import is its opening balance plus its earn rows.

The reader never holds the file: it reads one physical line at a time (at most
``max_line_bytes``), decodes it strictly, and hands complete CSV records on. What it keeps
per record for the whole-file checks (duplicate external ids and contacts, earn rows
whose member is missing) is 8-byte digests in ``array('q')`` — 16 bytes a record with its
line number, bounded by ``max_rows``.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import re
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, NamedTuple

import numpy as np

from coalition.errors import InvalidInput
from coalition.members.service import EMAIL, normalize_email, normalize_phone
from coalition.text import describe_character, unsafe_character

COLUMNS = ("external_id", "type", "email", "phone", "balance", "points", "amount_minor", "date", "reference")
MEMBER, EARN = "member", "earn"
MAX_EXTERNAL_ID = 128
MAX_REFERENCE = 128
MAX_POINTS = 10**12  # a bound on any one figure: a typo of ten digits is an error, not a balance


@dataclass(frozen=True)
class RowError:
    line: int
    column: str
    code: str
    message: str


class Record(NamedTuple):
    """One valid CSV record (a tuple: cheap to make 40,000 of, and to spool)."""

    line: int
    type: str
    external_id: str
    email: str | None = None
    phone: str | None = None
    points: int = 0  # member: opening balance; earn: points
    amount_minor: int | None = None
    date: dt.datetime | None = None
    reference: str | None = None
    email_index: str | None = None  # the blind indexes, once the contact check computed them
    phone_index: str | None = None


@dataclass
class Limits:
    max_bytes: int
    max_line_bytes: int
    max_rows: int
    max_errors: int = 1000


@dataclass
class Scan:
    """What one pass over the file found."""

    sha256: str = ""
    bytes_read: int = 0
    members: int = 0
    earns: int = 0
    opening_points: int = 0
    history_points: int = 0
    first_external_id: str | None = None
    entries: int = 0
    errors: list[RowError] = field(default_factory=list)
    error_count: int = 0
    fatal: bool = False  # a problem that stops reading (header, encoding of the header, size)

    @property
    def postings(self) -> int:
        """Two postings a ledger entry: one entry per member with a balance, one per earn row."""
        return 2 * self.entries


class Fatal(Exception):
    """A file-level problem: reading stops."""

    def __init__(self, error: RowError) -> None:
        super().__init__(error.message)
        self.error = error


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big", signed=True)


_PHONE_NOISE = re.compile(r"[\s.\-()]")  # normalize_phone's, compiled once
_PHONE = re.compile(r"\+?[0-9]{7,15}")


def _parse_date(text: str, now: dt.datetime) -> dt.datetime | str:
    """A stripped, non-empty date as UTC, or the error code: INVALID_DATE, FUTURE_DATE."""
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00")) if "T" in text or " " in text else (
            dt.datetime.combine(dt.date.fromisoformat(text), dt.time()))
    except ValueError:
        return "INVALID_DATE"
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    value = value.astimezone(dt.UTC)
    return "FUTURE_DATE" if value > now else value


class ImportReader:
    """Reads ``stream`` once; :meth:`records` yields valid records, :attr:`scan` collects the rest."""

    def __init__(self, stream: BinaryIO, limits: Limits, *, now: dt.datetime, check_whole_file: bool = True,
                 fast: bool = True) -> None:
        self.stream = stream
        self.fast = fast  # False: every row through the full checks (tests compare the two)
        self.limits = limits
        self.now = now
        self.scan = Scan()
        self.check_whole_file = check_whole_file
        self._sha = hashlib.sha256()
        self._bad_lines: set[int] = set()
        self._line = 0
        # whole-file checks: digests and the lines they came from
        self._member_ids, self._member_lines = array("q"), array("q")
        self._earn_ids, self._earn_lines, self._earn_points = array("q"), array("q"), array("q")
        self._contacts, self._contact_lines, self._contact_columns = array("q"), array("q"), array("b")

    def error(self, line: int, column: str, code: str, message: str) -> None:
        self.scan.error_count += 1
        if len(self.scan.errors) < self.limits.max_errors:
            self.scan.errors.append(RowError(line, column, code, message))

    # --- physical lines ------------------------------------------------------------------

    def _lines(self) -> Iterator[str]:
        limit = self.limits.max_line_bytes
        while True:
            raw = self.stream.readline(limit + 1)
            if not raw:
                return
            self._line += 1
            self.scan.bytes_read += len(raw)
            self._sha.update(raw)
            if self.scan.bytes_read > self.limits.max_bytes:
                raise Fatal(RowError(self._line, "", "FILE_TOO_LARGE",
                                     f"the file is larger than {self.limits.max_bytes:,} bytes: split it"))
            if len(raw) > limit and not raw.endswith(b"\n"):
                raise Fatal(RowError(self._line, "", "LINE_TOO_LONG",
                                     f"line {self._line} is longer than {limit:,} bytes: is this a CSV file?"))
            if self._line == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                if self._line == 1:
                    raise Fatal(RowError(1, "", "INVALID_ENCODING",
                                         f"the header is not UTF-8 (byte {exc.start + 1}): save the file as "
                                         "UTF-8 CSV")) from None
                self._bad_lines.add(self._line)
                self.error(self._line, "", "INVALID_ENCODING",
                           f"byte {exc.start + 1} of the line is not UTF-8: save the file as UTF-8 CSV")
                text = raw.decode("utf-8", errors="replace")
            yield text

    # --- records -------------------------------------------------------------------------

    def records(self) -> Iterator[Record]:
        try:
            yield from self._records()
        except Fatal as fatal:
            self.scan.fatal = True
            self.error(fatal.error.line, fatal.error.column, fatal.error.code, fatal.error.message)
        except csv.Error as exc:
            self.scan.fatal = True
            self.error(self._line, "", "MALFORMED_CSV", f"the CSV cannot be read past this line: {exc}")
        self.scan.sha256 = self._sha.hexdigest()
        if not self.scan.fatal and self.check_whole_file:
            self._whole_file_checks()

    def _records(self) -> Iterator[Record]:
        reader = csv.reader(self._lines(), strict=True)
        header = next(reader, None)
        if header is None:
            raise Fatal(RowError(1, "", "EMPTY_FILE", "the file is empty: it needs a header row"))
        columns = [name.strip().lower() for name in header]
        problems = [(name, "UNKNOWN_COLUMN", f"unknown column {name[:40]!r}: the columns are {', '.join(COLUMNS)}")
                    for name in columns if name not in COLUMNS]
        problems += [(name, "DUPLICATE_COLUMN", f"column {name!r} appears twice")
                     for i, name in enumerate(columns) if name in columns[:i] and name in COLUMNS]
        if "external_id" not in columns:
            problems.append(("external_id", "MISSING_COLUMN", "the header has no external_id column"))
        if problems:
            for name, code, message in problems:
                self.error(1, name, code, message)
            raise Fatal(RowError(1, "", "INVALID_HEADER", "fix the header row; nothing was read past it"))
        rows = 0
        start = self._line + 1
        fast = self._fast_path(columns) if self.fast else None
        max_rows, bad_lines = self.limits.max_rows, self._bad_lines
        for values in reader:
            line, start = start, self._line + 1
            if not "".join(values).strip():
                continue  # blank lines are allowed (a trailing newline, a spreadsheet's empty rows)
            rows += 1
            if rows > max_rows:
                raise Fatal(RowError(line, "", "TOO_MANY_ROWS",
                                     f"more than {self.limits.max_rows:,} rows: split the file"))
            if bad_lines and any(n in bad_lines for n in range(line, start)):
                continue  # reported as INVALID_ENCODING
            if len(values) != len(columns):
                self.error(line, "", "WRONG_FIELD_COUNT",
                           f"{len(values)} fields, the header has {len(columns)}")
                continue
            record = fast(line, values) if fast is not None else None
            if record is None:  # not plainly valid (or no fast path): the full checks, with their messages
                record = self._record(line, dict(zip(columns, values, strict=True)))
            if record is not None:
                yield record

    def _fast_path(self, columns: list[str]) -> Callable[[int, list[str]], Record | None]:
        """A check for rows that are plainly valid: the same rules as :meth:`_record`, without
        a dict, a call or an error message per field. It answers None at the first doubt
        (a non-ASCII or unprintable character, a sign, a field out of place...), and the row
        goes through :meth:`_record`, which says what is wrong. tests/portability proves the
        two accept the same rows with the same values."""
        at = {name: columns.index(name) if name in columns else -1 for name in COLUMNS}
        i_type, i_id, i_email, i_phone = at["type"], at["external_id"], at["email"], at["phone"]
        i_balance, i_points, i_amount, i_date, i_reference = (at["balance"], at["points"], at["amount_minor"],
                                                              at["date"], at["reference"])
        dates: dict[str, dt.datetime] = {}
        now, accept = self.now, self._accept

        def field(values: list[str], i: int) -> str:
            return values[i].strip() if i >= 0 else ""

        def whole(text: str, minimum: int) -> int | None:
            if not text.isdigit() or len(text) > 13:  # ASCII here (the row is); 13 digits: MAX_POINTS
                return None
            value = int(text)
            return value if minimum <= value <= MAX_POINTS else None

        def check(line: int, values: list[str]) -> Record | None:
            joined = "".join(values)
            if not (joined.isascii() and joined.isprintable()):
                return None
            kind = field(values, i_type).lower() or MEMBER
            external_id = values[i_id].strip()
            if not external_id or len(external_id) > MAX_EXTERNAL_ID:
                return None
            reference = field(values, i_reference) or None
            if reference is not None and len(reference) > MAX_REFERENCE:
                return None
            text = field(values, i_date)
            date = None
            if text:
                date = dates.get(text)
                if date is None:
                    parsed = _parse_date(text, now)
                    if not isinstance(parsed, dt.datetime):
                        return None
                    if len(dates) >= 4096:
                        dates.clear()
                    date = dates[text] = parsed
            if kind == EARN:
                if date is None or field(values, i_email) or field(values, i_phone) or field(values, i_balance):
                    return None
                points = whole(field(values, i_points), 1)
                if points is None:
                    return None
                raw_amount = field(values, i_amount)
                amount = whole(raw_amount, 0) if raw_amount else None
                if raw_amount and amount is None:
                    return None
                return accept(line, EARN, external_id, None, None, points, amount, date, reference)
            if kind != MEMBER or field(values, i_points) or field(values, i_amount):
                return None
            raw_balance = field(values, i_balance)
            balance = whole(raw_balance, 0) if raw_balance else 0
            if balance is None:
                return None
            email = phone = None
            raw_email, raw_phone = field(values, i_email), field(values, i_phone)
            if raw_email:
                email = raw_email.lower()
                if len(email) > 254 or not EMAIL.match(email):
                    return None
            if raw_phone:
                compact = _PHONE_NOISE.sub("", raw_phone)
                if not _PHONE.fullmatch(compact):
                    return None
                phone = compact if compact.startswith("+") else "+" + compact
            return accept(line, MEMBER, external_id, email, phone, balance, None, date, reference)

        return check

    def _record(self, line: int, row: dict[str, str]) -> Record | None:
        before = self.scan.error_count
        for name, value in row.items():
            bad = unsafe_character(value)
            if bad is not None:
                self.error(line, name, "UNSAFE_CHARACTER", f"{name} contains {describe_character(bad)} (a control "
                           "character or a bidi override)")
        if self.scan.error_count != before:
            return None
        kind = (row.get("type") or "").strip().lower() or MEMBER
        external_id = row["external_id"].strip()
        if kind not in (MEMBER, EARN):
            self.error(line, "type", "INVALID_TYPE", f"type is {kind[:20]!r}: member or earn")
        if not external_id or len(external_id) > MAX_EXTERNAL_ID:
            self.error(line, "external_id", "INVALID_EXTERNAL_ID",
                       f"external_id must be 1 to {MAX_EXTERNAL_ID} characters")
        reference = (row.get("reference") or "").strip() or None
        if reference is not None and len(reference) > MAX_REFERENCE:
            self.error(line, "reference", "INVALID_REFERENCE", f"reference is longer than {MAX_REFERENCE} characters")
        date = self._date(line, row.get("date"), required=kind == EARN)
        email = phone = None
        amount = None
        if kind == EARN:
            points = self._integer(line, row, "points", minimum=1, required=True)
            amount = self._integer(line, row, "amount_minor", minimum=0, required=False)
            for name in ("email", "phone", "balance"):
                if (row.get(name) or "").strip():
                    self.error(line, name, "NOT_FOR_EARN_ROWS", f"{name} belongs on the member row, not an earn row")
        else:
            points = self._integer(line, row, "balance", minimum=0, required=False, negative="NEGATIVE_BALANCE") or 0
            for name in ("points", "amount_minor"):
                if (row.get(name) or "").strip():
                    self.error(line, name, "NOT_FOR_MEMBER_ROWS", f"{name} belongs on an earn row")
            email, phone = self._contact(line, row)
        if self.scan.error_count != before:
            return None
        return self._accept(line, kind, external_id, email, phone, points or 0, amount, date, reference)

    def _accept(self, line: int, kind: str, external_id: str, email: str | None, phone: str | None, points: int,
                amount: int | None, date: dt.datetime | None, reference: str | None) -> Record:
        """Count a valid record and remember it for the whole-file checks."""
        self._remember(line, kind, external_id, email, phone, points)
        if kind == MEMBER:
            self.scan.members += 1
            self.scan.opening_points += points or 0
            self.scan.entries += 1 if points else 0
            if self.scan.first_external_id is None:
                self.scan.first_external_id = external_id
        else:
            self.scan.earns += 1
            self.scan.history_points += points or 0
            self.scan.entries += 1
        return Record(line, kind, external_id, email, phone, points, amount, date, reference)

    def _integer(self, line: int, row: dict[str, str], name: str, *, minimum: int, required: bool,
                 negative: str | None = None) -> int | None:
        raw = (row.get(name) or "").strip()
        if not raw:
            if required:
                self.error(line, name, "MISSING_VALUE", f"{name} is required on this row")
            return None
        if not raw.lstrip("-").isascii() or not raw.lstrip("-").isdigit() or raw.count("-") > 1:
            self.error(line, name, "INVALID_NUMBER", f"{name} is not a whole number ({raw[:20]!r})")
            return None
        if len(raw) > 100:  # beyond any figure, and int() refuses 4,300 digits
            self.error(line, name, "OUT_OF_RANGE", f"{name} has {len(raw):,} digits: it must be at most "
                       f"{MAX_POINTS:,}")
            return None
        value = int(raw)
        if value < 0 and negative:
            self.error(line, name, negative, f"{name} is negative ({value}): a balance cannot be below 0")
            return None
        if value < minimum or value > MAX_POINTS:
            self.error(line, name, "OUT_OF_RANGE", f"{name} is {value}: it must be {minimum} to {MAX_POINTS:,}")
            return None
        return value

    def _date(self, line: int, raw: str | None, *, required: bool) -> dt.datetime | None:
        text = (raw or "").strip()
        if not text:
            if required:
                self.error(line, "date", "MISSING_VALUE", "an earn row needs its original date")
            return None
        value = _parse_date(text, self.now)
        if value == "INVALID_DATE":
            self.error(line, "date", "INVALID_DATE", f"date {text[:30]!r} is not ISO 8601 (2024-05-01 or "
                       "2024-05-01T09:30:00Z)")
            return None
        if value == "FUTURE_DATE":
            self.error(line, "date", "FUTURE_DATE", f"date {text[:30]} is in the future")
            return None
        assert isinstance(value, dt.datetime)
        return value

    def _contact(self, line: int, row: dict[str, str]) -> tuple[str | None, str | None]:
        email = phone = None
        try:
            email = normalize_email(row.get("email"))
        except InvalidInput as exc:
            self.error(line, "email", exc.code, exc.message)
        try:
            phone = normalize_phone(row.get("phone"))
        except InvalidInput as exc:
            self.error(line, "phone", exc.code, exc.message)
        return email, phone

    # --- whole-file checks ---------------------------------------------------------------

    def _remember(self, line: int, kind: str, external_id: str, email: str | None, phone: str | None,
                  points: int) -> None:
        if not self.check_whole_file:
            return
        if kind == MEMBER:
            self._member_ids.append(_digest(external_id))
            self._member_lines.append(line)
            for column, value in ((0, email), (1, phone)):
                if value:
                    self._contacts.append(_digest(f"{column}:{value}"))
                    self._contact_lines.append(line)
                    self._contact_columns.append(column)
        else:
            self._earn_ids.append(_digest(external_id))
            self._earn_lines.append(line)
            self._earn_points.append(points)

    def _whole_file_checks(self) -> None:
        found: list[RowError] = []
        ids, lines = np.frombuffer(self._member_ids, dtype=np.int64), np.frombuffer(self._member_lines, dtype=np.int64)
        for line in _repeats(ids, lines):
            found.append(RowError(line, "external_id", "DUPLICATE_EXTERNAL_ID",
                                  "this external_id already has a member row above"))
        contacts = np.frombuffer(self._contacts, dtype=np.int64)
        contact_lines = np.frombuffer(self._contact_lines, dtype=np.int64)
        columns = np.frombuffer(self._contact_columns, dtype=np.int8)
        order = np.lexsort((contact_lines, contacts))
        for i in order[_repeated(contacts[order])].tolist():
            name = "email" if columns[i] == 0 else "phone"
            found.append(RowError(int(contact_lines[i]), name, "DUPLICATE_CONTACT",
                                  f"this {name} is on another member row above"))
        earn_ids = np.frombuffer(self._earn_ids, dtype=np.int64)
        orphans = ~np.isin(earn_ids, ids)
        for line in np.frombuffer(self._earn_lines, dtype=np.int64)[orphans].tolist():
            found.append(RowError(int(line), "external_id", "UNKNOWN_MEMBER",
                                  "no member row in the file has this external_id"))
        for problem in sorted(found, key=lambda e: e.line):
            self.error(problem.line, problem.column, problem.code, problem.message)


    def members(self) -> MemberIndex:
        """The valid file's members, for the load: each one's history points, and (filled as
        they are written) its id; earn rows find their member's by its external id's digest."""
        digests = np.frombuffer(self._member_ids, dtype=np.int64)
        order = np.argsort(digests, kind="stable")
        ordered = digests[order]
        earn_ids = np.frombuffer(self._earn_ids, dtype=np.int64)
        earned = np.zeros(len(digests), dtype=np.int64)
        if len(earn_ids):  # validation saw every earn row's member (UNKNOWN_MEMBER otherwise)
            np.add.at(earned, order[np.searchsorted(ordered, earn_ids)],
                      np.frombuffer(self._earn_points, dtype=np.int64))
        return MemberIndex(ordered, order, earned)


class MemberIndex:
    """Per member row, in file order: its earn rows' points (``earned``) and its id (``ids``).

    32 bytes a member (its digest, its rank, two figures), bounded by ``max_rows`` like the
    whole-file checks: what lets the load write each member once with its final balance and
    give earn rows their member's id without asking the database.
    """

    def __init__(self, ordered: np.ndarray, order: np.ndarray, earned: np.ndarray) -> None:
        self.ordered, self.order, self.earned = ordered, order, earned
        self.ids = np.zeros(len(order), dtype=np.int64)

    def member_ids(self, external_ids: list[str]) -> list[int]:
        digests = np.fromiter((_digest(e) for e in external_ids), dtype=np.int64, count=len(external_ids))
        return self.ids[self.order[np.searchsorted(self.ordered, digests)]].tolist()  # type: ignore[no-any-return]


def _repeats(values: np.ndarray, lines: np.ndarray) -> list[int]:
    """The lines whose value appeared on an earlier line."""
    order = np.lexsort((lines, values))
    return [int(x) for x in np.sort(lines[order][_repeated(values[order])]).tolist()]


def _repeated(ordered: np.ndarray) -> np.ndarray:
    """For sorted values: True where a value equals the one before it."""
    mask = np.zeros(len(ordered), dtype=bool)
    mask[1:] = ordered[1:] == ordered[:-1]
    return mask
