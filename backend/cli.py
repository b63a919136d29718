"""``sos-backend``: serve the queue and administer it from a terminal."""

from __future__ import annotations

import errno
import json
import logging
import os
import secrets
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from flask import Flask

from backend.app import Runtime, create_app
from backend.errors import SOSError
from backend.settings import Settings, SettingsError

log = logging.getLogger("sos.backend")


def _make_app() -> Flask:
    try:
        return create_app(Settings.from_env())
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


@contextmanager
def _runtime() -> Iterator[Runtime]:
    app = _make_app()
    runtime: Runtime = app.extensions["sos"]
    try:
        yield runtime
    except SOSError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        runtime.close()


def _emit(as_json: bool, data: dict[str, Any], text: str) -> None:
    click.echo(json.dumps(data) if as_json else text)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sos")
def main() -> None:
    """SOS backend: the support queue server and its administration.

    Settings come from SOS_* environment variables: SOS_DATABASE_URL (default: SQLite in
    ./instance), SOS_SECRET_KEY, SOS_CASE_TTL, SOS_PRESENCE_TIMEOUT, SOS_DEBUG.
    """


@main.command("init-db")
def init_db() -> None:
    """Create or upgrade the database schema (same as migrate)."""
    _migrate()


@main.command("migrate")
def migrate_command() -> None:
    """Apply pending schema migrations."""
    _migrate()


def _migrate() -> None:
    from backend.migrate import upgrade

    with _runtime() as rt:
        upgrade(rt.store.engine)
        click.echo(f"database is up to date ({rt.store.engine.url.render_as_string()})")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--threads",
    default=64,
    show_default=True,
    type=click.IntRange(4, 1024),
    help="Worker threads; each open long-poll holds one for up to 25 s.",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Processes sharing the port, each with --threads threads; one process uses one core. "
    "Needs fork (Linux, macOS).",
)
@click.option("--demo", is_flag=True, help="Seed demo users, a group and an agent key first.")
def serve(host: str, port: int, threads: int, workers: int, demo: bool) -> None:
    """Serve the API and the console with waitress."""
    import waitress

    from backend.migrate import upgrade
    from backend.serving import (
        exit_on_signal,
        listen_socket,
        serve_workers,
        start_background,
        waitress_options,
    )
    from backend.wakeups import PeerWakeups

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if workers > 1 and not hasattr(os, "fork"):  # pragma: no cover - Windows
        raise click.ClickException("--workers needs fork (Linux, macOS); leave it at 1 here")
    app = _make_app()
    runtime: Runtime = app.extensions["sos"]
    upgrade(runtime.store.engine)
    if demo:
        _seed_demo(runtime, as_json=False)
    try:
        sock = listen_socket(host, port)
    except OSError as exc:
        runtime.close()
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}"
            + (" (another server is using the port?)" if exc.errno == errno.EADDRINUSE else "")
        ) from None
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    processes = f", {workers} workers × {threads} threads" if workers > 1 else ""
    click.echo(
        f"SOS backend on {url}  (console {url}/console, API {url}/api/v1/openapi.json){processes}"
    )
    if workers == 1:
        signal.signal(signal.SIGTERM, exit_on_signal)
        try:
            start_background(runtime)
            waitress.serve(app, sockets=[sock], **waitress_options(threads))
        finally:
            sock.close()
            runtime.close()
        return
    # Each worker opens its own connections and threads; none of the parent's may run while
    # it forks.
    runtime.close(wait=3.0)
    if runtime.settings.ratelimit_enabled and not runtime.settings.ratelimit_storage:
        log.warning(
            "rate limits are counted per worker (%d workers); set SOS_RATELIMIT_STORAGE "
            "(e.g. redis://127.0.0.1:6379) to share them",
            workers,
        )
    peers = runtime.peers
    # A worker killed outright leaves its wake-up registration: its supervisor removes it.
    on_exit = (lambda pid: PeerWakeups.forget(peers.folder, pid)) if peers is not None else None
    try:
        sys.exit(
            serve_workers(
                _make_app,
                sock,
                threads=threads,
                workers=workers,
                on_exit=on_exit,
            )
        )
    finally:
        sock.close()


@main.command()
def expire() -> None:
    """Record expired cases and lost connections, and escalate cases, now (idempotent)."""
    from backend.services.presence import sweep
    from backend.services.routing import escalate

    with _runtime() as rt, rt.store.write() as s:
        total = {"expired": 0, "timed_out": 0}
        while True:
            counts = sweep(s, rt.context())
            for key, value in counts.items():
                total[key] += value
            if sum(counts.values()) == 0:
                break
    with _runtime() as rt, rt.store.write() as s:
        escalated = escalate(s, rt.context())
    click.echo(
        f"{total['expired']} case(s) expired, {total['timed_out']} connection(s) timed out, "
        f"{escalated} case(s) escalated"
    )


@main.command("create-group")
@click.argument("name")
@click.option("--description", default=None)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def create_group(name: str, description: str | None, as_json: bool) -> None:
    """Create a group (a queue)."""
    from backend.services import accounts

    with _runtime() as rt, rt.store.write() as s:
        group = accounts.create_group(s, rt.context(), name=name, description=description)
        _emit(as_json, {"id": group.id, "name": group.name}, f"group {group.name} (id {group.id})")


