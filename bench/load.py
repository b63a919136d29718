"""A small closed-loop load generator: N threads, one ``requests.Session`` each.

Every thread sends its next request as soon as the previous one is answered. Requests that
start during the warm-up are sent but not counted; throughput is the number of requests
started in the measuring window divided by its length.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

from bench.harness import ms, percentile

Send = Callable[[requests.Session], int]  # sends one request, returns its HTTP status


@dataclass
class LoadResult:
    seconds: float
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    client_cpu: float = 0.0  # CPU seconds the benchmark process (the clients) used per second
    # CPU seconds per second of other processes in the measuring window, by name (the server...)
    cpu: dict[str, float] = field(default_factory=dict)
    # Other counters read at both ends of the window (context switches...), per second
    rates: dict[str, float] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def throughput(self) -> float:
        return self.count / self.seconds

    def p(self, pct: float) -> float:
        return percentile(self.latencies, pct)

    def errors(self, ok: set[int]) -> int:
        return sum(n for status, n in self.statuses.items() if status not in ok)

    def per_request(self, counter: str) -> float:
        """How much of ``counter`` (one of ``rates``) a request accounted for."""
        return self.rates[counter] / self.throughput if self.count else 0.0

    def cpu_per_request(self) -> dict[str, float]:
        """CPU seconds per request, by who spent it (``client`` and the measured processes)."""
        if not self.count:
            return {}
        per_second = {**self.cpu, "client": self.client_cpu}
        return {name: cores / self.throughput for name, cores in per_second.items()}

    def summary(self) -> str:
        work = ", ".join(f"{name} {ms(cpu, 2)}" for name, cpu in self.cpu_per_request().items())
        return (
            f"{self.throughput:.0f} req/s, p50 {ms(self.p(50))}, p95 {ms(self.p(95))}, "
            f"p99 {ms(self.p(99))} ({self.count} requests, statuses {dict(self.statuses)}, "
            f"client CPU {self.client_cpu:.2f} cores; CPU per request: {work})"
        )


def combined(parts: list[LoadResult]) -> LoadResult:
    """One result of several measuring windows, as though they were one long window."""
    seconds = sum(part.seconds for part in parts)
    result = LoadResult(seconds=seconds)
    for part in parts:
        weight = part.seconds / seconds
        result.latencies.extend(part.latencies)
        result.statuses.update(part.statuses)
        result.client_cpu += part.client_cpu * weight
        for total, values in ((result.cpu, part.cpu), (result.rates, part.rates)):
            for name, value in values.items():
                total[name] = total.get(name, 0.0) + value * weight
    return result


def run_rounds(
    sends: Mapping[str, Send],
    *,
    rounds: int,
    report: Callable[[str], None] = lambda _: None,
    **load: Any,
) -> dict[str, list[LoadResult]]:
    """Run each of ``sends`` in turn, ``rounds`` times over, each time with ``run_load(**load)``.

    Interleaving keeps a drift in the machine's speed (other guests of a shared host) from
    landing on one workload only: what is compared was measured over the same stretch of time.
    """
    results: dict[str, list[LoadResult]] = {label: [] for label in sends}
    for round_ in range(1, rounds + 1):
        for label, send in sends.items():
            results[label].append(run_load(send, **load))
            report(f"round {round_}/{rounds} {label}: {results[label][-1].summary()}")
    return results


def run_load(
    send: Send,
    *,
    clients: int,
    seconds: float,
    warmup: float,
    meters: Mapping[str, Callable[[], float]] | None = None,
    counters: Mapping[str, Callable[[], float]] | None = None,
) -> LoadResult:
    """Drive ``send`` from ``clients`` threads for ``warmup + seconds``; measure the last part.

    ``meters`` read the CPU seconds used so far by other processes (the server, the database),
    ``counters`` any other running total; all are read at both ends of the measuring window.
    """
    meters = {**(meters or {}), **(counters or {})}
    start = threading.Event()
    lock = threading.Lock()
    samples: list[tuple[float, float, int]] = []
    began = 0.0

    def client() -> None:
        session = requests.Session()
        mine: list[tuple[float, float, int]] = []
        start.wait()
        end = began + warmup + seconds
        while True:
            sent = time.perf_counter()
            if sent >= end:
                break
            try:
                status = send(session)
            except requests.RequestException:
                status = 0  # no answer at all: counted as an error
            mine.append((sent, time.perf_counter() - sent, status))
        session.close()
        with lock:
            samples.extend(mine)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    start.set()
    time.sleep(warmup)
    cpu_before = time.process_time()
    others_before = {name: read() for name, read in meters.items()}
    time.sleep(seconds)
    cpu = (time.process_time() - cpu_before) / seconds
    others = {name: (read() - others_before[name]) / seconds for name, read in meters.items()}
    for thread in threads:
        thread.join(120)
    result = LoadResult(seconds=seconds, client_cpu=cpu)
    for name, rate in others.items():
        (result.rates if counters and name in counters else result.cpu)[name] = rate
    window = (began + warmup, began + warmup + seconds)
    for sent, latency, status in samples:
        if window[0] <= sent < window[1]:
            result.latencies.append(latency)
            result.statuses[status] += 1
    return result
