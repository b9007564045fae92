"""reconcilePosExport: a merchant's POS export against its own ledger entries (reads only)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import graphene

from coalition.auth.models import Role
from coalition.errors import DomainError
from coalition.graphql.context import ResolveInfo
from coalition.graphql.core.mutations import Access, BaseMutation
from coalition.graphql.core.scalars import BigInt
from coalition.graphql.core.types import UserError, decode_input_id
from coalition.graphql.errors import Forbidden
from coalition.graphql.ledger.types import Transaction, TransactionKind
from coalition.graphql.partners.types import Merchant
from coalition.settlement.reconcile import DEFAULT_TOLERANCE, Line, Report, Status, reconcile_pos_export

ReconciliationStatus = graphene.Enum.from_enum(Status, description="How a POS line and the ledger compare.")


class ReconciliationField(graphene.Enum):  # type: ignore[misc]
    """A field that differs between a POS line and its ledger transaction."""

    POINTS = "points"
    AMOUNT = "amount"
    TIME = "time"


class ReconciliationMatch(graphene.Enum):  # type: ignore[misc]
    """How a POS line found its ledger transaction."""

    REFERENCE = "reference"
    TIME_AND_POINTS = "time_and_points"


class LineView:
    """A result line with ReconciliationLine's field names (graphene reads attributes)."""

    def __init__(self, line: Line) -> None:
        row, entry = line.row, line.entry
        self.entry_id = entry.entry_id if entry else None
        self.status = line.status
        self.line = row.line if row else None
        self.reference = row.reference if row and row.reference else entry.reference if entry else None
        self.pos_time = row.time if row else None
        self.pos_amount_minor = row.amount_minor if row else None
        self.pos_points = row.points if row else None
        self.kind = entry.kind if entry else None
        self.ledger_time = entry.time if entry else None
        self.ledger_amount_minor = entry.amount_minor if entry else None
        self.ledger_points = entry.points if entry else None
        self.reversed = bool(entry and entry.reversed)
        self.differences = list(line.differences)
        self.matched_by = line.matched_by


class ReconciliationLine(graphene.ObjectType):  # type: ignore[misc]
    """A line of the POS file, a ledger transaction, or both paired up."""

    status = graphene.Field(ReconciliationStatus, required=True, description="Matched, mismatched or missing.")
    line = graphene.Int(description="Line number in the CSV file (the header is line 1); null: only in the ledger.")
    reference = graphene.String(description="The receipt reference (the file's, else the ledger's).")
    pos_time = graphene.DateTime(description="The time in the POS file.")
    pos_amount_minor = graphene.Field(BigInt, description="The purchase amount in the POS file (earn lines).")
    pos_points = graphene.Int(description="Points in the POS file: + earned, - redeemed.")
    transaction = graphene.Field(Transaction, description="The ledger transaction; null: missing in Coalition.")
    kind = graphene.Field(TransactionKind, description="The ledger transaction's kind: EARN, REDEEM or CAPTURE.")
    ledger_time = graphene.DateTime(description="When the ledger recorded it.")
    ledger_amount_minor = graphene.Field(BigInt, description="The purchase amount in the ledger (earns).")
    ledger_points = graphene.Int(description="Points in the ledger, signed like the file (a capture: honored points).")
    reversed = graphene.Boolean(required=True, description="The ledger transaction has since been reversed.")
    differences = graphene.List(graphene.NonNull(ReconciliationField), required=True,
                                description="For MISMATCHED: the fields that differ.")
    matched_by = graphene.Field(ReconciliationMatch, description="How the pair was found.")

    @staticmethod
    async def resolve_transaction(root: LineView, info: ResolveInfo) -> Any:
        return None if root.entry_id is None else await Transaction.fetch(info, root.entry_id)


class ReconciliationTotals(graphene.ObjectType):  # type: ignore[misc]
    """Sums over the lines of one status, each side separately."""

    count = graphene.Int(required=True, description="How many lines.")
    pos_points = graphene.Field(BigInt, required=True, description="Points in the POS file.")
    pos_amount_minor = graphene.Field(BigInt, required=True, description="Purchase amounts in the POS file.")
    ledger_points = graphene.Field(BigInt, required=True, description="Points in the ledger.")
    ledger_amount_minor = graphene.Field(BigInt, required=True, description="Purchase amounts in the ledger.")


class ReconciliationTotalsByStatus(graphene.ObjectType):  # type: ignore[misc]
    """Totals per status."""

    matched = graphene.Field(ReconciliationTotals, required=True, description="Lines that agree.")
    mismatched = graphene.Field(ReconciliationTotals, required=True, description="Pairs that differ.")
    missing_in_coalition = graphene.Field(ReconciliationTotals, required=True,
                                          description="POS lines with no ledger transaction.")
    missing_in_pos = graphene.Field(ReconciliationTotals, required=True,
                                    description="Ledger transactions in the window that the file lacks.")


class CsvRowError(graphene.ObjectType):  # type: ignore[misc]
    """A line of the file that could not be read; the other lines still count."""

    line = graphene.Int(required=True, description="Line number in the file (the header is line 1).")
    column = graphene.String(description="The column at fault, when one is.")
    code = graphene.String(required=True, description="INVALID_TIME, INVALID_POINTS, INVALID_AMOUNT, ...")
    message = graphene.String(required=True, description="What is wrong with the line.")