@main.command("create-user")
@click.argument("username")
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="Prompted for when not given.",
)
@click.option("--role", type=click.Choice(["admin", "supporter"]), default="supporter")
@click.option("--display-name", default=None)
@click.option("--email", default=None)
@click.option("--group", "groups", multiple=True, help="Group name; repeat for several.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def create_user(
    username: str,
    password: str,
    role: str,
    display_name: str | None,
    email: str | None,
    groups: tuple[str, ...],
    as_json: bool,
) -> None:
    """Create an admin or a supporter."""
    from backend.services import accounts

    if len(password) < 8:
        raise click.BadParameter("use at least 8 characters", param_hint="--password")
    with _runtime() as rt, rt.store.write() as s:
        group_ids = [accounts.find_group(s, name).id for name in groups]
        user = accounts.create_user(
            s,
            rt.context(),
            username=username,
            password=password,
            role=role,
            display_name=display_name,
            email=email,
            group_ids=group_ids,
        )
        _emit(
            as_json,
            {"id": user.id, "username": user.username, "role": user.role},
            f"{user.role} {user.username} (id {user.id})",
        )


@main.command("create-deployment")
@click.option("--name", required=True, help="Name of the branded agent.")
@click.option("--group", required=True, help="Group that receives its cases.")
@click.option("--default-assignee", default=None, help="Username; unassigned when omitted.")
@click.option(
    "--fields",
    default="name,email,description",
    show_default=True,
    help="Customer fields the agent asks for.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def create_deployment(
    name: str, group: str, default_assignee: str | None, fields: str, as_json: bool
) -> None:
    """Register a branded agent and print its deployment key (shown once)."""
    from backend.services import accounts, deployments

    wanted = [f.strip() for f in fields.split(",") if f.strip()]
    unknown = set(wanted) - set(deployments.CUSTOMER_FIELDS)
    if unknown:
        raise click.BadParameter(
            f"unknown field(s) {', '.join(sorted(unknown))}; use name, email, description",
            param_hint="--fields",
        )
    with _runtime() as rt, rt.store.write() as s:
        assignee_id = accounts.find_user(s, default_assignee).id if default_assignee else None
        deployment, key = deployments.create_deployment(
            s,
            rt.context(),
            name=name,
            group_id=accounts.find_group(s, group).id,
            default_assignee_id=assignee_id,
            customer_fields=wanted,
        )
        _emit(
            as_json,
            {"id": deployment.id, "name": deployment.name, "key": key},
            f"deployment {deployment.name} (id {deployment.id})\n"
            f"key (shown once; build it into the agent): {key}",
        )


@main.command("create-token")
@click.argument("username")
@click.option("--name", default="cli", show_default=True, help="A label for the token.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def create_token(username: str, name: str, as_json: bool) -> None:
    """Create an API token for a user and print it (shown once)."""
    from backend.services import accounts

    with _runtime() as rt, rt.store.write() as s:
        token, secret = accounts.create_token(
            s, rt.context(), accounts.find_user(s, username), name
        )
        _emit(as_json, {"id": token.id, "token": secret}, secret)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def demo(as_json: bool) -> None:
    """Seed a first look: a group, an admin, a supporter, an agent key and a few cases."""
    from backend.migrate import upgrade

    with _runtime() as rt:
        upgrade(rt.store.engine)
        _seed_demo(rt, as_json=as_json)


def _seed_demo(rt: Runtime, *, as_json: bool) -> None:
    from backend.services import accounts, deployments
    from backend.services.cases import NewCase, open_agent_case
    from backend.services.conversation import post_message

    ctx = rt.context()
    passwords = {"admin": secrets.token_urlsafe(9), "alice": secrets.token_urlsafe(9)}
    with rt.store.write() as s:
        try:
            group = accounts.find_group(s, "Helpdesk")
        except SOSError:
            group = accounts.create_group(s, ctx, name="Helpdesk", description="Demo queue")
        users = {}
        for username, role, display in (
            ("admin", "admin", "Ada Admin"),
            ("alice", "supporter", "Alice Martin"),
        ):
            try:
                user = accounts.find_user(s, username)
                accounts.update_user(s, ctx, user, {"password": passwords[username]})
            except SOSError:
                user = accounts.create_user(
                    s,
                    ctx,
                    username=username,
                    password=passwords[username],
                    role=role,
                    display_name=display,
                    group_ids=[group.id],
                )
            users[username] = user
        name = f"Demo agent {secrets.token_hex(2)}"
        deployment, key = deployments.create_deployment(s, ctx, name=name, group_id=group.id)
        from backend.services.access import Principal

        for customer, text in (
            ("Bob Durand", "The printer on floor 2 only prints blank pages."),
            ("Carla Souza", "Outlook keeps asking for my password."),
        ):
            case, _token, _ = open_agent_case(
                s,
                ctx,
                deployment,
                source="sos_button",
                details=NewCase(customer_name=customer, description=text, device_os="Windows 11"),
                idempotency_key=None,
            )
            s.flush()
            post_message(s, ctx, Principal(kind="case", case_id=case.id), case.code, text)
    data = {"passwords": passwords, "deployment_key": key, "group": "Helpdesk"}
    _emit(
        as_json,
        data,
        "Demo data ready (passwords change each time demo runs):\n"
        f"  admin / {passwords['admin']}   (admin)\n"
        f"  alice / {passwords['alice']}   (supporter, group Helpdesk)\n"
        f"  agent deployment key: {key}",
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
