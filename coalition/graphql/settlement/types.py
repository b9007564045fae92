"""Settlement types: batches, lines, positions, transfers, adjustments, the network policy.

Who sees what: an admin sees every line and position. A merchant sees a batch's
totals (they are in the signed batch statement it needs to verify its own) but only its
own lines, position, transfers and adjustments: never another merchant's position.
"""

from __future__ import annotations

from typing import Any

import graphene

from coalition.errors import DomainError
from coalition.graphql.access import may_see_batches, settlement_scope
from coalition.graphql.context import ResolveInfo
from coalition.graphql.core.scalars import BigInt
from coalition.graphql.core.types import Node, connection_types, decode_id, encode_id
from coalition.graphql.errors import CodedError, Forbidden
from coalition.settlement import service
from coalition.settlement.errors import BatchNotFound
from coalition.settlement.models import FundingModel as FundingModelValue
from coalition.settlement.models import SettlementBatch as BatchModel
from coalition.settlement.models import SettlementPeriod as SettlementPeriodValue

MERCHANT = "coalition.graphql.partners.types.Merchant"

SettlementStatus = graphene.Enum("SettlementStatus", [("OPEN", "OPEN"), ("CLOSED", "CLOSED")],
                                 description="OPEN: not yet closed; CLOSED: immutable and signed.")
FundingModel = graphene.Enum.from_enum(FundingModelValue, description="Who funds the points and when.")
SettlementPeriod = graphene.Enum.from_enum(SettlementPeriodValue, description="How often periods close.")


async def merchant_or_none(info: ResolveInfo, merchant_id: int | None) -> Any:
    if merchant_id is None:
        return None
    from coalition.graphql.partners.types import Merchant

    return await Merchant.fetch(info, merchant_id)


class NetworkPolicy(graphene.ObjectType):  # type: ignore[misc]
    """One version of the network's settlement policy."""

    version = graphene.Int(description="The version's number; null for the built-in default.")
    point_value_minor = graphene.Int(required=True, description="Money (minor units) one point is worth.")
    funding_model = graphene.Field(FundingModel, required=True, description="ISSUANCE or REDEMPTION.")
    reimbursement_rate = graphene.String(required=True,
                                         description="Share of point value paid to the honoring merchant (decimal).")
    breakage_share = graphene.String(required=True, description="Under ISSUANCE, share of expired points' funding "
                                                                "returned to the issuer (decimal).")
    period = graphene.Field(SettlementPeriod, required=True, description="DAILY, WEEKLY or MONTHLY.")
    timezone = graphene.String(required=True, description="IANA time zone the periods are cut in.")
    effective_from = graphene.DateTime(required=True, description="When this version starts to apply.")
    redeem_without_proof_points = graphene.Int(required=True, description=(
        "Points one merchant may redeem or hold from one member in a rolling 24 hours without the member's "
        "proof of presence (memberProof)."))

    @staticmethod
    def resolve_version(root: Any, info: ResolveInfo) -> int | None:
        return root.id  # type: ignore[no-any-return]

    @staticmethod
    def resolve_reimbursement_rate(root: Any, info: ResolveInfo) -> str:
        return str(root.reimbursement_rate)

    @staticmethod
    def resolve_breakage_share(root: Any, info: ResolveInfo) -> str:
        return str(root.breakage_share)


class SettlementLine(graphene.ObjectType):  # type: ignore[misc]
    """One cell of the issuer x redeemer matrix: points of ``issuer`` honored by ``redeemer``."""

    issuer = graphene.Field(MERCHANT, description="The issuer; null: points the network itself issued.")
    redeemer = graphene.Field(MERCHANT, required=True, description="The merchant that honored the points.")
    points = graphene.Field(BigInt, required=True, description="Points honored (net of reversals in the batch).")
    amount_minor = graphene.Field(BigInt, required=True, description="Reimbursed to the redeemer (minor units).")
    charged_minor = graphene.Field(BigInt, required=True,
                                   description="Charged to the issuer for these points (REDEMPTION model).")
    kind = graphene.String(required=True, description=(
        "POINTS, or GIFT_CARD: money of the issuer's gift cards spent at the redeemer (points then counts the "
        "minor units spent; the issuer holds the cash and owes them, less the network's fee)."))

    @staticmethod
    def resolve_kind(root: Any, info: ResolveInfo) -> str:
        return str(getattr(root, "kind", "POINTS"))

    @staticmethod
    async def resolve_issuer(root: Any, info: ResolveInfo) -> Any:
        return await merchant_or_none(info, root.issuer)

    @staticmethod
    async def resolve_redeemer(root: Any, info: ResolveInfo) -> Any:
        return await merchant_or_none(info, root.redeemer)


