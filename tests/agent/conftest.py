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
    """A tiny stand-in for the backend's agent API, for client and outbox tests."""

    url: str = ""
    cases: dict[str, dict[str, Any]] = field(default_factory=dict)  # code -> case
    by_key: dict[str, str] = field(default_factory=dict)  # idempotency key -> code
    requests: list[tuple[str, str, dict[str, str], Any]] = field(default_factory=list)
    fail_next: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    down: bool = False

    def answer(self, method: str, path: str, headers: dict[str, str], body: Any):
        self.requests.append((method, path, headers, body))
        if self.fail_next:
            status, extra = self.fail_next.pop(0)
            return status, {"error": {"code": "unavailable", "message": "try later"}}, extra
        if (method, path) == ("POST", "/api/v1/agent/cases"):
            key = headers.get("Idempotency-Key")
            if key and key in self.by_key:
                return 200, self._case_answer(self.by_key[key]), {}
            code = f"s{len(self.cases) + 10:02d}-000-000"
            self.cases[code] = {"code": code, "status": "new", "source": body["source"]}
            if key:
                self.by_key[key] = code
            return 201, self._case_answer(code), {}
        if (method, path) == ("GET", "/api/v1/agent/config"):
            return 200, {"deployment": {"id": 1, "name": "Fake"}, "group": {"name": "G"},
                         "customer_fields": ["email", "description"]}, {}
        if method == "GET" and path.startswith("/api/v1/cases/") and path.count("/") == 4:
            code = path.rsplit("/", 1)[1]
            if code in self.cases:
                return 200, self.cases[code], {}
        if method == "GET" and path.endswith("/messages"):
            return 200, {"messages": []}, {}
        return 404, {"error": {"code": "not_found", "message": "no such thing"}}, {}

    def _case_answer(self, code: str) -> dict[str, Any]:
        return {"case": self.cases[code], "case_token": f"sosc_{uuid.uuid4().hex}"}


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
    thread = threading.Thread(target=server.serve_forever, daemon=True)
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
