"""Signed webhooks: endpoints, a transactional outbox, delivery by the worker (docs/webhooks.md)."""
