"""Typed application errors: business outcomes are 4xx with a stable code, never a 500."""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    """An error a caller can act on: a message, an HTTP status and a stable code."""

    status_code: int = 400
    code: str = "BAD_REQUEST"

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        if code is not None:
            self.code = code
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        """The JSON body of the error response."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


class NotFound(AppError):
    """The object does not exist (or the caller may not know it does)."""

    status_code = 404
    code = "NOT_FOUND"


class InvalidInput(AppError):
    """The request is well-formed but its content cannot be used."""

    status_code = 422
    code = "INVALID_INPUT"


class Conflict(AppError):
    """The request conflicts with the current state of the object."""

    status_code = 409
    code = "CONFLICT"


class PayloadTooLarge(AppError):
    """The body is larger than the configured limit."""

    status_code = 413
    code = "PAYLOAD_TOO_LARGE"


class Unauthorized(AppError):
    """Nobody is logged in, or the credentials are wrong."""

    status_code = 401
    code = "UNAUTHORIZED"


class Forbidden(AppError):
    """The caller is known but may not do this (role, limit, segregation of duties)."""

    status_code = 403
    code = "FORBIDDEN"
