"""simulateSettlement: a period priced under another policy, beside the real figures (admin; writes nothing)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import graphene

from coalition.errors import DomainError
from coalition.graphql.context import ResolveInfo
from coalition.graphql.core.scalars import BigInt
from coalition.graphql.core.types import decode_id
from coalition.graphql.errors import CodedError
from coalition.graphql.settlement.types import NetworkPolicy, SettlementBatch, SettlementLine, SettlementTransfer
from coalition.settlement.compute import SettlementFigures
from coalition.settlement.service import get_batch
from coalition.settlement.whatif import PositionChange, Simulation, simulate_settlement


class SimulationPolicyInput(graphene.InputObjectType):  # type: ignore[misc]
    point_value_minor = graphene.Int(description="Money (minor units) per point (default: the policy's).")
    funding_model = graphene.String(description="ISSUANCE or REDEMPTION (default: the policy's).")
    reimbursement_rate = graphene.String(description="Decimal 0..1, e.g. \"0.80\" (default: the policy's).")
    breakage_share = graphene.String(description="Decimal 0..1 (default: the policy's).")


class SimulateSettlementInput(graphene.InputObjectType):  # type: ignore[misc]
    policy = SimulationPolicyInput(required=True, description="What to change; omitted fields keep their values.")
    period_end = graphene.DateTime(description="Simulate what a run at this instant would close (the unsettled "
                                               "activity before it). Give this or batchId.")
    batch_id = graphene.ID(description="Re-price a closed batch's period instead.")


@dataclass(frozen=True)
class MatrixCell:
    issuer: int | None
    redeemer: int
    points: int
    amount_minor: int
    charged_minor: int


class SettlementTotals(graphene.ObjectType):  # type: ignore[misc]
    """A period's totals under one policy."""

    gross_minor = graphene.Field(BigInt, required=True, description="Gross obligations.")
    net_minor = graphene.Field(BigInt, required=True, description="Sum of |position|.")
    network_income_minor = graphene.Field(BigInt, required=True, description="Minus the sum of positions.")
    netting_ratio = graphene.String(required=True, description="1 - net / gross, 4 decimals.")
    residue_minor = graphene.String(required=True, description="Exact minus rounded money (to the network).")

    @staticmethod
    def resolve_gross_minor(root: SettlementFigures, info: ResolveInfo) -> int:
        return root.netting.gross_minor

    @staticmethod
    def resolve_net_minor(root: SettlementFigures, info: ResolveInfo) -> int:
        return root.netting.net_minor

    @staticmethod
    def resolve_network_income_minor(root: SettlementFigures, info: ResolveInfo) -> int:
        return root.netting.network_income_minor

    @staticmethod
    def resolve_netting_ratio(root: SettlementFigures, info: ResolveInfo) -> str:
        return str(root.netting.netting_ratio)

    @staticmethod
    def resolve_residue_minor(root: SettlementFigures, info: ResolveInfo) -> str:
        return str(root.residue_minor)


