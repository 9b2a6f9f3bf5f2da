"""Webhooks: signed notices of case state changes, delivered with retries by a worker."""
