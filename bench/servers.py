"""Databases, seed data and real server processes for the benchmarks.

A :class:`Database` is a fresh SQLite file or a private PostgreSQL schema (dropped afterwards).
:func:`seed` migrates it and creates a group, an admin, experts and a deployment through the
services, the way ``tests/support/live.py`` does. :class:`ServerProcess` starts ``sos-backend
serve`` (waitress) or gunicorn on it and is always stopped by its own process handle.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import requests
from flask import Flask
from sqlalchemy import create_engine, text

from backend.app import Runtime, create_app
from backend.migrate import upgrade
from backend.services import accounts, deployments
from backend.settings import Settings
from bench.harness import REPO, Options

SECRET_KEY = "bench-secret-key-0123456789abcdef-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Database:
    """Where one benchmark's data lives, and the environment that points a server at it."""

    kind: str  # sqlite | postgres
    url: str
    instance: Path
    schema: str | None = None

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SOS_")}
        env.update(
            SOS_INSTANCE_PATH=str(self.instance),
            SOS_DATABASE_URL=self.url,
            SOS_SECRET_KEY=SECRET_KEY,
            # Benchmarks measure the work, not the limits (harmless where the setting is absent).
            SOS_RATELIMIT_ENABLED="0",
            PYTHONUNBUFFERED="1",
        )
        return env

    def settings(self) -> Settings:
        return Settings.from_env(self.env, password_hash_fast=True)

    def app(self) -> Flask:
        return create_app(self.settings())


@contextmanager
def database(kind: str, workdir: Path, options: Options) -> Iterator[Database]:
    """A fresh SQLite file in ``workdir``, or a private schema dropped on the way out."""
    instance = workdir / f"instance-{kind}-{uuid.uuid4().hex[:6]}"
    instance.mkdir(parents=True)
    if kind == "sqlite":
        yield Database("sqlite", f"sqlite:///{instance / 'sos.sqlite3'}", instance)
        return
    schema = f"sos_bench_{uuid.uuid4().hex[:12]}"
    engine = create_engine(options.postgres_url)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in options.postgres_url else "?"
    url = f"{options.postgres_url}{separator}options={quote(f'-csearch_path={schema}')}"
    try:
        yield Database("postgres", url, instance, schema)
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


def postgres_reachable(options: Options) -> str | None:
    """None when the PostgreSQL server answers; otherwise why not."""
    try:
        engine = create_engine(options.postgres_url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure means it cannot be used
        return f"PostgreSQL not reachable at {options.postgres_url}: {exc.__class__.__name__}"
    return None


@dataclass
class Seed:
    """What :func:`seed` created: the credentials the clients need."""

    group_id: int
    deployment_id: int
    deployment_key: str
    admin_token: str
    experts: list[tuple[str, str]] = field(default_factory=list)  # (username, token)


@contextmanager
def runtime(db: Database) -> Iterator[Runtime]:
    rt: Runtime = db.app().extensions["sos"]
    try:
        yield rt
    finally:
        rt.close()


def seed(db: Database, *, experts: int = 1) -> Seed:
    """Migrate the database; create a group, an admin, ``experts`` supporters and a deployment."""
    with runtime(db) as rt:
        upgrade(rt.store.engine)
        ctx = rt.context()
        with rt.store.write() as s:
            group = accounts.create_group(s, ctx, name="Helpdesk")
            admin = accounts.create_user(
                s, ctx, username="admin", password=None, role="admin", display_name="Ada Admin"
            )
            deployment, key = deployments.create_deployment(
                s, ctx, name="Bench agent", group_id=group.id
            )
            result = Seed(
                group_id=group.id,
                deployment_id=deployment.id,
                deployment_key=key,
                admin_token=accounts.create_token(s, ctx, admin, "bench")[1],
            )
            for n in range(experts):
                user = accounts.create_user(
                    s,
                    ctx,
                    username=f"expert{n:02d}",
                    password=None,
                    display_name=f"Expert {n:02d}",
                    group_ids=[group.id],
                )
                result.experts.append((user.username, accounts.create_token(s, ctx, user, "b")[1]))
    return result


# --- server processes ----------------------------------------------------------------------


def waitress_argv(port: int, threads: int = 64, workers: int = 1) -> list[str]:
    """``sos-backend serve``: waitress with ``workers`` processes of ``threads`` threads."""
    return [
        sys.executable,
        "-m",
        "backend.cli",
        "serve",
        "--port",
        str(port),
        "--threads",
        str(threads),
        "--workers",
        str(workers),
    ]


def gunicorn_argv(port: int, workers: int = 2, threads: int = 16) -> list[str]:
    """gunicorn with threaded workers on ``backend.wsgi:app``."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--worker-class",
        "gthread",
        "--bind",
        f"127.0.0.1:{port}",
        "--graceful-timeout",
        "5",
        "backend.wsgi:app",
    ]


class ServerProcess:
    """One server process on 127.0.0.1; ``stop()`` ends it by its own handle, never by name."""

    def __init__(self, argv: list[str], db: Database, port: int, name: str) -> None:
        self.argv = argv
        self.env = db.env
        self.port = port
        self.log_path = db.instance / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> ServerProcess:
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the handle
            self.process = subprocess.Popen(
                self.argv, env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_tail()}")
            try:
                if requests.get(self.url + "/healthz", timeout=2).ok:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not answer /healthz in {timeout} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM (a graceful stop), then SIGKILL if it lingers."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(15)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


@contextmanager
def serving(*servers: ServerProcess) -> Iterator[list[ServerProcess]]:
    """Start the servers; stop every one that started, whatever happens."""
    with ExitStack() as stack:
        for server in servers:
            stack.callback(server.stop)
            server.start()
        yield list(servers)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
