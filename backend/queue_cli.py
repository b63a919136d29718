"""``sos-queue``: the experts' terminal client for the SOS queue.

A pure HTTP client of the REST API (``/api/v1``): it never imports the server. Log in once per
server (``sos-queue login``), then list, show, claim, assign, connect to and close cases, or
``watch`` the change feed for new cases as they arrive.
"""

from __future__ import annotations

import json
import re
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import click

from backend.queue_client import (
    ApiError,
    Client,
    Login,
    QueueError,
    TokenStore,
    Unreachable,
    normalise_server,
)
from backend.queue_format import case_details, case_summary, case_table, event_line
from backend.queue_watch import feed_end, follow_feed, notify_event

OPEN_STATUSES = "new,pending,in_progress"
HEARTBEAT_EVERY = 20.0


@dataclass
class Queue:
    """What every command shares: the ``--server`` choice and the token store."""

    server: str | None
    store: TokenStore = field(default_factory=TokenStore)

    def login(self) -> Login:
        login = self.store.find(self.server)
        if login is None:
            if self.server:
                server = normalise_server(self.server)
                raise QueueError(
                    f"not logged in to {server}; run sos-queue login --server {server}"
                )
            raise QueueError("not logged in; run sos-queue login --server URL")
        return login

    def client(self) -> tuple[Client, Login]:
        login = self.login()
        return Client(login.server, login.token), login


class QueueGroup(click.Group):
    """Turns every :class:`QueueError` into a one-line ``Error: ...`` and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except QueueError as exc:
            raise click.ClickException(str(exc)) from None


def _set_server(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value:
        ctx.find_object(Queue).server = value


def common_options(func: Any) -> Any:
    """``--json``, plus ``--server`` so that it may also follow the command's name."""
    func = click.option("--json", "as_json", is_flag=True, help="Print JSON.")(func)
    server = click.option(
        "--server",
        expose_value=False,
        callback=_set_server,
        help="Server URL (default: SOS_SERVER, else the last login's).",
    )
    return server(func)


def output(as_json: bool, data: Any, text: str) -> None:
    click.echo(json.dumps(data, indent=2) if as_json else text)


def session_code(code: str) -> str:
    """Accept ``s12345678`` or ``S12 345 678`` for ``s12-345-678``."""
    compact = re.sub(r"[\s-]", "", code.strip().lower())
    if re.fullmatch(r"s\d{8}", compact):
        return f"{compact[:3]}-{compact[3:6]}-{compact[6:]}"
    return code.strip()


CODE = click.argument("code", callback=lambda _ctx, _param, value: session_code(value))


@click.group(cls=QueueGroup)
@click.option("--server", envvar="SOS_SERVER", help="Server URL (default: the last login's).")
@click.version_option(package_name="sos", prog_name="sos-queue")
@click.pass_context
def cli(ctx: click.Context, server: str | None) -> None:
    """Work the SOS queue from the terminal."""
    ctx.obj = Queue(server)


@cli.command()
@click.option("--username", "-u", help="Your user name (prompted if missing).")
@click.option("--password", "-p", help="Your password (prompted, hidden, if missing).")
@click.option("--token", help="Keep this existing API token (sosu_...) instead.")
@common_options
@click.pass_obj
def login(
    q: Queue, username: str | None, password: str | None, token: str | None, as_json: bool
) -> None:
    """Get an API token and keep it; this login becomes the default."""
    server = q.server
    previous = q.store.find(server)
    if server is None:
        server = previous.server if previous else click.prompt("Server", "http://127.0.0.1:5000")
    server = normalise_server(server)
    token_id = None
    if token is None:
        if username is None:
            default = previous.username if previous and previous.server == server else None
            username = click.prompt("Username", default=default)
        if password is None:
            password = click.prompt("Password", hide_input=True)
        name = f"sos-queue on {socket.gethostname()}"[:100]
        body = {"username": username, "password": password, "name": name}
        created = Client(server).call("POST", "/auth/token", json_body=body)
        token, token_id = created["token"], created.get("id")
    try:
        me = Client(server, token).call("GET", "/me")
    except ApiError as exc:
        raise QueueError(f"{server} refused that token") if exc.status == 401 else exc from None
    q.store.save(Login(server, me["username"], token, token_id))
    data = {"server": server, "username": me["username"], "token_id": token_id}
    text = f"Logged in to {server} as {me['display_name']} ({me['username']})."
    output(as_json, data, text)


