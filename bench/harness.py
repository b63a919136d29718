"""What every benchmark shares: results, percentiles, the machine, the table and the report."""

from __future__ import annotations

import math
import os
import platform
import sqlite3
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "benchmarks.md"
BEGIN_MARK = "<!-- bench:figures:begin -->"
END_MARK = "<!-- bench:figures:end -->"


@dataclass
class Options:
    """The command line, as the benchmarks read it."""

    quick: bool = False
    databases: tuple[str, ...] = ("sqlite", "postgres")
    postgres_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    queue_sizes: tuple[int, ...] = (1_000, 100_000, 1_000_000)
    workdir: Path = field(default_factory=lambda: Path("/tmp"))
    verbose: bool = True

    def say(self, message: str) -> None:
        if self.verbose:
            print(f"  · {message}", file=sys.stderr, flush=True)


@dataclass
class Result:
    """One row of the table: a measured figure, its target and whether it is met."""

    benchmark: str
    configuration: str
    measured: str
    target: str
    meets: bool | None  # None: informational, or not measured
    details: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return {True: "meets", False: "MISSES", None: "-"}[self.meets]


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (p99 of 1,000 samples is the 990th smallest)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def ms(seconds: float, decimals: int = 1) -> str:
    return f"{seconds * 1000:.{decimals}f} ms"


# --- the machine ---------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _postgres_version(url: str) -> str:
    try:
        from sqlalchemy import create_engine, text

        engine = create_engine(url)
        with engine.connect() as conn:
            version = conn.execute(text("SHOW server_version")).scalar_one()
        engine.dispose()
        return str(version)
    except Exception as exc:  # noqa: BLE001 - reported as unavailable, whatever the cause
        return f"unavailable ({exc.__class__.__name__})"


def machine(options: Options) -> dict[str, str]:
    from importlib.metadata import version

    load = os.getloadavg() if hasattr(os, "getloadavg") else (math.nan,) * 3
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "CPU": f"{os.cpu_count()} × {_cpu_model()}",
        "memory": _memory(),
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "SQLite": sqlite3.sqlite_version,
        "PostgreSQL": _postgres_version(options.postgres_url)
        if "postgres" in options.databases
        else "not used",
        "libraries": ", ".join(
            f"{name} {version(name)}"
            for name in ("flask", "sqlalchemy", "waitress", "gunicorn", "psycopg", "requests")
        ),
        "load average at start": " / ".join(f"{x:.2f}" for x in load),
    }


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


# --- output --------------------------------------------------------------------------------

HEADERS = ("benchmark", "configuration", "measured", "target", "result")


def _cells(result: Result) -> tuple[str, ...]:
    return (result.benchmark, result.configuration, result.measured, result.target, result.verdict)


def text_table(results: list[Result]) -> str:
    rows = [HEADERS, *(_cells(r) for r in results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADERS))]
    lines = []
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def _md_escape(cell: str) -> str:
    return cell.replace("|", "\\|")


def markdown_figures(results: list[Result], facts: dict[str, str], command: str) -> str:
    lines = [
        BEGIN_MARK,
        f"Measured with `{command}`.",
        "",
        "| machine | |",
        "| --- | --- |",
        *(f"| {key} | {_md_escape(value)} |" for key, value in facts.items()),
        "",
        "| " + " | ".join(HEADERS) + " |",
        "| " + " | ".join("---" for _ in HEADERS) + " |",
        *("| " + " | ".join(_md_escape(c) for c in _cells(r)) + " |" for r in results),
        "",
    ]
    detailed = [r for r in results if r.details]
    if detailed:
        lines += ["Details of this run:", ""]
        for result in detailed:
            lines.append(f"- **{result.benchmark}, {result.configuration}**")
            lines += [f"  - {line}" for line in result.details]
        lines.append("")
    lines.append(END_MARK)
    return "\n".join(lines)


def write_doc(section: str, path: Path = DOC) -> None:
    """Replace the figures between the markers of the benchmarks document (or append them)."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if BEGIN_MARK in text and END_MARK in text:
        head, rest = text.split(BEGIN_MARK, 1)
        _, tail = rest.split(END_MARK, 1)
        text = head + section + tail
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    path.write_text(text, encoding="utf-8")
