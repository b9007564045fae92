"""Webhook errors.

DomainError
├── InvalidInput
│   ├── InvalidWebhookUrl          INVALID_URL: not an absolute http(s) URL
│   ├── UnknownEventType           UNKNOWN_EVENT_TYPE / NO_EVENT_TYPES
│   └── UrlNotAllowed              URL_NOT_ALLOWED: resolves to a loopback/private/link-local/multicast address
├── NotFound
│   ├── WebhookEndpointNotFound    WEBHOOK_ENDPOINT_NOT_FOUND (also another merchant's)
│   └── WebhookDeliveryNotFound    WEBHOOK_DELIVERY_NOT_FOUND (also another merchant's)
└── Refused
    ├── TooManyEndpoints           TOO_MANY_ENDPOINTS
    └── EndpointDisabled           WEBHOOK_ENDPOINT_DISABLED: replay on a deleted endpoint
"""

from __future__ import annotations

from coalition.errors import InvalidInput, NotFound, Refused


class InvalidWebhookUrl(InvalidInput):
    code = "INVALID_URL"


class UrlNotAllowed(InvalidInput):
    code = "URL_NOT_ALLOWED"


class UnknownEventType(InvalidInput):
    code = "UNKNOWN_EVENT_TYPE"


class WebhookEndpointNotFound(NotFound):
    code = "WEBHOOK_ENDPOINT_NOT_FOUND"


class WebhookDeliveryNotFound(NotFound):
    code = "WEBHOOK_DELIVERY_NOT_FOUND"


class TooManyEndpoints(Refused):
    code = "TOO_MANY_ENDPOINTS"


class EndpointDisabled(Refused):
    code = "WEBHOOK_ENDPOINT_DISABLED"
