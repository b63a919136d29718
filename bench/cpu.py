"""CPU time of processes, read from ``/proc`` (Linux): who does the work under load.

Only reads: a process of the database server is found by its name, and is never signalled.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> tuple[str, int, float] | None:
    """(name, parent pid, CPU seconds) of a process, or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    return name, int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK


def _all() -> dict[int, tuple[str, int, float]]:
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            found[int(entry.name)] = stat
    return found


def _tree(root: int, processes: dict[int, tuple[str, int, float]]) -> list[int]:
    """``root`` and its live descendants."""
    children: dict[int, list[int]] = {}
    for pid, (_, parent, _) in processes.items():
        children.setdefault(parent, []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in processes:
            found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def tree_cpu(root: int) -> float:
    """CPU seconds used so far by ``root`` and its live descendants."""
    processes = _all()
    return sum(processes[pid][2] for pid in _tree(root, processes))


def tree_context_switches(root: int) -> float:
    """Context switches so far of every thread of ``root`` and its live descendants.

    Threads that wait for each other (a lock, the GIL) switch far more often than threads
    that each have their own work, so the count per request shows contention.
    """
    total = 0
    for pid in _tree(root, _all()):
        for status in Path(f"/proc/{pid}/task").glob("*/status"):
            try:
                lines = status.read_text().splitlines()
            except OSError:
                continue  # the thread ended
            total += sum(int(line.split()[1]) for line in lines if "ctxt_switches" in line)
    return float(total)


def named_cpu(prefix: str) -> float:
    """CPU seconds used so far by live processes whose name starts with ``prefix``."""
    return sum(cpu for name, _, cpu in _all().values() if name.startswith(prefix))


def available() -> bool:
    return Path("/proc/self/stat").exists()


def _cpu_times() -> tuple[int, int]:
    """(idle, total) jiffies of all CPUs since boot; idle leaves out waiting for the disk."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return fields[3], sum(fields[:8])  # user nice system idle iowait irq softirq steal


def idle_fraction(seconds: float) -> float:
    """How idle the machine's CPUs were over the next ``seconds``."""
    idle, total = _cpu_times()
    time.sleep(seconds)
    idle2, total2 = _cpu_times()
    return (idle2 - idle) / max(1, total2 - total)


def wait_until_quiet(threshold: float = 0.85, timeout: float = 45.0) -> None:
    """Wait until the CPUs are at least ``threshold`` idle for two seconds in a row (or
    ``timeout`` passes)."""
    began, calm = time.monotonic(), 0
    while calm < 2 and time.monotonic() - began < timeout:
        calm = calm + 1 if idle_fraction(1.0) >= threshold else 0
