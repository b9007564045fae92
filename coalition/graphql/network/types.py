from __future__ import annotations

import graphene

from coalition.graphql.context import ResolveInfo


class Network(graphene.ObjectType):  # type: ignore[misc]
    """The coalition itself: public facts a POS needs, such as the key that verifies QR codes."""

    name = graphene.String(required=True, description="The network's name.")
    currency = graphene.String(required=True, description="ISO 4217 code of the network's currency.")
    point_value_minor = graphene.Int(required=True, description="Money (minor units) one point is worth.")
    public_key = graphene.String(
        required=True,
        description="Base64 of the raw 32-byte Ed25519 public key: verifies QR codes and statements.",
    )


def network_of(info: ResolveInfo) -> Network:
    services = info.context.services
    return Network(
        name=services.settings.network_name,
        currency=services.settings.currency,
        point_value_minor=services.settings.point_value_minor,
        public_key=services.keys.public_key_b64,
    )
