"""Benchmark 2: the queue's first page with 1k, 100k and 1M cases in the database.

Cases are bulk-inserted with SQLAlchemy Core (``insert(Case)``, executemany batches); the
groups, users and deployment they refer to are made through the services (no events: the list
does not read them). The data is shaped like a long-running installation: ids follow time (one
case a minute), the newest :data:`LIVE` cases are open, every older one is closed (nine in ten)
or expired; cases are spread over :data:`GROUPS` groups. One supporter belongs to one group,
another to two.

One database grows from the smallest size to the largest: the older history is inserted
*below* the existing ids, so the newest cases (the first page) stay the same at every size.
SQLite is left as the backend leaves it (no ``ANALYZE``); PostgreSQL gets the ``VACUUM
(ANALYZE)`` that autovacuum would soon run. Requests go through the Flask test client (in
process: the application's and the database's work, without HTTP). The figure is p95 at the
largest size ÷ p95 at the smallest, for each request; the target is at most 1.5. For a request
that misses it, its costliest SQL statements are re-run alone and explained (EXPLAIN QUERY
PLAN on SQLite, EXPLAIN on PostgreSQL).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import Engine, event, insert, text

from backend.migrate import upgrade
from backend.models import Case
from backend.services import accounts, deployments
from bench.harness import Options, Result, ms, percentile
from bench.servers import Database, bearer, database

NAME = "queue-page"
TARGET = 1.5
GROUPS = 8
LIVE = 200  # open cases: the newest ones, a few hours' worth
SPACING = timedelta(minutes=1)
TTL = timedelta(hours=24)
BATCH = 10_000
SOURCES = ("sos_button", "first_launch", "sos_button", "api", "manual")


def case_code(case_id: int) -> str:
    """A distinct session code per id (multiplying by a number prime to 10⁸ is a bijection)."""
    digits = f"{(case_id * 48_271 + 12_345) % 10**8:08d}"
    return f"s{digits[:2]}-{digits[2:5]}-{digits[5:]}"


class History:
    """The synthetic history: which rows to insert to grow the database to a size."""

    def __init__(
        self, top_id: int, anchor: datetime, groups: list[int], users: list[int], deployment: int
    ) -> None:
        self.top_id = top_id  # the newest case's id; rank r (0 = newest) has id top_id - r
        self.anchor = anchor
        self.groups = groups
        self.users = users
        self.deployment_id = deployment
        self.size = 0

    def row(self, rank: int) -> dict[str, Any]:
        created = self.anchor - rank * SPACING
        source = SOURCES[rank % len(SOURCES)]
        user = self.users[rank % len(self.users)]
        live = rank < LIVE
        expired = not live and created + TTL <= self.anchor and rank % 10 == 7
        closed = not live and not expired
        assigned = closed or expired or rank % 2 == 1
        return {
            "id": self.top_id - rank,
            "code": case_code(self.top_id - rank),
            "group_id": self.groups[rank % len(self.groups)],
            "deployment_id": None if source == "manual" else self.deployment_id,
            "assignee_id": user if assigned else None,
            "assigned_at": created + timedelta(minutes=2) if assigned else None,
            "assignee_connected": closed,
            "topic": None,
            "source": source,
            "customer_name": f"Customer {rank % 9973}",
            "customer_email": f"customer{rank % 9973}@example.com",
            "description": "The printer on floor 2 only prints blank pages.",
            "device_hostname": f"pc-{rank % 5000:04d}",
            "device_os": "Windows 11 23H2",
            "device_agent_version": "1.0.0",
            "device_id": f"device-{rank % 5000:04d}",
            "idempotency_key": None,
            "customer_joined": source != "manual",
            "expert_id": user if closed else None,
            "expert_seen_at": None,
            # A third of the open cases have their customer connected (until the time-out).
            "customer_seen_at": self.anchor if live and rank % 3 == 1 else None,
            "created_at": created,
            "updated_at": created + timedelta(minutes=15) if closed else created,
            "expires_at": created + TTL,
            "closed_at": created + timedelta(minutes=15) if closed else None,
            "closed_by": "expert" if closed else None,
            "expiry_recorded": expired,
            "deleted_at": None,
        }

    def grow(self, engine: Engine, size: int) -> float:
        """Insert the ranks [current size, size); returns the seconds it took."""
        began = time.perf_counter()
        for low in range(self.size, size, BATCH):
            rows = [self.row(rank) for rank in range(low, min(low + BATCH, size))]
            with engine.begin() as conn:
                conn.execute(insert(Case), rows)
        if engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                # What autovacuum would do soon after a bulk insert; done now, so that it does
                # not run (and compete for the CPU) while the requests are timed.
                conn.execute(text("VACUUM (ANALYZE) cases"))
        else:
            with engine.begin() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        self.size = size
        return time.perf_counter() - began


def _setup(db: Database, top_id: int) -> tuple[Flask, History, dict[str, str]]:
    app = db.app()
    rt = app.extensions["sos"]
    upgrade(rt.store.engine)
    ctx = rt.context()
    with rt.store.write() as s:
        groups = [accounts.create_group(s, ctx, name=f"Queue {n}").id for n in range(GROUPS)]
        admin = accounts.create_user(s, ctx, username="admin", password=None, role="admin")
        alice = accounts.create_user(
            s, ctx, username="alice", password=None, display_name="Alice", group_ids=[groups[0]]
        )
        bob = accounts.create_user(
            s, ctx, username="bob", password=None, display_name="Bob", group_ids=groups[:2]
        )
        experts = [
            accounts.create_user(
                s, ctx, username=f"expert{n}", password=None, group_ids=[groups[n % GROUPS]]
            ).id
            for n in range(16)
        ]
        deployment, _key = deployments.create_deployment(
            s, ctx, name="Bench agent", group_id=groups[0]
        )
        tokens = {
            "admin": accounts.create_token(s, ctx, admin, "bench")[1],
            "supporter": accounts.create_token(s, ctx, alice, "bench")[1],
            "supporter2": accounts.create_token(s, ctx, bob, "bench")[1],
        }
    history = History(top_id, ctx.now, groups, [alice.id, *experts], deployment.id)
    return app, history, tokens


WHO = {
    "admin": "admin",
    "supporter": "supporter (1 group)",
    "supporter2": "supporter (2 groups)",
}
PAGE = "/api/v1/cases?limit=50"
REQUESTS = [
    (f"{WHO[who]}{suffix}", who, PAGE + query)
    for suffix, query in (("", ""), (", status=new", "&status=new"))
    for who in WHO
]


def _time_requests(
    app: Flask, tokens: dict[str, str], repeat: int, budget: float
) -> dict[str, list[float]]:
    """Time every request ``repeat`` times, or as often as ``budget`` seconds each allow (at
    least 10). The requests take turns, so a burst of load from elsewhere hits them alike."""
    client = app.test_client()
    timings: dict[str, list[float]] = {label: [] for label, _, _ in REQUESTS}
    for _label, who, path in REQUESTS:
        for _ in range(10):  # warm the caches; not counted
            client.get(path, headers=bearer(tokens[who]))
    deadline = time.perf_counter() + budget * len(REQUESTS)
    for turn in range(repeat):
        if turn >= 10 and time.perf_counter() > deadline:
            break
        for label, who, path in REQUESTS:
            began = time.perf_counter()
            response = client.get(path, headers=bearer(tokens[who]))
            timings[label].append(time.perf_counter() - began)
            if response.status_code != 200:
                raise RuntimeError(f"{path} as {who}: {response.status_code} {response.data!r}")
    return timings


def statement_costs(app: Flask, token: str, path: str, top: int = 2) -> list[str]:
    """The request's costliest SQL statements, each re-run alone (with its rows fetched)
    and explained (EXPLAIN QUERY PLAN on SQLite, EXPLAIN on PostgreSQL)."""
    engine: Engine = app.extensions["sos"].store.engine
    seen: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, params))

    event.listen(engine, "before_cursor_execute", record)
    try:
        app.test_client().get(path, headers=bearer(token))
    finally:
        event.remove(engine, "before_cursor_execute", record)
    sqlite = engine.dialect.name == "sqlite"
    costs = []
    with engine.connect() as conn:
        for statement, params in seen:
            began = time.perf_counter()
            conn.exec_driver_sql(statement, params).fetchall()
            seconds = time.perf_counter() - began
            rows = conn.exec_driver_sql(
                ("EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN ") + statement, params
            ).fetchall()
            steps = [(row[3] if sqlite else row[0]).strip() for row in rows]
            # Joins on a primary key cost one lookup per row: leave them out of the summary.
            plan = " / ".join(s for s in steps if "PRIMARY KEY (rowid=?) LEFT-JOIN" not in s)
            costs.append((seconds, statement, plan))
        conn.rollback()
    costs.sort(key=lambda item: item[0], reverse=True)
    lines = []
    for seconds, statement, plan in costs[:top]:
        sql = " ".join(statement.split())
        sql = sql if len(sql) <= 160 else sql[:110] + " … " + sql[-50:]
        lines.append(f"{ms(seconds)}: `{sql}`; plan: {plan[:600]}")
    return lines


def _result(
    config: str,
    request: tuple[str, str, str],
    per_size: dict[int, dict[str, list[float]]],
    explain: Callable[[], list[str]],
) -> Result:
    label, who, path = request
    sizes = sorted(per_size)
    small = percentile(per_size[sizes[0]][label], 95)
    large = percentile(per_size[sizes[-1]][label], 95)
    ratio = large / small
    details = [
        f"`GET {path}` as {WHO[who]}: "
        + ", ".join(
            f"{size:,}: p50 {ms(percentile(per_size[size][label], 50))} "
            f"p95 {ms(percentile(per_size[size][label], 95))} "
            f"({len(per_size[size][label])} requests)"
            for size in sizes
        )
    ]
    if ratio > TARGET:
        details += [f"costliest SQL at {sizes[-1]:,} cases, {line}" for line in explain()]
    return Result(
        "2. queue first page",
        f"{config}, {label}",
        f"{ratio:.2f} (p95 {ms(small)} at {sizes[0]:,} → {ms(large)} at {sizes[-1]:,})",
        f"p95 {sizes[-1]:,} ÷ {sizes[0]:,} ≤ {TARGET}",
        ratio <= TARGET,
        details,
    )


def run(options: Options) -> list[Result]:
    sizes = sorted(options.queue_sizes)
    repeat, budget = (30, 5.0) if options.quick else (100, 15.0)
    results = []
    for kind in options.databases:
        config = "Flask test client + " + ("SQLite" if kind == "sqlite" else "PostgreSQL")
        with database(kind, options.workdir, options) as db:
            app, history, tokens = _setup(db, top_id=sizes[-1])
            engine = app.extensions["sos"].store.engine
            per_size: dict[int, dict[str, list[float]]] = {}
            seeding: list[str] = []
            try:
                for size in sizes:
                    seconds = history.grow(engine, size)
                    seeding.append(f"{size:,} in {seconds:.0f} s")
                    options.say(f"{NAME} {kind}: {size:,} cases ({seconds:.0f} s to insert)")
                    per_size[size] = _time_requests(app, tokens, repeat, budget)
                    for label, values in per_size[size].items():
                        options.say(
                            f"  {label}: p50 {ms(percentile(values, 50))}, "
                            f"p95 {ms(percentile(values, 95))}"
                        )
                for request in REQUESTS:
                    _, who, path = request
                    explain = functools.partial(statement_costs, app, tokens[who], path)
                    results.append(_result(config, request, per_size, explain))
                results[-len(REQUESTS)].details.append("cases inserted: " + "; ".join(seeding))
            finally:
                app.extensions["sos"].close()
    return results
