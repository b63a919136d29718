"""The HTTP side of ``sos-queue``: a small REST client and the per-user token store.

This module speaks only the public API (``/api/v1``) and imports nothing from the server, so the
terminal client works against any SOS server, local or remote.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import platformdirs
import requests

TIMEOUT = 15.0  # seconds for ordinary calls; long-polls add their wait to it


class QueueError(Exception):
    """A failure to report to the person on one line (exit code 1)."""


class Unreachable(QueueError):
    """The server could not be reached or did not answer: worth retrying while watching."""


class ApiError(QueueError):
    """The server answered with its ``{"error": {"code", "message"}}`` shape."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


def normalise_server(url: str) -> str:
    """``http(s)://host[:port][/prefix]`` without a trailing slash, or a clear error."""
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise QueueError(f"{url!r} is not a server address; use e.g. http://127.0.0.1:5000")
    return url


def _reason(exc: requests.RequestException) -> str:
    text = str(exc)
    for needle, reason in (
        ("refused", "connection refused"),
        ("Name or service not known", "unknown host"),
        ("nodename nor servname", "unknown host"),
        ("getaddrinfo failed", "unknown host"),
        ("No route to host", "no route to host"),
        ("CERTIFICATE_VERIFY_FAILED", "its TLS certificate is not trusted"),
    ):
        if needle in text:
            return reason
    if isinstance(exc, requests.Timeout):
        return "no answer in time"
    return "connection failed"


class Client:
    """Calls ``/api/v1`` on one server, turning every failure into a :class:`QueueError`."""

    def __init__(self, server: str, token: str | None = None) -> None:
        self.server = normalise_server(server)
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "sos-queue"
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
        timeout: float = TIMEOUT,
    ) -> Any:
        """One API call; returns the decoded JSON answer (``None`` for an empty one)."""
        url = f"{self.server}/api/v1{path}"
        try:
            response = self.session.request(
                method, url, json=json_body, params=params, timeout=(5, timeout)
            )
        except requests.RequestException as exc:
            raise Unreachable(
                f"cannot reach {self.server}: {_reason(exc)}; check --server"
            ) from None
        return self._decode(response, path)

    def _decode(self, response: requests.Response, path: str) -> Any:
        if response.status_code == 204 or (response.ok and not response.content):
            return None
        try:
            data = response.json()
        except ValueError:
            data = None
        error = data.get("error") if isinstance(data, dict) else None
        if response.ok and isinstance(data, dict):
            return data
        if isinstance(error, dict) and "message" in error:
            code, message = str(error.get("code", "")), str(error["message"])
            if response.status_code == 401 and path != "/auth/token":
                message = "the server refused the token; run sos-queue login"
            raise ApiError(response.status_code, code, message)
        if response.status_code in (502, 503, 504):
            raise Unreachable(f"{self.server} is unavailable (HTTP {response.status_code})")
        raise QueueError(
            f"{self.server} does not look like an SOS server "
            f"(HTTP {response.status_code} for /api/v1{path}); check --server"
        )

    def case_path(self, code: str, action: str = "") -> str:
        return f"/cases/{quote(code, safe='')}" + (f"/{action}" if action else "")


@dataclass
class Login:
    """A stored API token for one user on one server."""

    server: str
    username: str
    token: str
    token_id: int | None = None

    @property
    def key(self) -> str:
        return f"{self.username}@{self.server}"


class TokenStore:
    """``tokens.json`` in the user's config folder, written atomically and readable by its owner.

    The last login becomes the default; ``--server`` picks the latest login on that server.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or platformdirs.user_config_path("sos-queue") / "tokens.json"

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"default": None, "logins": {}}
        except (OSError, ValueError) as exc:
            raise QueueError(
                f"cannot read {self.path} ({exc}); delete it and log in again"
            ) from None
        if not isinstance(data, dict) or not isinstance(data.get("logins"), dict):
            raise QueueError(f"{self.path} is damaged; delete it and log in again")
        return data

    def _write(self, data: dict[str, Any]) -> None:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tokens-", dir=self.path.parent)  # mode 0600
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump(data, f, indent=2)
                    f.flush()
                    os.fsync(f.fileno())
                os.chmod(tmp, 0o600)
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise QueueError(f"cannot save the token in {self.path}: {exc}") from None

    def save(self, login: Login) -> None:
        """Keep ``login`` and make it the default."""
        data = self._read()
        entry = {**login.__dict__, "saved_at": time.time()}
        data["logins"][login.key] = entry
        data["default"] = login.key
        self._write(data)

    def find(self, server: str | None) -> Login | None:
        """The default login, or the latest one on ``server`` when one is named."""
        data = self._read()
        logins = data["logins"]
        if server is None:
            entry = logins.get(data.get("default") or "")
        else:
            server = normalise_server(server)
            default = logins.get(data.get("default") or "")
            if default and default.get("server") == server:
                entry = default
            else:
                mine = [e for e in logins.values() if e.get("server") == server]
                entry = max(mine, key=lambda e: e.get("saved_at", 0), default=None)
        if not entry:
            return None
        return Login(entry["server"], entry["username"], entry["token"], entry.get("token_id"))

    def forget(self, login: Login) -> None:
        """Drop ``login``; the latest remaining login becomes the default."""
        data = self._read()
        data["logins"].pop(login.key, None)
        if data.get("default") == login.key:
            rest = sorted(data["logins"].values(), key=lambda e: e.get("saved_at", 0))
            data["default"] = f"{rest[-1]['username']}@{rest[-1]['server']}" if rest else None
        self._write(data)
