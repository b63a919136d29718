"""Figures of the built agent: size, cold launch to case created, SOS hand-over, idle memory.

Starts its own backend (the test suite's live helper), builds the default brand with
``sos-build``, measures, prints a table and writes ``docs/figures.md``.

    .venv/bin/python bench/agent_figures.py [--runs 7] [--kinds onefile,onedir] [--no-write]

The running-agent figures need the agent's window and tray: the script starts Xvfb (and
``stalonetray`` when installed) for them, and says so plainly when it cannot.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "build"))

import sos_agent  # noqa: E402
from sos_build.builder import BuildRequest, build  # noqa: E402
from tests.support.live import LiveBackend, start_backend  # noqa: E402

DEFAULT_BRAND = REPO / "branding" / "default"
FIGURES_MD = REPO / "docs" / "figures.md"
MB = 1024 * 1024
TARGETS = {"size": 35.0, "cold": 1.5, "handover": 0.3, "rss": 60.0}


@dataclass
class Figure:
    name: str
    unit: str
    target: float | None
    values: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def measured(self) -> bool:
        return bool(self.values)

    @property
    def value(self) -> float:
        return statistics.median(self.values)

    def cell(self) -> str:
        if not self.values:
            return "not measured"
        if len(self.values) == 1:
            return f"{self.value:.2f} {self.unit}"
        return (
            f"{self.value:.2f} {self.unit} (median of {len(self.values)}; "
            f"{min(self.values):.2f}–{max(self.values):.2f})"
        )

    def verdict(self) -> str:
        if not self.values or self.target is None:
            return "–"
        return "meets" if self.value <= self.target else "MISSES"


@dataclass
class KindFigures:
    kind: str
    size: Figure
    cold: Figure
    handover: Figure
    rss: Figure

    def rows(self) -> list[Figure]:
        return [self.size, self.cold, self.handover, self.rss]


# --- environment for one "user" ------------------------------------------------------------


def user_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOS_", "DISPLAY"))}
    env.pop("WAYLAND_DISPLAY", None)
    env.update(
        HOME=str(home),
        XDG_DESKTOP_DIR=str(home / "Desktop"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CACHE_HOME=str(home / ".cache"),
    )
    env.update(extra)
    return env


def case_codes(live: LiveBackend) -> set[str]:
    response = live.api("GET", f"/cases?group={live.group_id}&limit=100")
    response.raise_for_status()
    return {case["code"] for case in response.json()["cases"]}


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (a one-file build runs as two)."""
    total = 0
    pids = [pid]
    while pids:
        current = pids.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
        except FileNotFoundError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
        children = Path(f"/proc/{current}/task/{current}/children")
        if children.exists():
            pids += [int(p) for p in children.read_text().split()]
    return total / MB


# --- measurements --------------------------------------------------------------------------


