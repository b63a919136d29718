"""The load generator's bookkeeping: rounds that take turns, merged as one window."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from bench.load import LoadResult, combined, run_rounds


def test_combined_results_weigh_each_window_by_its_length():
    short = LoadResult(seconds=1.0, latencies=[0.01] * 100, statuses=Counter({200: 100}))
    short.client_cpu, short.cpu, short.rates = 0.5, {"server": 1.0}, {"switches": 300.0}
    long = LoadResult(seconds=3.0, latencies=[0.02] * 150, statuses=Counter({200: 149, 0: 1}))
    long.client_cpu, long.cpu, long.rates = 0.1, {"server": 0.6}, {"switches": 100.0}

    merged = combined([short, long])

    assert merged.seconds == 4.0
    assert merged.count == 250 and merged.throughput == 62.5
    assert merged.statuses == Counter({200: 249, 0: 1})
    assert merged.client_cpu == pytest.approx(0.2)
    assert merged.cpu == {"server": pytest.approx(0.7)}
    # 150 switches a second over the whole window, at 62.5 requests a second
    assert merged.per_request("switches") == pytest.approx(150.0 / 62.5)


def test_rounds_take_turns_and_count_what_each_workload_sent():
    order: list[str] = []

    def sender(label: str, pause: float):
        def send(_session) -> int:
            if not order or order[-1] != label:
                order.append(label)
            time.sleep(pause)
            return 200

        return send

    rounds = run_rounds(
        {"fast": sender("fast", 0.002), "slow": sender("slow", 0.02)},
        rounds=2,
        clients=2,
        seconds=0.3,
        warmup=0.05,
        counters={"ticks": time.perf_counter},
    )

    assert order == ["fast", "slow", "fast", "slow"]
    assert [len(rounds[label]) for label in ("fast", "slow")] == [2, 2]
    fast, slow = combined(rounds["fast"]), combined(rounds["slow"])
    assert fast.seconds == pytest.approx(0.6) and set(fast.statuses) == {200}
    assert fast.throughput > 3 * slow.throughput  # ten times less work per request
    # a counter is a rate per second of the window, not CPU: perf_counter advances 1 s/s
    assert fast.rates["ticks"] == pytest.approx(1.0, rel=0.2) and "ticks" not in fast.cpu
