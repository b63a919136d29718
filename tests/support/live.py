"""A real ``sos-backend serve`` process for end-to-end tests.

``start_backend(tmp_path)`` migrates a fresh database, seeds an admin, a supporter, a group and
a deployment, starts the server on a free port and waits until it answers ``/healthz``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from backend.app import create_app
from backend.migrate import upgrade
from backend.services import accounts, deployments
from backend.settings import Settings

ADMIN_PASSWORD = "admin-password-1"
SUPPORTER_PASSWORD = "alice-password-1"


def running(pid: int) -> bool:
    """Whether a process is alive (Linux: not gone, not a zombie)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveBackend:
    instance_path: Path
    database_url: str
    port: int
    env: dict[str, str]
    admin_token: str = ""
    supporter_token: str = ""
    deployment_key: str = ""
    deployment_id: int = 0
    group_id: int = 0
    serve_args: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.instance_path / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> LiveBackend:
        """Start (or restart) the server on the same database and port."""
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the handle
            self.process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "backend.cli", "serve", "--port", str(self.port)),
                    *self.serve_args,
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"backend exited early:\n{self.log_path.read_text()[-3000:]}")
            try:
                if requests.get(self.url + "/healthz", timeout=1).ok:
                    return self
            except requests.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"backend did not answer in {timeout} s")

    def stop(self) -> None:
        """Stop the server gracefully (SIGTERM), then forcefully if it lingers."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def worker_pids(self) -> list[int]:
        """The processes ``serve --workers`` forked (Linux); empty without workers."""
        assert self.process is not None
        pid = self.process.pid
        try:
            return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except FileNotFoundError:
            return []

    def kill(self) -> None:
        """SIGKILL the server, as a crash would."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def api(self, method: str, path: str, token: str | None = None, **kwargs: Any):
        headers = kwargs.pop("headers", {})
        headers["Authorization"] = f"Bearer {token or self.admin_token}"
        kwargs.setdefault("timeout", 30)
        return requests.request(method, self.url + "/api/v1" + path, headers=headers, **kwargs)


def start_backend(
    tmp_path: Path,
    *,
    database_url: str | None = None,
    env: dict[str, str] | None = None,
    serve_args: tuple[str, ...] = (),
) -> LiveBackend:
    """Seed a fresh database and start a server on it; call ``stop()`` when done."""
    instance = tmp_path / "backend-instance"
    instance.mkdir(parents=True, exist_ok=True)
    server_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SOS_") or k == "SOS_TEST_POSTGRES_URL"
    }
    server_env.update(
        SOS_INSTANCE_PATH=str(instance),
        SOS_SECRET_KEY="live-test-secret-key-0123456789abcdef",
        PYTHONUNBUFFERED="1",
    )
    if database_url:
        server_env["SOS_DATABASE_URL"] = database_url
    server_env.update(env or {})
    settings = Settings.from_env(server_env, password_hash_fast=True)
    app = create_app(settings)
    rt = app.extensions["sos"]
    upgrade(rt.store.engine)
    live = LiveBackend(
        instance, settings.resolved_database_url, free_port(), server_env, serve_args=serve_args
    )
    ctx = rt.context()
    with rt.store.write() as s:
        group = accounts.create_group(s, ctx, name="Helpdesk")
        admin = accounts.create_user(
            s,
            ctx,
            username="admin",
            password=ADMIN_PASSWORD,
            role="admin",
            display_name="Ada Admin",
        )
        alice = accounts.create_user(
            s,
            ctx,
            username="alice",
            password=SUPPORTER_PASSWORD,
            role="supporter",
            display_name="Alice Martin",
            group_ids=[group.id],
        )
        deployment, key = deployments.create_deployment(
            s, ctx, name="Test agent", group_id=group.id
        )
        live.admin_token = accounts.create_token(s, ctx, admin, "tests")[1]
        live.supporter_token = accounts.create_token(s, ctx, alice, "tests")[1]
        live.deployment_key, live.deployment_id, live.group_id = key, deployment.id, group.id
    rt.close()
    return live.start()