class NetPosition(graphene.ObjectType):  # type: ignore[misc]
    """A merchant's figures and net position in one batch."""

    merchant = graphene.Field(MERCHANT, required=True, description="The merchant.")
    net_minor = graphene.Field(BigInt, required=True, description="> 0: the network pays the merchant.")
    points_issued = graphene.Field(BigInt, required=True, description="Points it issued.")
    points_honored = graphene.Field(BigInt, required=True, description="Points it honored (any issuer).")
    points_reversed = graphene.Field(BigInt, required=True, description="Points its reversals took back.")
    points_expired = graphene.Field(BigInt, required=True, description="Its points that expired.")
    charges_minor = graphene.Field(BigInt, required=True, description="What it was charged.")
    reimbursements_minor = graphene.Field(BigInt, required=True, description="What it was reimbursed.")
    breakage_minor = graphene.Field(BigInt, required=True, description="Breakage returned to it.")
    adjustments_minor = graphene.Field(BigInt, required=True, description="Adjustments for late reversals.")
    statement = graphene.String(required=True, description="Its canonical statement (JSON) as committed to by the "
                                                           "batch.")
    statement_sha256 = graphene.String(
        required=True, description="Its commitment in the batch: for a batch with `statementVersion` 2 the salted "
                                   "Merkle leaf SHA-256(0x00 || nonce || statement) (the nonce is in "
                                   "`statementExport`); for version 1 the plain SHA-256 of `statement`.")

    @staticmethod
    async def resolve_merchant(root: Any, info: ResolveInfo) -> Any:
        return await merchant_or_none(info, root.merchant_id)


class SettlementTransfer(graphene.ObjectType):  # type: ignore[misc]
    """A payment to execute: ``payer`` pays ``payee``; null is the network's clearing account."""

    payer = graphene.Field(MERCHANT, description="Who pays; null: the network.")
    payee = graphene.Field(MERCHANT, description="Who is paid; null: the network.")
    amount_minor = graphene.Field(BigInt, required=True, description="How much (minor units, > 0).")

    @staticmethod
    async def resolve_payer(root: Any, info: ResolveInfo) -> Any:
        return await merchant_or_none(info, root.payer)

    @staticmethod
    async def resolve_payee(root: Any, info: ResolveInfo) -> Any:
        return await merchant_or_none(info, root.payee)


class SettlementAdjustment(graphene.ObjectType):  # type: ignore[misc]
    """A reversal of a transaction settled in an earlier batch."""

    reversal_transaction_id = graphene.ID(required=True, description="The REVERSAL transaction.")
    original_transaction_id = graphene.ID(required=True, description="The transaction it reverses.")
    original_batch = graphene.Field(lambda: SettlementBatch, description="The batch that settled the original.")
    issuer = graphene.Field(MERCHANT, description="The points' issuer; null: the network.")
    redeemer = graphene.Field(MERCHANT, description="The merchant that had honored them (null: an earn reversal).")
    points = graphene.Field(BigInt, required=True, description="Points taken back (negative).")
    issuer_minor = graphene.Field(BigInt, required=True, description="Effect on the issuer's position.")
    redeemer_minor = graphene.Field(BigInt, required=True, description="Effect on the redeemer's position.")

    @staticmethod
    def resolve_reversal_transaction_id(root: Any, info: ResolveInfo) -> str:
        return encode_id(info, "Transaction", root.reversal_entry_id)

    @staticmethod
    def resolve_original_transaction_id(root: Any, info: ResolveInfo) -> str:
        return encode_id(info, "Transaction", root.original_entry_id)

    @staticmethod
    async def resolve_original_batch(root: Any, info: ResolveInfo) -> Any:
        if root.original_batch_id is None:
            return None
        return await service.get_batch(info.context.db, root.original_batch_id)

    @staticmethod
    async def resolve_issuer(root: Any, info: ResolveInfo) -> Any:
        return await merchant_or_none(info, root.issuer_merchant_id)

    @staticmethod
    async def resolve_redeemer(root: Any, info: ResolveInfo) -> Any:
        return await merchant_or_none(info, root.redeemer_merchant_id)


