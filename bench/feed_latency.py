"""Benchmark 3: how long an expert waits to learn of a new case through the long-poll feed.

Fifty experts (threads, each with its own token and ``requests.Session``) long-poll
``GET /api/v1/events?after=CURSOR&wait=25`` against a live server. Once all of them are
waiting, an agent opens a case; each expert's latency is the time from just before the create
request to the moment its poll returned that case's ``case.created`` event. Repeated for
several cases; p50 and p99 are over every (expert, case) pair. Targets: p50 ≤ 50 ms,
p99 ≤ 250 ms.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import requests

from bench.harness import Options, Result, ms, percentile
from bench.servers import (
    Seed,
    ServerProcess,
    bearer,
    database,
    free_port,
    gunicorn_argv,
    seed,
    serving,
    waitress_argv,
)

NAME = "feed-latency"
EXPERTS = 50
TARGET_P50 = 0.050
TARGET_P99 = 0.250


class Expert(threading.Thread):
    """Long-polls the feed and notes when each case's ``case.created`` event arrives."""

    def __init__(self, url: str, token: str, cursor: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.url = url + "/api/v1/events"
        self.headers = bearer(token)
        self.cursor = cursor
        self.stop = stop
        self.received: dict[str, float] = {}  # case code -> perf_counter() on arrival
        self.in_flight = False  # a poll has been sent and not yet answered
        self.errors: list[str] = []

    def run(self) -> None:
        session = requests.Session()
        while not self.stop.is_set():
            self.in_flight = True
            try:
                response = session.get(
                    self.url,
                    params={"after": self.cursor, "wait": 25},
                    headers=self.headers,
                    timeout=40,
                )
                arrived = time.perf_counter()
                self.in_flight = False
                response.raise_for_status()
            except requests.RequestException as exc:
                self.in_flight = False
                self.errors.append(str(exc)[:200])
                time.sleep(0.5)
                continue
            body = response.json()
            for event in body["events"]:
                if event["type"] == "case.created":
                    self.received.setdefault(event["case_code"], arrived)
            self.cursor = body["cursor"]
        session.close()


def _wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return False


def _measure(server: ServerProcess, seeded: Seed, cases: int) -> dict[str, Any]:
    first = requests.get(
        server.url + "/api/v1/events", headers=bearer(seeded.admin_token), timeout=30
    )
    cursor = first.json()["cursor"]
    stop = threading.Event()
    experts = [Expert(server.url, token, cursor, stop) for _, token in seeded.experts]
    for expert in experts:
        expert.start()
    agent = requests.Session()
    agent.headers.update(bearer(seeded.deployment_key))
    latencies: list[float] = []
    create_times: list[float] = []
    missing = 0
    cpu = time.process_time()
    try:
        for n in range(cases + 1):  # the last case only wakes the experts up to stop
            # Every expert has seen the previous case and sent its next poll; give the polls
            # a moment to reach the server and start waiting.
            _wait_until(lambda: all(e.in_flight for e in experts), 30)
            time.sleep(0.3)
            if n == cases:
                stop.set()
            began = time.perf_counter()
            response = agent.post(
                server.url + "/api/v1/agent/cases",
                json={"source": "sos_button", "device": {"device_id": uuid.uuid4().hex}},
                headers={"Idempotency-Key": str(uuid.uuid4())},
                timeout=30,
            )
            create_times.append(time.perf_counter() - began)
            response.raise_for_status()
            code = response.json()["case"]["code"]
            if n == cases:
                break
            _wait_until(lambda c=code: all(c in e.received for e in experts), 30)
            for expert in experts:
                if code in expert.received:
                    latencies.append(expert.received[code] - began)
                else:
                    missing += 1
    finally:
        stop.set()
        agent.close()
        for expert in experts:
            expert.join(30)
    errors = sum(len(e.errors) for e in experts)
    return {
        "client_cpu": (time.process_time() - cpu) / max(1, len(latencies)),
        "latencies": latencies,
        "missing": missing,
        "errors": errors,
        "create": create_times[:-1],
        "first_error": next((e.errors[0] for e in experts if e.errors), ""),
    }


def run(options: Options) -> list[Result]:
    cases = 5 if options.quick else 20
    configs = {
        "sqlite": ("waitress (sos-backend serve --threads 100) + SQLite", waitress_argv, 100),
        "postgres": (
            "gunicorn 2 gthread workers × 64 threads + PostgreSQL (LISTEN/NOTIFY)",
            gunicorn_argv,
            64,
        ),
    }
    results = []
    for kind in options.databases:
        config, argv, threads = configs[kind]
        options.say(f"{NAME}: {config}")
        with database(kind, options.workdir, options) as db:
            seeded = seed(db, experts=EXPERTS)
            port = free_port()
            server = ServerProcess(argv(port, threads=threads), db, port, "server")
            with serving(server):
                data = _measure(server, seeded, cases)
        lat = data["latencies"]
        p50, p99 = percentile(lat, 50), percentile(lat, 99)
        ok = bool(lat) and p50 <= TARGET_P50 and p99 <= TARGET_P99
        ok = ok and not data["missing"] and not data["errors"]
        measured = f"p50 {ms(p50)}, p99 {ms(p99)} ({len(lat)} deliveries)"
        if data["missing"] or data["errors"]:
            measured += f"; {data['missing']} missed, {data['errors']} poll errors"
        details = [
            f"{EXPERTS} experts × {cases} cases; latency from just before the create request "
            f"to each expert's poll answer; p95 {ms(percentile(lat, 95))}, "
            f"max {ms(max(lat, default=float('nan')))}",
            f"the create request itself: p50 {ms(percentile(data['create'], 50))}, "
            f"max {ms(max(data['create'], default=float('nan')))}",
            f"CPU used by the benchmark process (the 50 clients) per delivery: "
            f"{ms(data['client_cpu'])}",
        ]
        if data["first_error"]:
            details.append(f"first poll error: {data['first_error']}")
        options.say(f"{NAME}: {measured}")
        results.append(
            Result(
                "3. SOS-to-expert latency",
                config,
                measured,
                f"p50 ≤ {ms(TARGET_P50)}, p99 ≤ {ms(TARGET_P99)}",
                ok,
                details,
            )
        )
    return results