class ReconciliationReport(graphene.ObjectType):  # type: ignore[misc]
    """A POS export compared with the merchant's ledger. Nothing was written."""

    merchant = graphene.Field(Merchant, required=True, description="Whose ledger was compared.")
    from_ = graphene.DateTime(name="from", description="Start of the window (inclusive).")
    to = graphene.DateTime(description="End of the window (exclusive).")
    rows_read = graphene.Int(required=True, description="Data lines in the file, blank lines not counted.")
    matched = graphene.List(graphene.NonNull(ReconciliationLine), required=True, description="Lines that agree.")
    mismatched = graphene.List(graphene.NonNull(ReconciliationLine), required=True,
                               description="Pairs that differ; `differences` says where.")
    missing_in_coalition = graphene.List(graphene.NonNull(ReconciliationLine), required=True,
                                         description="POS lines the ledger does not have.")
    missing_in_pos = graphene.List(graphene.NonNull(ReconciliationLine), required=True,
                                   description="Ledger transactions in the window the file does not have.")
    totals = graphene.Field(ReconciliationTotalsByStatus, required=True, description="Counts and sums per status.")
    row_errors = graphene.List(graphene.NonNull(CsvRowError), required=True,
                               description="Lines that could not be read (the first 1,000).")
    row_error_count = graphene.Int(required=True, description="How many lines could not be read in all.")

    @staticmethod
    async def resolve_merchant(root: Report, info: ResolveInfo) -> Any:
        return await Merchant.fetch(info, root.merchant_id)

    @staticmethod
    def resolve_from_(root: Report, info: ResolveInfo) -> dt.datetime | None:
        return root.start

    @staticmethod
    def resolve_to(root: Report, info: ResolveInfo) -> dt.datetime | None:
        return root.end

    @staticmethod
    def resolve_matched(root: Report, info: ResolveInfo) -> list[LineView]:
        return [LineView(line) for line in root.by_status(Status.MATCHED)]

    @staticmethod
    def resolve_mismatched(root: Report, info: ResolveInfo) -> list[LineView]:
        return [LineView(line) for line in root.by_status(Status.MISMATCHED)]

    @staticmethod
    def resolve_missing_in_coalition(root: Report, info: ResolveInfo) -> list[LineView]:
        return [LineView(line) for line in root.by_status(Status.MISSING_IN_COALITION)]

    @staticmethod
    def resolve_missing_in_pos(root: Report, info: ResolveInfo) -> list[LineView]:
        return [LineView(line) for line in root.by_status(Status.MISSING_IN_POS)]

    @staticmethod
    def resolve_totals(root: Report, info: ResolveInfo) -> ReconciliationTotalsByStatus:
        return ReconciliationTotalsByStatus(
            matched=root.totals(Status.MATCHED), mismatched=root.totals(Status.MISMATCHED),
            missing_in_coalition=root.totals(Status.MISSING_IN_COALITION),
            missing_in_pos=root.totals(Status.MISSING_IN_POS),
        )


class ReconcilePosExportInput(graphene.InputObjectType):  # type: ignore[misc]
    csv = graphene.String(required=True, description=(
        "The POS export: UTF-8 CSV with a header row naming reference, time (ISO 8601), amount_minor (integer "
        "minor units) or amount (decimal major units), points (+ earned, - redeemed), in any order."))
    from_ = graphene.DateTime(name="from", description="Start of the window (default: the file's earliest line).")
    to = graphene.DateTime(description="End of the window, exclusive (default: just after the file's latest line).")
    merchant_id = graphene.ID(description="Admin only: whose ledger to compare. A merchant gets its own.")
    tolerance_seconds = graphene.Int(description="How far apart the POS and ledger times may be (default 300).")


class ReconcilePosExportPayload(graphene.ObjectType):  # type: ignore[misc]
    """The report, or why the file could not be used."""

    report = graphene.Field(ReconciliationReport, description="The comparison; null when the file was refused.")
    user_errors = graphene.List(graphene.NonNull(UserError), required=True, description="What was wrong, if anything.")


def merchant_to_reconcile(info: ResolveInfo, merchant_id: str | None) -> int:
    """A merchant reconciles only its own ledger; an admin names the merchant."""
    caller = info.context.require_staff()
    wanted = None if merchant_id is None else decode_input_id(info, merchant_id, "Merchant", "merchantId")
    if caller.role == Role.ADMIN:
        if wanted is None:
            raise DomainError("an admin must say whose ledger: merchantId", code="MERCHANT_REQUIRED",
                              field="merchantId")
        return wanted
    if wanted is not None and wanted != caller.merchant_id:
        raise Forbidden("a merchant can reconcile only its own transactions; leave merchantId out")
    return info.context.merchant_id


class ReconcilePosExport(BaseMutation, access=Access.STAFF, input_type=ReconcilePosExportInput,
                         output=ReconcilePosExportPayload):
    """Compare a POS export (CSV) with the ledger: matched, mismatched and missing lines, with totals.

    A mutation because it takes a file; it writes nothing."""

    @classmethod
    async def perform(cls, info: ResolveInfo, input: Any) -> dict[str, Any]:
        tolerance = (DEFAULT_TOLERANCE if input.tolerance_seconds is None
                     else dt.timedelta(seconds=input.tolerance_seconds))
        report = await reconcile_pos_export(
            info.context.db, merchant_id=merchant_to_reconcile(info, input.merchant_id), data=input.csv,
            currency_exponent=info.context.services.settings.currency_exponent, start=input.from_, end=input.to,
            tolerance=tolerance)
        return {"report": report}


class ReconcileMutations(graphene.ObjectType):  # type: ignore[misc]
    reconcile_pos_export = ReconcilePosExport.Field(
        required=True, description="Compare a POS export with the ledger (merchant: its own; admin: any).")
