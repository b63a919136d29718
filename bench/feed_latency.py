"""Benchmark 3: how long an expert waits to learn of a new case through the long-poll feed.

Fifty experts (threads, each with its own token and keep-alive connection, spread over five
client processes) long-poll ``GET /api/v1/events?after=CURSOR&wait=25`` against a live server.
Once all of them are waiting, an agent opens a case; each expert's latency is the time from
just before the create request to the moment its poll returned that case's ``case.created``
event. Repeated for several cases; p50 and p99 are over every (expert, case) pair. Targets:
p50 ≤ 50 ms, p99 ≤ 250 ms.
"""

from __future__ import annotations

import functools
import http.client
import json
import multiprocessing
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from bench import cpu
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
CLIENT_PROCESSES = 5  # the experts' threads are spread over this many processes
TARGET_P50 = 0.050
TARGET_P99 = 0.250


class Expert(threading.Thread):
    """Long-polls the feed and reports when each case's ``case.created`` event arrives."""

    def __init__(self, number: int, url: str, token: str, cursor: str, shared: Shared) -> None:
        super().__init__(daemon=True)
        self.number = number
        self.address = urlsplit(url).netloc
        self.headers = bearer(token)
        self.cursor = cursor
        self.shared = shared

    def run(self) -> None:
        # http.client, not requests: the experts stand for other machines, so they should take
        # as little as possible of the two cores the server runs on (requests cost about three
        # times the CPU per poll). One keep-alive connection, as a browser's or the CLI's.
        connection = http.client.HTTPConnection(self.address, timeout=40)
        in_flight, reports = self.shared.in_flight, self.shared.reports
        while not self.shared.stop.is_set():
            in_flight[self.number] = 1  # a poll has been sent and not yet answered
            try:
                connection.request(
                    "GET", f"/api/v1/events?after={self.cursor}&wait=25", headers=self.headers
                )
                response = connection.getresponse()
                payload = response.read()
                arrived = time.perf_counter()
                in_flight[self.number] = 0
                if response.status != 200:
                    raise OSError(f"HTTP {response.status}: {payload[:100]!r}")
            except (OSError, http.client.HTTPException) as exc:
                in_flight[self.number] = 0
                reports.put(("error", self.number, str(exc)[:200]))
                connection.close()  # reconnects on the next request
                time.sleep(0.5)
                continue
            body = json.loads(payload)
            for event in body["events"]:
                if event["type"] == "case.created":
                    reports.put(("arrived", self.number, (event["case_code"], arrived)))
            self.cursor = body["cursor"]
        connection.close()


@dataclass
class Shared:
    """What the client processes and the coordinator share."""

    in_flight: Any  # multiprocessing.Array of one flag per expert
    reports: Any  # multiprocessing.Queue of (kind, expert number, payload)
    stop: Any  # multiprocessing.Event


def _client_process(url: str, experts: list[tuple[int, str]], cursor: str, shared: Shared) -> None:
    """One client machine's worth of experts: a thread each; reports the CPU time they used."""
    began = time.process_time()  # after this process's start-up and imports
    threads = [Expert(number, url, token, cursor, shared) for number, token in experts]
    for thread in threads:
        thread.start()
    shared.stop.wait()
    for thread in threads:
        thread.join(45)
    shared.reports.put(("cpu", -1, time.process_time() - began))


class Coordinator:
    """Collects the client processes' reports: arrivals by case, errors, CPU time."""

    def __init__(self, shared: Shared, experts: int) -> None:
        self.shared = shared
        self.experts = experts
        self.received: dict[str, dict[int, float]] = {}  # case code -> expert -> arrival
        self.errors: list[str] = []
        self.cpu = 0.0
        self.finished = 0  # client processes that reported their CPU time, their last report

    def _take(self, timeout: float) -> None:
        try:
            kind, number, payload = self.shared.reports.get(timeout=timeout)
        except queue.Empty:
            return
        if kind == "arrived":
            code, arrived = payload
            self.received.setdefault(code, {}).setdefault(number, arrived)
        elif kind == "error":
            self.errors.append(payload)
        else:
            self.cpu += payload
            self.finished += 1

    def all_in_flight(self) -> bool:
        return all(self.shared.in_flight[:])

    def wait_for(self, code: str, timeout: float) -> dict[int, float]:
        deadline = time.monotonic() + timeout
        while len(self.received.get(code, {})) < self.experts and time.monotonic() < deadline:
            self._take(0.05)
        return self.received.get(code, {})

    def drain(self, processes: int, timeout: float) -> None:
        """Collect the rest of the reports, up to each process's CPU time."""
        deadline = time.monotonic() + timeout
        while self.finished < processes and time.monotonic() < deadline:
            self._take(0.1)


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
    # The experts sit in several client processes, as on several machines: one Python
    # process would hand every answer to its 50 threads one at a time (one GIL), and the
    # last expert's latency would count the other 49 answers' parsing. perf_counter() is
    # CLOCK_MONOTONIC on Linux, one clock for every process.
    context = multiprocessing.get_context("spawn")
    shared = Shared(context.Array("b", EXPERTS, lock=False), context.Queue(), context.Event())
    coordinator = Coordinator(shared, EXPERTS)
    numbered = list(enumerate(token for _, token in seeded.experts))
    processes = [
        context.Process(
            target=_client_process,
            args=(server.url, numbered[n::CLIENT_PROCESSES], cursor, shared),
            daemon=True,
        )
        for n in range(CLIENT_PROCESSES)
    ]
    for process in processes:
        process.start()
    agent = requests.Session()
    agent.headers.update(bearer(seeded.deployment_key))
    latencies: list[float] = []
    create_times: list[float] = []
    missing = 0
    assert server.process is not None
    server_cpu = -cpu.tree_cpu(server.process.pid) if cpu.available() else 0.0
    try:
        for n in range(cases + 1):  # the last case only wakes the experts up to stop
            # Every expert has seen the previous case and sent its next poll; give the polls
            # a moment to reach the server and start waiting.
            _wait_until(coordinator.all_in_flight, 60)
            time.sleep(0.3)
            if n == cases:
                shared.stop.set()
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
                if cpu.available():
                    server_cpu += cpu.tree_cpu(server.process.pid)
                break
            arrivals = coordinator.wait_for(code, 30)
            latencies.extend(arrived - began for arrived in arrivals.values())
            missing += EXPERTS - len(arrivals)
    finally:
        shared.stop.set()
        agent.close()
        coordinator.drain(len(processes), 60)
        for process in processes:
            process.join(10)
            if process.is_alive():  # pragma: no cover - only if a poll hung past its timeout
                process.kill()
    return {
        "client_cpu": coordinator.cpu / max(1, len(latencies)),
        "server_cpu": server_cpu / max(1, len(latencies)),
        "latencies": latencies,
        "missing": missing,
        "errors": len(coordinator.errors),
        "create": create_times[:-1],
        "first_error": coordinator.errors[0] if coordinator.errors else "",
    }


def run(options: Options) -> list[Result]:
    cases = 5 if options.quick else 20
    configs = {
        "sqlite": (
            "waitress (sos-backend serve, 2 workers × 64 threads) + SQLite",
            functools.partial(waitress_argv, workers=2),
            64,
        ),
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
            f"CPU per delivery (an answer and the expert's next poll; the agent's create "
            f"included): server {ms(data['server_cpu'])}, the {CLIENT_PROCESSES} client "
            f"processes of the {EXPERTS} experts {ms(data['client_cpu'])}",
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
