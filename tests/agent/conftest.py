"""Fixtures for the agent: a brand, a configuration in a temporary folder, a fake backend."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from sos_agent.config import AgentConfig, load_config

REPO = Path(__file__).resolve().parents[2]
DEFAULT_BRAND = REPO / "branding" / "default"
KEY = "sosd_test-key"


@pytest.fixture(autouse=True)
def _private_desktop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Shortcuts and XDG folders of every agent test go to a temporary home, never the real one."""
    monkeypatch.setenv("XDG_DESKTOP_DIR", str(tmp_path / "home" / "Desktop"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "home" / ".local" / "share"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))


@dataclass
class FakeBackend:
    """A tiny stand-in for the backend's agent API, for client and outbox tests.

    Like the real one, a retry with the same ``Idempotency-Key`` opens, joins or posts nothing
    new, and a manual case takes one customer (another one gets 409 ``already_joined``).
    """

    url: str = ""
    cases: dict[str, dict[str, Any]] = field(default_factory=dict)  # code -> case
    by_key: dict[str, str] = field(default_factory=dict)  # idempotency key -> code
    requests: list[tuple[str, str, dict[str, str], Any]] = field(default_factory=list)
    fail_next: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    down: bool = False
    topics: list[str] = field(default_factory=list)
    joined_by: dict[str, str] = field(default_factory=dict)  # manual code -> join key
    messages: list[dict[str, Any]] = field(default_factory=list)
    message_keys: dict[str, int] = field(default_factory=dict)  # idempotency key -> message id

    def add_manual_case(self, code: str = "s20-000-001") -> str:
        self.cases[code] = {"code": code, "status": "new", "source": "manual"}
        return code

    def sent(self, method: str, suffix: str) -> list[tuple[dict[str, str], Any]]:
        """Headers and bodies of the requests received for a path ending in ``suffix``."""
        return [(h, b) for m, p, h, b in self.requests if m == method and p.endswith(suffix)]

    def answer(self, method: str, path: str, headers: dict[str, str], body: Any):
        self.requests.append((method, path, headers, body))
        if self.fail_next:
            status, extra = self.fail_next.pop(0)
            return status, {"error": {"code": "unavailable", "message": "try later"}}, extra
        key = headers.get("Idempotency-Key")
        if (method, path) == ("POST", "/api/v1/agent/cases"):
            if key and key in self.by_key:
                return 200, self._case_answer(self.by_key[key]), {}
            if body.get("topic") is not None and body["topic"] not in self.topics:
                return 400, _error("validation_failed", f"unknown topic {body['topic']!r}"), {}
            code = f"s{len(self.cases) + 10:02d}-000-000"
            self.cases[code] = {"code": code, "status": "new", "source": body["source"],
                                "topic": body.get("topic")}
            if key:
                self.by_key[key] = code
            return 201, self._case_answer(code), {}
        if (method, path) == ("POST", "/api/v1/agent/join"):
            code = body["code"]
            if self.cases.get(code, {}).get("source") != "manual":
                return 404, _error("not_found", f"no open case with the code {code}"), {}
            if code in self.joined_by and self.joined_by[code] != key:
                return 409, _error("already_joined", f"case {code} has already been joined"), {}
            self.joined_by[code] = key or ""
            return 200, self._case_answer(code), {}
        if (method, path) == ("GET", "/api/v1/agent/config"):
            return 200, {"deployment": {"id": 1, "name": "Fake"}, "group": {"name": "G"},
                         "customer_fields": ["email", "description"],
                         "topics": list(self.topics)}, {}
        if method == "GET" and path.startswith("/api/v1/cases/") and path.count("/") == 4:
            code = path.rsplit("/", 1)[1]
            if code in self.cases:
                return 200, self.cases[code], {}
        if method == "POST" and path.endswith("/messages"):
            if key and key in self.message_keys:
                return 200, self.messages[self.message_keys[key]], {}
            message = {"id": len(self.messages) + 1, "body": body["body"],
                       "author": {"kind": "customer", "name": None}}
            self.messages.append(message)
            if key:
                self.message_keys[key] = len(self.messages) - 1
            return 201, message, {}
        if method == "GET" and path.endswith("/messages"):
            return 200, {"messages": []}, {}
        return 404, _error("not_found", "no such thing"), {}

    def _case_answer(self, code: str) -> dict[str, Any]:
        return {"case": self.cases[code], "case_token": f"sosc_{uuid.uuid4().hex}"}


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


@pytest.fixture
def fake_backend() -> Iterator[FakeBackend]:
    backend = FakeBackend()

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            if backend.down:
                self.connection.close()
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            path = self.path.split("?", 1)[0]
            status, payload, extra = backend.answer(self.command, path, dict(self.headers), body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = _handle

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    backend.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield backend
    server.shutdown()
    server.server_close()


@pytest.fixture
def make_config(tmp_path: Path):
    def make(url: str = "http://127.0.0.1:9", **kw: Any) -> AgentConfig:
        kw.setdefault("data_dir", tmp_path / "agent")
        return load_config(brand_dir=DEFAULT_BRAND, backend_url=url, deployment_key=KEY, **kw)

    return make
