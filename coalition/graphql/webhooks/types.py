from __future__ import annotations

from typing import Any

import graphene

from coalition.graphql.access import webhook_scope
from coalition.graphql.context import ResolveInfo
from coalition.graphql.core.types import Node, connection, connection_types, decode_cursor, page_size
from coalition.graphql.errors import Forbidden
from coalition.webhooks import service
from coalition.webhooks.delivery import event_id
from coalition.webhooks.models import DeliveryStatus as DeliveryStatusValue
from coalition.webhooks.models import WebhookDelivery as DeliveryModel
from coalition.webhooks.models import WebhookEndpoint as EndpointModel

WebhookDeliveryStatus = graphene.Enum.from_enum(
    DeliveryStatusValue, description="PENDING (to be sent, or sent again after a failure), DELIVERED (answered "
    "2xx), FAILED (failed for the whole retry window: the endpoint was disabled).")


class WebhookDelivery(graphene.ObjectType):  # type: ignore[misc]
    """One event sent (or to be sent) to one endpoint: the same event id on every try."""

    class Meta:
        interfaces = (Node,)
        possible_types = (DeliveryModel,)

    event_id = graphene.String(required=True, description="The event's `id` in the body: the same on every try.")
    type = graphene.String(required=True, description="The event type, e.g. points.earned.")
    status = graphene.Field(WebhookDeliveryStatus, required=True, description="Where the delivery stands.")
    attempts = graphene.Int(required=True, description="Tries so far.")
    created_at = graphene.DateTime(required=True, description="When the event happened.")
    next_attempt_at = graphene.DateTime(description="When it is tried next, while PENDING.")
    last_attempt_at = graphene.DateTime(description="When it was last tried.")
    last_status_code = graphene.Int(description="The HTTP status of the last try (null: no answer).")
    last_error = graphene.String(description="Why the last try failed, if it did.")
    delivered_at = graphene.DateTime(description="When the endpoint answered 2xx.")

    @staticmethod
    async def fetch(info: ResolveInfo, delivery_id: int) -> Any:
        try:
            scope = webhook_scope(info)
        except Forbidden:
            return None
        return await service.get_delivery(info.context.db, scope, delivery_id)

    @staticmethod
    def resolve_event_id(root: Any, info: ResolveInfo) -> str:
        return event_id(info.context.services.keys, root.id)

    @staticmethod
    def resolve_next_attempt_at(root: Any, info: ResolveInfo) -> Any:
        return root.next_attempt_at if root.status == DeliveryStatusValue.PENDING else None


WebhookDeliveryEdge, WebhookDeliveryConnection = connection_types(
    WebhookDelivery, name="WebhookDelivery", noun="delivery", nouns="deliveries", order="newest first")


class WebhookEndpoint(graphene.ObjectType):  # type: ignore[misc]
    """Where a merchant's events are POSTed, signed with its secret (docs/webhooks.md)."""

    class Meta:
        interfaces = (Node,)
        possible_types = (EndpointModel,)

    url = graphene.String(required=True, description="The URL events are POSTed to.")
    events = graphene.List(graphene.NonNull(graphene.String), required=True, description="The event types sent.")
    active = graphene.Boolean(required=True, description="False once disabled (failing past the retry window).")
    created_at = graphene.DateTime(required=True, description="When it was registered.")
    disabled_at = graphene.DateTime(description="When it was disabled, if it was.")
    disabled_reason = graphene.String(description="Why it was disabled: the notice to the merchant.")
    deliveries = graphene.Field(WebhookDeliveryConnection, required=True, first=graphene.Int(),
                                after=graphene.String(), description="Its deliveries, newest first.")

    @staticmethod
    async def fetch(info: ResolveInfo, endpoint_id: int) -> Any:
        try:
            scope = webhook_scope(info)
        except Forbidden:
            return None
        return await service.get_endpoint(info.context.db, scope, endpoint_id)

    @staticmethod
    def resolve_events(root: Any, info: ResolveInfo) -> list[str]:
        return [e for e in root.events.split(",") if e]

    @staticmethod
    async def resolve_deliveries(root: Any, info: ResolveInfo, first: int | None = None,
                                 after: str | None = None) -> Any:
        size = page_size(first)
        rows = await service.list_deliveries(info.context.db, root.id, after_id=decode_cursor(info, after),
                                             limit=size + 1)
        return connection(info, WebhookDeliveryEdge, WebhookDeliveryConnection, rows, size)


WebhookEndpointEdge, WebhookEndpointConnection = connection_types(
    WebhookEndpoint, name="WebhookEndpoint", noun="endpoint", nouns="endpoints", order="oldest first")
