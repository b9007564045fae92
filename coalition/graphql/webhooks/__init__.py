"""Webhook endpoints and deliveries in the API."""
