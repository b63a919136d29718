"""Benchmark 1: opening cases over HTTP, against a trivial route of the same server.

Eight client threads post ``/api/v1/agent/cases`` with the deployment key, each request with its
own ``Idempotency-Key`` and device id. The baseline is ``GET /healthz`` on the same server in
the same run (it runs ``SELECT 1``; the backend has no database-free route). A database-free
reference, the JSON 404 of an unknown ``/api/v1`` path, is measured too, to show what the ping
costs. The workloads take turns in short rounds, so a change in the machine's speed during the
run affects all of them alike. The figure is the throughput ratio create ÷ healthz over all
rounds; the target is at least 0.5.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable

import requests
from sqlalchemy import event, func, select

from backend.models import Case
from bench import cpu
from bench.harness import Options, Result, ms
from bench.load import LoadResult, combined, run_rounds
from bench.servers import (
    Database,
    ServerProcess,
    bearer,
    database,
    free_port,
    gunicorn_argv,
    runtime,
    seed,
    serving,
    waitress_argv,
)

NAME = "case-creation"
CLIENTS = 8
ROUNDS = 5  # of 2 s per workload, interleaved
TARGET = 0.5


def _case_body() -> dict[str, object]:
    device = uuid.uuid4().hex
    return {
        "source": "sos_button",
        "customer": {"name": "Bench Customer", "email": "customer@example.com"},
        "description": "The printer on floor 2 only prints blank pages.",
        "device": {
            "hostname": f"pc-{device[:8]}",
            "os": "Windows 11 23H2",
            "agent_version": "1.0.0",
            "device_id": device,
        },
    }


def _meters(server: ServerProcess, kind: str) -> dict[str, Callable[[], float]]:
    """CPU readers for the server's processes and, on PostgreSQL, the database server's."""
    if not cpu.available() or server.process is None:
        return {}
    pid = server.process.pid
    meters = {"server": lambda: cpu.tree_cpu(pid)}
    if kind == "postgres":  # SQLite works inside the server's process
        meters["database"] = lambda: cpu.named_cpu("postgres")
    return meters


def _counters(server: ServerProcess) -> dict[str, Callable[[], float]]:
    if not cpu.available() or server.process is None:
        return {}
    pid = server.process.pid
    return {"switches": lambda: cpu.tree_context_switches(pid)}


def _measure(
    server: ServerProcess, key: str, options: Options, kind: str
) -> dict[str, list[LoadResult]]:
    rounds, seconds, warmup = (2, 1.5, 0.5) if options.quick else (ROUNDS, 2.0, 0.5)
    healthz = server.url + "/healthz"
    missing = server.url + "/api/v1/bench-no-such-route"
    config = server.url + "/api/v1/agent/config"
    create = server.url + "/api/v1/agent/cases"
    headers = bearer(key)

    def get_health(session: requests.Session) -> int:
        return session.get(healthz, timeout=30).status_code

    def get_missing(session: requests.Session) -> int:
        return session.get(missing, timeout=30).status_code

    def get_config(session: requests.Session) -> int:
        return session.get(config, headers=headers, timeout=30).status_code

    def post_case(session: requests.Session) -> int:
        response = session.post(
            create,
            json=_case_body(),
            headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
            timeout=30,
        )
        return response.status_code

    sends = {"healthz": get_health, "404": get_missing, "config": get_config, "create": post_case}
    return run_rounds(
        sends,
        rounds=rounds,
        report=lambda line: options.say(f"{server.argv[2]} {line}"),
        clients=CLIENTS,
        seconds=seconds,
        warmup=warmup,
        meters=_meters(server, kind),
        counters=_counters(server),
    )


def _result(
    config: str, rounds: dict[str, list[LoadResult]], created: int, work: list[str]
) -> Result:
    runs = {label: combined(parts) for label, parts in rounds.items()}
    base, create, free, read = runs["healthz"], runs["create"], runs["404"], runs["config"]
    ratio = create.throughput / base.throughput
    pairs = zip(rounds["create"], rounds["healthz"], strict=True)
    each = [c.throughput / b.throughput for c, b in pairs]
    errors = create.errors({201}) + base.errors({200}) + free.errors({404}) + read.errors({200})
    details = [
        f"create: {create.summary()}",
        f"healthz (baseline): {base.summary()}",
        f"404 JSON (database-free reference): {free.summary()}",
        f"GET /api/v1/agent/config (authenticated read, same key): {read.summary()}; "
        f"create ÷ config throughput {create.throughput / read.throughput:.2f}",
        f"{len(each)} interleaved rounds; create ÷ healthz in each: "
        + ", ".join(f"{r:.2f}" for r in each),
        f"latency ratio create ÷ healthz: p50 {create.p(50) / base.p(50):.1f}×, "
        f"p95 {create.p(95) / base.p(95):.1f}×",
        *_cpu_budget(create, base),
        *work,
        f"cases in the database afterwards: {created:,} (warm-up included)",
    ]
    measured = (
        f"{ratio:.2f} ({create.throughput:.0f} ÷ {base.throughput:.0f} req/s; rounds "
        f"{min(each):.2f}–{max(each):.2f}); create p50 {ms(create.p(50))}, p95 "
        f"{ms(create.p(95))}, p99 {ms(create.p(99))}"
    )
    if errors:
        measured += f"; {errors} errors"
    return Result(
        "1. case creation",
        config,
        measured,
        f"create ÷ healthz throughput ≥ {TARGET}",
        ratio >= TARGET and not errors,
        details,
    )


def _cpu_budget(create: LoadResult, base: LoadResult) -> list[str]:
    """What a request costs the whole machine: when CPU is what runs out, throughput follows."""
    if not create.cpu:
        return []
    create_cpu, base_cpu = (sum(r.cpu_per_request().values()) for r in (create, base))
    lines = [
        f"CPU per request, server + database + clients: create {ms(create_cpu, 2)}, healthz "
        f"{ms(base_cpu, 2)} (healthz ÷ create {base_cpu / create_cpu:.2f})"
    ]
    if "switches" in create.rates:
        lines.append(
            f"server context switches per request: create {create.per_request('switches'):.0f}"
            f", healthz {base.per_request('switches'):.0f}"
        )
    return lines


def _count_cases(db: Database) -> int:
    with runtime(db) as rt, rt.store.read() as s:
        return s.scalar(select(func.count()).select_from(Case)) or 0


def work_per_request(db: Database, key: str, repeat: int = 100) -> list[str]:
    """CPU time and SQL statements of one create and one healthz, in process, one at a time:
    the work each costs without HTTP or concurrency."""
    app = db.app()
    engine = app.extensions["sos"].store.engine
    client = app.test_client()
    statements = 0

    def count(*_: object) -> None:
        nonlocal statements
        statements += 1

    def create() -> None:
        headers = {**bearer(key), "Idempotency-Key": str(uuid.uuid4())}
        client.post("/api/v1/agent/cases", json=_case_body(), headers=headers)

    lines = []
    try:
        for label, call in (("create", create), ("healthz", lambda: client.get("/healthz"))):
            for _ in range(10):
                call()
            statements = 0
            event.listen(engine, "before_cursor_execute", count)
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(repeat):
                call()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            event.remove(engine, "before_cursor_execute", count)
            lines.append(
                f"{label}: {ms(cpu / repeat, 2)} CPU ({ms(wall / repeat, 2)} wall), "
                f"{statements / repeat:.0f} SQL statements"
            )
    finally:
        app.extensions["sos"].close()
    return ["in process, one request at a time (Flask test client): " + "; ".join(lines)]


def run(options: Options) -> list[Result]:
    configs = {
        "sqlite": (
            "waitress (sos-backend serve, 2 workers × 32 threads) + SQLite",
            functools.partial(waitress_argv, threads=32, workers=2),
        ),
        "postgres": (
            "gunicorn 2 gthread workers × 16 threads + PostgreSQL",
            gunicorn_argv,
        ),
    }
    results = []
    for kind in options.databases:
        config, argv = configs[kind]
        options.say(f"{NAME}: {config}")
        with database(kind, options.workdir, options) as db:
            credentials = seed(db)
            port = free_port()
            with serving(ServerProcess(argv(port), db, port, "server")) as (server,):
                runs = _measure(server, credentials.deployment_key, options, kind)
            work = work_per_request(db, credentials.deployment_key)
            results.append(_result(config, runs, _count_cases(db), work))
    return results
