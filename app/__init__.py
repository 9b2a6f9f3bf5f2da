"""Tollgate service: settings, storage, domain services, API and CLI."""