class SettlementBatch(graphene.ObjectType):  # type: ignore[misc]
    """A closed settlement period: immutable, hash-chained to the previous batch, signed by the network."""

    class Meta:
        interfaces = (Node,)
        possible_types = (BatchModel,)

    seq = graphene.Int(required=True, description="Position in the chain of batches, from 1.")
    period_start = graphene.DateTime(required=True, description="Where the period starts (the last batch's end).")
    period_end = graphene.DateTime(required=True, description="Entries created before this are settled.")
    status = graphene.Field(SettlementStatus, required=True, description="CLOSED once written.")
    gross_minor = graphene.Field(BigInt, required=True,
                                 description="Gross obligations: every charge and reimbursement paid on its own.")
    net_minor = graphene.Field(BigInt, required=True, description="Sum of |position|: what netting leaves to move.")
    network_income_minor = graphene.Field(BigInt, required=True,
                                          description="Minus the sum of positions (includes the rounding residue).")
    netting_ratio = graphene.String(required=True, description="1 - net / gross, 4 decimals.")
    residue_minor = graphene.String(required=True,
                                    description="Exact minus rounded money over all lines (to the network).")
    bilateral_minor = graphene.Field(BigInt, required=True,
                                     description="For comparison: the total if each pair settled directly.")
    lines = graphene.List(graphene.NonNull(SettlementLine), required=True,
                          description="The issuer x redeemer matrix (a merchant: the cells it is part of).")
    positions = graphene.List(graphene.NonNull(NetPosition), required=True,
                              description="Net positions (a merchant: only its own).")
    transfers = graphene.List(graphene.NonNull(SettlementTransfer), required=True,
                              description="What to execute: one transfer per non-zero position.")
    bilateral_transfers = graphene.List(graphene.NonNull(SettlementTransfer), required=True,
                                        description="The bilateral minimum-transfer view, for comparison.")
    adjustments = graphene.List(graphene.NonNull(SettlementAdjustment), required=True,
                                description="Reversals of transactions settled in earlier batches.")
    previous_digest = graphene.String(description="The previous batch's digest (null for the first batch).")
    statement = graphene.String(required=True, description="The canonical batch statement (JSON) that is hashed: "
                                                           "network totals and the root of the salted merchant "
                                                           "statements (version 2), never a merchant's figures.")
    statement_version = graphene.Int(required=True, description="2: merchant statements are salted Merkle leaves "
                                                                "under `merchantRoot`; 1: a batch closed before, "
                                                                "whose statement lists plain SHA-256 hashes.")
    merchant_root = graphene.String(description="Hex Merkle root of the salted merchant statements that `statement` "
                                                "commits to (null: version 1, or no merchant statement).")
    digest = graphene.String(required=True, description="Hex SHA-256 of `statement`.")
    signature = graphene.String(required=True, description="Base64 Ed25519 signature of the ASCII digest.")
    statement_export = graphene.String(
        merchant_id=graphene.ID(description="Admin: whose statement (default: every merchant's)."),
        description="The signed JSON export that `coalition verify-statement` checks offline: a merchant gets its "
                    "own statement with its nonce and inclusion proof, never another's.")

    @staticmethod
    async def fetch(info: ResolveInfo, batch_id: int) -> Any:
        if not may_see_batches(info):
            return None
        try:
            return await service.get_batch(info.context.db, batch_id)
        except BatchNotFound:
            return None

    @staticmethod
    def resolve_status(root: Any, info: ResolveInfo) -> str:
        return "CLOSED"

    @staticmethod
    def resolve_netting_ratio(root: Any, info: ResolveInfo) -> str:
        return service.netting_ratio_of(root)

    @staticmethod
    def resolve_previous_digest(root: Any, info: ResolveInfo) -> str | None:
        return service.previous_digest_of(root)

    @staticmethod
    def resolve_statement_version(root: Any, info: ResolveInfo) -> int:
        return service.statement_version_of(root)

    @staticmethod
    def resolve_merchant_root(root: Any, info: ResolveInfo) -> str | None:
        return service.merchant_root_of(root)

    @staticmethod
    async def resolve_lines(root: Any, info: ResolveInfo) -> Any:
        return await service.batch_matrix(info.context.db, root.id, merchant_id=settlement_scope(info))

    @staticmethod
    async def resolve_positions(root: Any, info: ResolveInfo) -> Any:
        return await service.batch_positions(info.context.db, root.id, merchant_id=settlement_scope(info))

    @staticmethod
    async def resolve_transfers(root: Any, info: ResolveInfo) -> Any:
        return await service.batch_transfers(info.context.db, root.id, merchant_id=settlement_scope(info))

    @staticmethod
    async def resolve_bilateral_transfers(root: Any, info: ResolveInfo) -> Any:
        return await service.batch_transfers(info.context.db, root.id, merchant_id=settlement_scope(info),
                                             bilateral=True)

    @staticmethod
    async def resolve_adjustments(root: Any, info: ResolveInfo) -> Any:
        return await service.batch_adjustments(info.context.db, root.id, merchant_id=settlement_scope(info))

    @staticmethod
    async def resolve_statement_export(root: Any, info: ResolveInfo, merchant_id: str | None = None) -> str:
        own = settlement_scope(info)
        wanted = decode_id(info, merchant_id, "Merchant") if merchant_id is not None else None
        if own is not None:
            if wanted not in (None, own):
                raise Forbidden("a merchant can export only its own statement")
            wanted = own
        try:
            document = await service.export_statement(info.context.db, info.context.services.keys, root.id, wanted)
        except DomainError as error:  # no statement for that merchant; a batch salted under another secret
            raise CodedError(error.message, code=error.code) from None
        return service.export_text(document)


SettlementBatchEdge, SettlementBatchConnection = connection_types(
    SettlementBatch, name="SettlementBatch", noun="batch", nouns="settlement batches", order="newest first",
    edges_description="The batches.")