def measure_cold_launch(
    exe: Path, live: LiveBackend, runs: int, work: Path, extra_env: dict[str, str]
) -> Figure:
    """Start the agent on a fresh data folder, headless, until it prints the created case."""
    figure = Figure("Launch to case created (cold)", "s", TARGETS["cold"])
    figure.note = (
        "new process (headless), new user data folder (first launch); timed from spawn to the "
        "JSON line it prints once the backend answered 201; the operating system's file cache "
        "is warm (a one-file build unpacks itself afresh at every start)"
    )
    for run in range(runs):
        home = work / f"cold-{run}"
        started = time.perf_counter()
        process = subprocess.Popen(
            [str(exe), "--headless", "--sos", "--data-dir", str(home / "data")],
            env=user_env(home, **extra_env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = process.stdout.readline() if process.stdout else ""
        elapsed = time.perf_counter() - started
        _, err = process.communicate(timeout=60)
        if '"code"' not in line:
            figure.note += f"; run {run} failed: {(line + err).strip()[-300:]}"
            continue
        figure.values.append(elapsed)
    return figure


def start_display(work: Path) -> tuple[str | None, list[subprocess.Popen], str]:
    """An Xvfb display (plus a tray host when one is installed); the reason when impossible."""
    xvfb = shutil.which("Xvfb")
    if not xvfb:
        return None, [], "Xvfb is not installed (apt-get install xvfb)"
    for number in range(90, 120):
        if Path(f"/tmp/.X11-unix/X{number}").exists() or Path(f"/tmp/.X{number}-lock").exists():
            continue
        display = f":{number}"
        server = subprocess.Popen(
            [xvfb, display, "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
            stdout=subprocess.DEVNULL,
            stderr=(work / f"xvfb-{number}.log").open("wb"),
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and server.poll() is None:
            if Path(f"/tmp/.X11-unix/X{number}").exists():
                processes = [server]
                tray = shutil.which("stalonetray")
                if tray:
                    processes.append(
                        subprocess.Popen(
                            [tray, "--display", display],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                        )
                    )
                return display, processes, ""
            time.sleep(0.05)
        server.kill()
        server.wait()
    return None, [], "no Xvfb display could be started"


def handed_over_at(log_path: Path, after: float) -> float | None:
    """Epoch time of the latest 'handed sos over' line of the agent's log (local-time stamps)."""
    if not log_path.exists():
        return None
    found = None
    for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
        if "handed sos over to the running agent" not in line:
            continue
        stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
        if stamp >= after:
            found = stamp
    return found


def measure_running_agent(
    exe: Path, live: LiveBackend, runs: int, work: Path, extra_env: dict[str, str]
) -> tuple[Figure, Figure]:
    """Start the agent with its window and tray, let it idle, then click SOS ``runs`` times."""
    handover = Figure("SOS click while the agent runs (hand-over)", "s", TARGETS["handover"])
    handover.note = (
        "second launch with --sos, as the desktop button does; timed from spawn to the moment "
        "it has handed the request to the running agent (the time stamp of its log line "
        "'handed sos over')"
    )
    exits: list[float] = []
    rss = Figure("Idle memory of the running agent (RSS)", "MiB", TARGETS["rss"])
    rss.note = "VmRSS of the agent's processes (a one-file build is two), after 5 s idle"
    display, helpers, why = start_display(work)
    if display is None:
        handover.note = rss.note = f"not measured: {why}"
        return handover, rss
    home = work / "running"
    env = user_env(home, DISPLAY=display, **extra_env)
    data = home / "data"
    before = case_codes(live)
    agent = subprocess.Popen(
        [str(exe), "--data-dir", str(data)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and agent.poll() is None:
            if case_codes(live) - before:
                break
            time.sleep(0.1)
        if agent.poll() is not None or not case_codes(live) - before:
            out = agent.stdout.read() if agent.poll() is not None and agent.stdout else ""
            why = f"the agent did not start and open its first case: {out.strip()[-400:]}"
            handover.note = rss.note = f"not measured: {why or 'timed out'}"
            return handover, rss
        time.sleep(5)
        rss.values.append(rss_mb(agent.pid))
        for run in range(runs):
            spawned_at = time.time()
            started = time.perf_counter()
            click = subprocess.run(
                [str(exe), "--sos", "--data-dir", str(data)],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            elapsed = time.perf_counter() - started
            if click.returncode != 0:
                handover.note += f"; click {run} failed: {click.stderr.strip()[-300:]}"
                continue
            exits.append(elapsed)
            delivered_at = handed_over_at(data / "logs" / "agent.log", after=spawned_at - 1)
            if delivered_at is None:
                handover.note += f"; click {run}: no 'handed sos over' line in the agent's log"
                continue
            handover.values.append(delivered_at - spawned_at)
            time.sleep(0.5)
        if exits:
            handover.note += (
                f"; the clicking process exits {statistics.median(exits):.2f} s after spawn "
                "(median; a one-file build then also deletes its unpacked files)"
            )
        if agent.poll() is not None:
            handover.note += "; the running agent exited during the clicks"
        rss.values.append(rss_mb(agent.pid))
    finally:
        agent.terminate()
        try:
            agent.wait(10)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
        for helper in reversed(helpers):
            helper.terminate()
            helper.wait(10)
    return handover, rss


VARIANTS = {
    "onefile": ("onefile", False),
    "onedir": ("onedir", False),
    # The same one-file build unpacking into a RAM-backed TMPDIR: shows what the unpacking
    # costs on disk.
    "onefile-tmpfs": ("onefile", True),
}


def build_agent(build_kind: str, live: LiveBackend, work: Path, cache: dict[str, object]):
    if build_kind not in cache:
        cache[build_kind] = build(
            BuildRequest(
                brand_dir=DEFAULT_BRAND,
                backend_url=live.url,
                deployment_key=live.deployment_key,
                deployment_id=live.deployment_id,
                out_dir=work / build_kind / "dist",
                work_dir=work / build_kind / "work",
                onedir=build_kind == "onedir",
            ),
            progress=lambda line: print(f"  {build_kind}: {line.strip()}", flush=True),
        )
    return cache[build_kind]


def measure_kind(
    variant: str, live: LiveBackend, runs: int, work: Path, cache: dict[str, object]
) -> KindFigures:
    build_kind, tmpfs = VARIANTS[variant]
    result = build_agent(build_kind, live, work, cache)
    extra_env: dict[str, str] = {}
    if tmpfs:
        ram = Path("/dev/shm")
        if not ram.is_dir():
            raise SystemExit("onefile-tmpfs needs /dev/shm")
        extra_env["TMPDIR"] = tempfile.mkdtemp(prefix="sos-figures-", dir=ram)
    size = Figure("Binary size", "MiB", TARGETS["size"], [result.manifest["size"] / MB])
    size.note = "the executable" if build_kind == "onefile" else "the whole folder"
    if tmpfs:
        size.note += f"; it unpacks into TMPDIR={extra_env['TMPDIR']} (tmpfs)"
    try:
        print(f"  {variant}: cold launches…", flush=True)
        cold = measure_cold_launch(result.executable, live, runs, work / variant, extra_env)
        print(f"  {variant}: running agent…", flush=True)
        handover, rss = measure_running_agent(
            result.executable, live, runs, work / variant, extra_env
        )
    finally:
        if tmpfs:
            shutil.rmtree(extra_env["TMPDIR"], ignore_errors=True)
    return KindFigures(variant, size, cold, handover, rss)


# --- report --------------------------------------------------------------------------------


def table(results: list[KindFigures]) -> str:
    lines = ["| figure | build | measured | target | |", "| --- | --- | --- | --- | --- |"]
    for kind in results:
        for fig in kind.rows():
            target = f"≤ {fig.target:g} {fig.unit}" if fig.target is not None else "–"
            lines.append(
                f"| {fig.name} | {kind.kind} | {fig.cell()} | {target} | {fig.verdict()} |"
            )
    return "\n".join(lines)


def machine() -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",) * 3
    return (
        f"{platform.system()} {platform.release()} {platform.machine()}, "
        f"{os.cpu_count()} CPUs, load average {load[0]:.2f} when the run started, "
        f"Python {platform.python_version()}"
    )


def markdown(results: list[KindFigures], started: datetime, where: str, runs: int) -> str:
    notes = []
    for kind in results:
        for fig in kind.rows():
            if fig.note:
                notes.append(f"- **{fig.name}, {kind.kind}**: {fig.note}.")
    by_kind = {kind.kind: kind for kind in results}
    interpretation = ""
    onefile, onedir = by_kind.get("onefile"), by_kind.get("onedir")
    if onefile and onedir and onefile.handover.measured and onedir.handover.measured:
        interpretation = (
            f"- Here the SOS hand-over took {onefile.handover.value:.2f} s with the one-file "
            f"build and {onedir.handover.value:.2f} s with the folder build: where the "
            f"{TARGETS['handover']:g} s target matters, ship the folder build (installed by an "
            "installer or unpacked once), at the price of its larger size on disk."
        )
    return f"""# Agent figures

Measured by `bench/agent_figures.py` on {started:%Y-%m-%d %H:%M} UTC: agent
{sos_agent.__version__}, default brand, built with `sos-build` on this machine, against a
local `sos-backend serve` (SQLite) started by the script. {runs} runs per timed figure.

Machine: {where}.

{table(results)}

## How each figure is taken
{chr(10).join(notes)}

## Reading them
- Timings are wall-clock on a shared machine: other work on it moves them by tens of
  milliseconds; the range shows the spread. Re-run the script to refresh this page.
- A one-file build unpacks its libraries and data (about 190 files, 40 MB: the build leaves
  out the Tcl/Tk files the agent never reads, which were more than half of the files) into a
  new temporary folder at every start and deletes them at exit. That unpacking is most of its
  start-up time, and the short-lived second launch that an SOS click makes pays it again;
  `onefile-tmpfs` is the same executable unpacking into RAM (`TMPDIR` on tmpfs), which shows
  how much of it is the disk. A folder build (`--onedir`) starts without any unpacking.
{interpretation}
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=7)
    p.add_argument(
        "--kinds",
        default="onefile,onedir,onefile-tmpfs",
        help=f"comma list of {', '.join(VARIANTS)}",
    )
    p.add_argument("--no-write", action="store_true", help=f"do not write {FIGURES_MD}")
    args = p.parse_args(argv)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in VARIANTS]
    if unknown:
        p.error(f"unknown kind {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    started = datetime.now(UTC)
    where = machine()
    with tempfile.TemporaryDirectory(prefix="sos-figures-") as tmp:
        work = Path(tmp)
        print("starting a backend…", flush=True)
        live = start_backend(work / "backend")
        try:
            cache: dict[str, object] = {}
            results = [measure_kind(kind, live, args.runs, work, cache) for kind in kinds]
        finally:
            live.stop()
    print()
    print(table(results))
    for kind in results:
        for fig in kind.rows():
            if fig.note.startswith("not measured") or "failed" in fig.note:
                print(f"- {fig.name}, {kind.kind}: {fig.note}")
    if not args.no_write:
        FIGURES_MD.write_text(markdown(results, started, where, args.runs), encoding="utf-8")
        print(f"\nwrote {FIGURES_MD.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
