"""Domain errors: one base carrying the HTTP status and a stable error code."""

from __future__ import annotations

from typing import Any


class SOSError(Exception):
    """Base of every error the API reports to its caller."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def response_headers(self) -> dict[str, str]:
        """Headers the error response carries besides the JSON body."""
        return {}


class BadRequest(SOSError):
    status, code = 400, "bad_request"


class InvalidJSON(SOSError):
    status, code = 400, "invalid_json"


class ValidationFailed(SOSError):
    status, code = 422, "validation_error"


class Unauthorized(SOSError):
    status, code = 401, "unauthorized"


class AccountDeactivated(Unauthorized):
    """Right password, but an admin has deactivated the account (same answer as any 401)."""


class Forbidden(SOSError):
    status, code = 403, "forbidden"


class NotFound(SOSError):
    status, code = 404, "not_found"


class Conflict(SOSError):
    status, code = 409, "conflict"


class CaseFinal(Conflict):
    code = "case_final"


class AlreadyAssigned(Conflict):
    code = "already_assigned"


class AlreadyJoined(Conflict):
    code = "already_joined"


class AlreadyClosed(Conflict):
    code = "already_closed"


class UnsupportedMediaType(SOSError):
    status, code = 415, "unsupported_media_type"


class RateLimited(SOSError):
    """Too many requests of one kind; ``retry_after`` seconds until the next is accepted."""

    status, code = 429, "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def response_headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}