@cli.command()
@common_options
@click.pass_obj
def logout(q: Queue, as_json: bool) -> None:
    """Revoke the token on the server and forget it here."""
    login = q.login()
    revoked = False
    if login.token_id is not None:
        try:
            Client(login.server, login.token).call("DELETE", f"/tokens/{login.token_id}")
            revoked = True
        except ApiError as exc:
            revoked = exc.status in (401, 404)  # already revoked or deleted
        except Unreachable as exc:
            click.echo(f"warning: {exc}; the token was not revoked on the server", err=True)
    q.store.forget(login)
    data = {"server": login.server, "username": login.username, "revoked": revoked}
    kept = "" if revoked else "; the token itself was not revoked"
    output(as_json, data, f"Logged out of {login.server} ({login.username}){kept}.")


@cli.command()
@common_options
@click.pass_obj
def whoami(q: Queue, as_json: bool) -> None:
    """Who you are logged in as, and where."""
    client, login = q.client()
    me = client.call("GET", "/me")
    groups = ", ".join(g["name"] for g in me.get("groups", [])) or "none"
    text = (
        f"{me['display_name']} ({me['username']}, {me['role']}) on {login.server}; "
        f"{me['availability']}; groups: {groups}"
    )
    output(as_json, {"server": login.server, **me}, text)


@cli.command()
@click.argument("state", type=click.Choice(["online", "away"]))
@common_options
@click.pass_obj
def availability(q: Queue, state: str, as_json: bool) -> None:
    """Say you are online or away (routing skips experts who are away)."""
    client, _ = q.client()
    me = client.call("PATCH", "/me", json_body={"availability": state})
    output(as_json, me, f"You are {me['availability']}.")


def _group_id(client: Client, group: str) -> int:
    if group.isdigit():
        return int(group)
    groups = client.call("GET", "/groups").get("groups", [])
    for g in groups:
        if g["name"].lower() == group.lower():
            return int(g["id"])
    names = ", ".join(g["name"] for g in groups) or "none"
    raise QueueError(f"no group named {group!r}; yours: {names}")


