"""The backend's HTTP API (docs/API.md) as seen by a customer's agent."""

from __future__ import annotations

import email.utils
import logging
import platform
import socket
import time
from dataclasses import dataclass
from typing import Any

import requests

from sos_agent import __version__

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 15.0
FEED_WAIT = 25


class TransportError(Exception):
    """The backend could not be reached or answered with a server error: try again later."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ApiError(Exception):
    """The backend refused the request (4xx other than 429): retrying the same will not help."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Response:
    status: int
    body: Any


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


def device_info(device_id: str) -> dict[str, str]:
    """What the expert sees about this computer."""
    return {
        "hostname": socket.gethostname()[:100],
        "os": f"{platform.system()} {platform.release()}".strip()[:100],
        "agent_version": __version__,
        "device_id": device_id,
    }


class ApiClient:
    """Thin wrapper over ``requests``: bearer tokens, JSON, errors as exceptions."""

    def __init__(self, base_url: str, deployment_key: str, session: requests.Session | None = None):
        self.base_url = base_url.rstrip("/")
        self.deployment_key = deployment_key
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = f"sos-agent/{__version__}"

    def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        read_timeout: float = READ_TIMEOUT,
    ) -> Response:
        all_headers = {"Authorization": f"Bearer {token or self.deployment_key}"}
        all_headers.update(headers or {})
        url = f"{self.base_url}/api/v1{path}"
        try:
            resp = self.session.request(
                method,
                url,
                json=json,
                params=params,
                headers=all_headers,
                timeout=(CONNECT_TIMEOUT, read_timeout),
            )
        except requests.RequestException as exc:
            raise TransportError(f"{method} {path}: {exc.__class__.__name__}") from exc
        try:
            body = resp.json() if resp.content else None
        except ValueError:
            body = None
        if resp.status_code == 429 or resp.status_code >= 500:
            raise TransportError(
                f"{method} {path}: HTTP {resp.status_code}",
                retry_after=parse_retry_after(resp.headers.get("Retry-After")),
            )
        if resp.status_code >= 400:
            error = (body or {}).get("error", {}) if isinstance(body, dict) else {}
            raise ApiError(
                resp.status_code,
                error.get("code", "http_error"),
                error.get("message", resp.reason or "request refused"),
            )
        return Response(resp.status_code, body)

    # --- calls used outside the outbox (reads and presence) -------------------------------------

    def agent_config(self) -> dict[str, Any]:
        return self.request("GET", "/agent/config").body

    def get_case(self, code: str, token: str) -> dict[str, Any]:
        return self.request("GET", f"/cases/{code}", token=token).body

    def messages(self, code: str, token: str, after: int | None = None) -> list[dict[str, Any]]:
        params = {"after": after} if after else None
        return self.request("GET", f"/cases/{code}/messages", token=token, params=params).body[
            "messages"
        ]

    def presence(self, code: str, token: str, action: str) -> None:
        """``action`` is ``connect``, ``heartbeat`` or ``disconnect`` (the customer side)."""
        self.request("POST", f"/cases/{code}/{action}", token=token)

    def feed(self, token: str, after: str | None, wait: int = FEED_WAIT) -> dict[str, Any]:
        """One long-poll of the change feed, limited to the token's case."""
        params: dict[str, Any] = {"wait": wait}
        if after is not None:
            params["after"] = after
        return self.request(
            "GET", "/events", token=token, params=params, read_timeout=wait + 10
        ).body
