"""createWebhookEndpoint, deleteWebhookEndpoint, replayWebhookDelivery; Query.webhookEndpoints."""

from __future__ import annotations

from typing import Any

import graphene

from coalition.graphql.access import webhook_scope
from coalition.graphql.context import ResolveInfo
from coalition.graphql.core.mutations import Access, BaseMutation
from coalition.graphql.core.types import UserError, connection, decode_cursor, decode_input_id, page_size
from coalition.graphql.webhooks.types import (
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEndpointConnection,
    WebhookEndpointEdge,
)
from coalition.webhooks import service


class CreateWebhookEndpointInput(graphene.InputObjectType):  # type: ignore[misc]
    url = graphene.String(required=True, description="An absolute http(s) URL on a public address.")
    events = graphene.List(graphene.NonNull(graphene.String), required=True,
                           description="Event types to send: " + ", ".join(service.EVENT_TYPE_NAMES) + ".")
    idempotency_key = graphene.String(required=True, description="Makes a retry return the same endpoint.")


class CreateWebhookEndpointPayload(graphene.ObjectType):  # type: ignore[misc]
    """The new endpoint and its signing secret."""

    endpoint = graphene.Field(WebhookEndpoint, description="The endpoint, active.")
    secret = graphene.String(description="The signing secret: shown here only (again only to a retry with the same "
                             "idempotency key); stored encrypted with the network's key.")
    user_errors = graphene.List(graphene.NonNull(UserError), required=True, description="What was wrong, if anything.")


class CreateWebhookEndpoint(BaseMutation, access=Access.STAFF, input_type=CreateWebhookEndpointInput,
                            output=CreateWebhookEndpointPayload):
    """Register a webhook endpoint: a merchant's gets its own events, the admin's every merchant's."""

    @classmethod
    async def perform(cls, info: ResolveInfo, input: Any) -> dict[str, Any]:
        services = info.context.services
        made = await service.create_endpoint(
            info.context.db, services.keys, merchant_id=webhook_scope(info), url=input.url, events=input.events,
            idempotency_key=input.idempotency_key, allowed_hosts=services.settings.webhook_allowed_hosts)
        return {"endpoint": made.endpoint, "secret": made.secret}


class DeleteWebhookEndpointInput(graphene.InputObjectType):  # type: ignore[misc]
    endpoint_id = graphene.ID(required=True, description="The endpoint's global ID.")


class DeleteWebhookEndpointPayload(graphene.ObjectType):  # type: ignore[misc]
    """Which endpoint was deleted."""

    deleted_endpoint_id = graphene.ID(description="The deleted endpoint's ID.")
    user_errors = graphene.List(graphene.NonNull(UserError), required=True, description="What was wrong, if anything.")


class DeleteWebhookEndpoint(BaseMutation, access=Access.STAFF, input_type=DeleteWebhookEndpointInput,
                            output=DeleteWebhookEndpointPayload):
    """Delete an endpoint: nothing more is sent to it (its own only; another's is not found)."""

    @classmethod
    async def perform(cls, info: ResolveInfo, input: Any) -> dict[str, Any]:
        endpoint_id = decode_input_id(info, input.endpoint_id, "WebhookEndpoint", "endpointId")
        await service.delete_endpoint(info.context.db, webhook_scope(info), endpoint_id)
        return {"deleted_endpoint_id": input.endpoint_id}


class ReplayWebhookDeliveryInput(graphene.InputObjectType):  # type: ignore[misc]
    delivery_id = graphene.ID(required=True, description="The delivery's global ID.")


class ReplayWebhookDeliveryPayload(graphene.ObjectType):  # type: ignore[misc]
    """The delivery, PENDING again."""

    delivery = graphene.Field(WebhookDelivery, description="The delivery, to be sent again (same event id).")
    user_errors = graphene.List(graphene.NonNull(UserError), required=True, description="What was wrong, if anything.")


class ReplayWebhookDelivery(BaseMutation, access=Access.STAFF, input_type=ReplayWebhookDeliveryInput,
                            output=ReplayWebhookDeliveryPayload):
    """Send a delivery again, whatever became of it (the same event id and body)."""

    @classmethod
    async def perform(cls, info: ResolveInfo, input: Any) -> dict[str, Any]:
        delivery_id = decode_input_id(info, input.delivery_id, "WebhookDelivery", "deliveryId")
        return {"delivery": await service.replay_delivery(info.context.db, webhook_scope(info), delivery_id)}


class WebhookMutations(graphene.ObjectType):  # type: ignore[misc]
    create_webhook_endpoint = CreateWebhookEndpoint.Field(required=True, description="Register a webhook endpoint "
                                                          "(merchant or admin).")
    delete_webhook_endpoint = DeleteWebhookEndpoint.Field(required=True, description="Delete a webhook endpoint "
                                                          "(its owner, or the admin).")
    replay_webhook_delivery = ReplayWebhookDelivery.Field(required=True, description="Send a delivery again "
                                                          "(its endpoint's owner, or the admin).")


class WebhookQueries(graphene.ObjectType):  # type: ignore[misc]
    webhook_endpoints = graphene.Field(WebhookEndpointConnection, required=True, first=graphene.Int(),
                                       after=graphene.String(),
                                       description="Webhook endpoints: a merchant's own, every one for the admin.")

    @staticmethod
    async def resolve_webhook_endpoints(root: Any, info: ResolveInfo, first: int | None = None,
                                        after: str | None = None) -> Any:
        scope = webhook_scope(info)
        size = page_size(first)
        rows = await service.list_endpoints(info.context.db, scope, after_id=decode_cursor(info, after),
                                            limit=size + 1)
        return connection(info, WebhookEndpointEdge, WebhookEndpointConnection, rows, size)
