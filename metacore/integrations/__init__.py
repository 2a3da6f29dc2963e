"""Integrations: signed outbound webhooks (`outbound`), durable deliveries (`deliveries`)."""