class SimulatedPosition(graphene.ObjectType):  # type: ignore[misc]
    """A merchant's figures under the simulated policy, and its net position under the real one."""

    merchant = graphene.Field("coalition.graphql.partners.types.Merchant", required=True, description="The merchant.")
    net_minor = graphene.Field(BigInt, required=True, description="Net position under the simulated policy.")
    current_net_minor = graphene.Field(BigInt, required=True, description="Net position under the real policy.")
    delta_minor = graphene.Field(BigInt, required=True, description="netMinor - currentNetMinor.")
    points_issued = graphene.Field(BigInt, required=True, description="Points it issued.")
    points_honored = graphene.Field(BigInt, required=True, description="Points it honored.")
    charges_minor = graphene.Field(BigInt, required=True, description="What it would be charged.")
    reimbursements_minor = graphene.Field(BigInt, required=True, description="What it would be reimbursed.")
    breakage_minor = graphene.Field(BigInt, required=True, description="Breakage it would get back.")
    adjustments_minor = graphene.Field(BigInt, required=True, description="Adjustments for late reversals.")

    @staticmethod
    async def resolve_merchant(root: PositionChange, info: ResolveInfo) -> Any:
        from coalition.graphql.partners.types import Merchant

        return await Merchant.fetch(info, root.merchant_id)

    @staticmethod
    def resolve_net_minor(root: PositionChange, info: ResolveInfo) -> int:
        return root.simulated.net_minor

    @staticmethod
    def resolve_current_net_minor(root: PositionChange, info: ResolveInfo) -> int:
        return root.current.net_minor

    @staticmethod
    def resolve_points_issued(root: PositionChange, info: ResolveInfo) -> int:
        return root.simulated.points_issued

    @staticmethod
    def resolve_points_honored(root: PositionChange, info: ResolveInfo) -> int:
        return root.simulated.points_honored

    @staticmethod
    def resolve_charges_minor(root: PositionChange, info: ResolveInfo) -> int:
        return root.simulated.charges_minor

    @staticmethod
    def resolve_reimbursements_minor(root: PositionChange, info: ResolveInfo) -> int:
        return root.simulated.reimbursements_minor

    @staticmethod
    def resolve_breakage_minor(root: PositionChange, info: ResolveInfo) -> int:
        return root.simulated.breakage_minor

    @staticmethod
    def resolve_adjustments_minor(root: PositionChange, info: ResolveInfo) -> int:
        return root.simulated.adjustments_minor


class SettlementSimulation(graphene.ObjectType):  # type: ignore[misc]
    """What a period settles to under a simulated policy. Nothing was written."""

    period_start = graphene.DateTime(required=True, description="Start of the simulated period.")
    period_end = graphene.DateTime(required=True, description="End of the simulated period.")
    batch = graphene.Field(SettlementBatch, description="The closed batch re-priced, when batchId was given.")
    policy = graphene.Field(NetworkPolicy, required=True, description="The simulated policy (version null).")
    positions = graphene.List(graphene.NonNull(SimulatedPosition), required=True,
                              description="Every merchant with activity: simulated and real net positions.")
    lines = graphene.List(graphene.NonNull(SettlementLine), required=True,
                          description="The issuer x redeemer matrix under the simulated policy.")
    transfers = graphene.List(graphene.NonNull(SettlementTransfer), required=True,
                              description="The transfers the simulated positions would need.")
    simulated = graphene.Field(SettlementTotals, required=True, description="Totals under the simulated policy.")
    current = graphene.Field(SettlementTotals, required=True, description="Totals under the real policy.")

    @staticmethod
    async def resolve_batch(root: Simulation, info: ResolveInfo) -> Any:
        return None if root.batch_id is None else await get_batch(info.context.db, root.batch_id)

    @staticmethod
    def resolve_positions(root: Simulation, info: ResolveInfo) -> list[PositionChange]:
        return root.changes

    @staticmethod
    def resolve_lines(root: Simulation, info: ResolveInfo) -> list[MatrixCell]:
        return [MatrixCell(*cell) for cell in root.simulated.matrix]

    @staticmethod
    def resolve_transfers(root: Simulation, info: ResolveInfo) -> Any:
        return root.simulated.netting.transfers


class WhatIfQueries(graphene.ObjectType):  # type: ignore[misc]
    simulate_settlement = graphene.Field(
        SettlementSimulation, required=True, input=SimulateSettlementInput(required=True),
        description="Price a period under another policy, beside the real figures; writes nothing (admin).")

    @staticmethod
    async def resolve_simulate_settlement(root: Any, info: ResolveInfo, input: Any) -> Simulation:
        info.context.require_admin()
        services = info.context.services
        try:
            batch_id = None if input.batch_id is None else decode_id(info, input.batch_id, "SettlementBatch")
            policy = input.policy
            return await simulate_settlement(
                services.db, services.settings, period_end=input.period_end, batch_id=batch_id,
                point_value_minor=policy.point_value_minor, funding_model=policy.funding_model,
                reimbursement_rate=policy.reimbursement_rate, breakage_share=policy.breakage_share)
        except DomainError as error:
            raise CodedError(error.message, code=error.code) from None