@cli.command("list")
@click.option(
    "--status",
    "-s",
    default=OPEN_STATUSES,
    show_default=True,
    help="Comma list of new, pending, in_progress, closed, expired; or 'all'.",
)
@click.option("--group", "-g", help="Group id or name.")
@click.option("--assignee", "-a", help="me, none, or a user name.")
@click.option("--search", "-q", help="Text in the code, customer name or e-mail, description.")
@click.option("--limit", "-n", type=click.IntRange(1, 1000), default=50, show_default=True)
@common_options
@click.pass_obj
def list_cases(
    q: Queue,
    status: str,
    group: str | None,
    assignee: str | None,
    search: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """A table of cases, newest first."""
    client, _ = q.client()
    params: dict[str, Any] = {"assignee": assignee, "q": search}
    params["status"] = None if status == "all" else status
    params["group"] = _group_id(client, group) if group else None
    cases: list[dict[str, Any]] = []
    answer: dict[str, Any] = {}
    while len(cases) < limit:
        params["limit"] = min(100, limit - len(cases))
        answer = client.call("GET", "/cases", params=params)
        cases += answer["cases"]
        if not answer.get("next_cursor"):
            break
        params["cursor"] = answer["next_cursor"]
    counts = answer.get("counts", {})
    summary = ", ".join(
        f"{counts.get(s, 0)} {s.replace('_', ' ')}" for s in OPEN_STATUSES.split(",")
    )
    text = (case_table(cases) if cases else "No cases.") + f"\nOpen: {summary}"
    output(as_json, {"cases": cases, "counts": counts}, text)


@cli.command()
@CODE
@click.option(
    "--messages",
    "-m",
    "shown",
    type=click.IntRange(0),
    default=10,
    show_default=True,
    help="How many of the last messages to print.",
)
@common_options
@click.pass_obj
def show(q: Queue, code: str, shown: int, as_json: bool) -> None:
    """A case's details and its last messages."""
    client, _ = q.client()
    case = client.call("GET", client.case_path(code))
    messages = client.call("GET", client.case_path(code, "messages"))["messages"]
    output(as_json, {"case": case, "messages": messages}, case_details(case, messages, shown))


@cli.command()
@CODE
@common_options
@click.pass_obj
def claim(q: Queue, code: str, as_json: bool) -> None:
    """Take a case, only if nobody has it yet."""
    client, _ = q.client()
    case = client.call("POST", client.case_path(code, "claim"))
    output(as_json, case, f"{case['code']} is yours: {case_summary(case)}")


@cli.command()
@CODE
@click.argument("user", required=False)
@click.option("--none", "unassign", is_flag=True, help="Unassign the case.")
@common_options
@click.pass_obj
def assign(q: Queue, code: str, user: str | None, unassign: bool, as_json: bool) -> None:
    """Give a case to USER (a user name, or 'me'), or to nobody with --none."""
    if unassign == (user is not None):
        raise click.UsageError("name a USER (or 'me'), or pass --none to unassign")
    client, _ = q.client()
    case = client.call("POST", client.case_path(code, "assign"), json_body={"assignee": user})
    who = case["assignee"]["username"] if case.get("assignee") else "nobody"
    output(as_json, case, f"{case['code']} → {who}")


def _presence(q: Queue, code: str, action: str) -> tuple[Client, dict[str, Any]]:
    client, _ = q.client()
    return client, client.call("POST", client.case_path(code, action))


@cli.command()
@CODE
@click.option("--stay", is_flag=True, help="Keep the connection (heartbeats) until Ctrl-C.")
@common_options
@click.pass_obj
def connect(q: Queue, code: str, stay: bool, as_json: bool) -> None:
    """Connect to the customer's session as the expert."""
    client, case = _presence(q, code, "connect")
    customer = "connected" if case.get("customer_connected") else "not connected"
    output(as_json, case, f"Connected to {case['code']} ({case['status']}); customer {customer}.")
    if not stay:
        return
    click.echo("Staying connected; Ctrl-C to disconnect.", err=True)
    try:
        while True:
            time.sleep(HEARTBEAT_EVERY)
            try:
                client.call("POST", client.case_path(code, "heartbeat"))
            except Unreachable as exc:
                click.echo(f"{exc}; retrying", err=True)
    except KeyboardInterrupt:
        client.call("POST", client.case_path(code, "disconnect"))
        click.echo(f"Disconnected from {code}.", err=True)


@cli.command()
@CODE
@common_options
@click.pass_obj
def disconnect(q: Queue, code: str, as_json: bool) -> None:
    """Leave the customer's session."""
    _, case = _presence(q, code, "disconnect")
    output(as_json, case, f"Disconnected from {case['code']} ({case['status']}).")


@cli.command()
@CODE
@common_options
@click.pass_obj
def close(q: Queue, code: str, as_json: bool) -> None:
    """Close a case."""
    _, case = _presence(q, code, "close")
    output(as_json, case, f"Closed {case['code']}.")


@cli.command()
@click.option(
    "--all", "show_all", is_flag=True, help="Print every event, not only new cases and assignments."
)
@click.option("--notify", "desktop", is_flag=True, help="Desktop notifications (notify-send).")
@click.option("--max-events", type=click.IntRange(1), help="Stop after printing N events.")
@click.option("--timeout", type=click.FloatRange(0, min_open=True), help="Stop after SECONDS.")
@common_options
@click.pass_obj
def watch(
    q: Queue,
    show_all: bool,
    desktop: bool,
    max_events: int | None,
    timeout: float | None,
    as_json: bool,
) -> None:
    """Print new cases and assignments as they happen (Ctrl-C stops)."""
    client, login = q.client()
    deadline = None if timeout is None else time.monotonic() + timeout
    printed = 0
    try:
        cursor = feed_end(client)
        click.echo(f"Watching {login.server} as {login.username}; Ctrl-C stops.", err=True)
        for event in follow_feed(client, cursor, deadline, lambda msg: click.echo(msg, err=True)):
            if not show_all and event["type"] not in ("case.created", "case.assigned"):
                continue
            case = None
            if event["type"] == "case.created":
                try:
                    case = client.call("GET", client.case_path(event["case_code"]))
                except QueueError:
                    pass  # deleted since, or out of reach: print what the event says
            if as_json:
                click.echo(json.dumps({**event, "case": case} if case else event))
            else:
                click.echo(event_line(event, case))
            sys.stdout.flush()
            if desktop:
                notify_event(event, case, login.username)
            printed += 1
            if max_events is not None and printed >= max_events:
                return
    except KeyboardInterrupt:
        return


def main() -> None:
    """The ``sos-queue`` console script."""
    cli(prog_name="sos-queue")


if __name__ == "__main__":
    main()
