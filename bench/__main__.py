"""Run the benchmarks and print one table: ``.venv/bin/python -m bench [--quick] [--only NAME]``.

``--write`` puts the figures (and the machine) into docs/benchmarks.md between its markers.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
import traceback
from pathlib import Path

from sqlalchemy import create_engine, text

from bench import case_creation, claim_race, cpu, feed_latency, queue_page
from bench.harness import Options, Result, machine, markdown_figures, text_table, write_doc
from bench.servers import postgres_reachable

# The queue benchmark's bulk load (a million rows, then a dropped schema) leaves the database
# checkpointing and vacuuming for a while: it runs last, after the latency measurements.
BENCHMARKS = {
    module.NAME: module for module in (case_creation, feed_latency, claim_race, queue_page)
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="SOS backend benchmarks; prints a table of figures against their targets.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="short runs and smaller data (a few minutes)"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(BENCHMARKS),
        metavar="NAME",
        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument(
        "--db",
        action="append",
        choices=("sqlite", "postgres"),
        help="database(s) to run on (repeatable; default both, PostgreSQL when reachable)",
    )
    parser.add_argument(
        "--postgres-url",
        default=Options.postgres_url,
        help="server to create a private schema on (default: %(default)s)",
    )
    parser.add_argument(
        "--queue-sizes",
        help="case counts for queue-page, comma-separated "
        "(default 1000,100000,1000000; --quick: 1000,10000,100000)",
    )
    parser.add_argument(
        "--write", action="store_true", help="write the figures into docs/benchmarks.md"
    )
    parser.add_argument("--quiet", action="store_true", help="print only the table")
    return parser.parse_args(argv)


def settle(options: Options) -> float:
    """Let the last benchmark's aftermath pass before the next one: PostgreSQL writes its dirty
    pages now (``CHECKPOINT``) rather than during the measurements, then the CPUs must be
    mostly idle for two seconds in a row. Returns the seconds it took."""
    began = time.monotonic()
    if "postgres" in options.databases:
        try:
            engine = create_engine(options.postgres_url, isolation_level="AUTOCOMMIT")
            with engine.connect() as conn:
                conn.execute(text("CHECKPOINT"))
            engine.dispose()
        except Exception as exc:  # noqa: BLE001 - only superusers may; then just wait
            options.say(f"no CHECKPOINT ({exc.__class__.__name__}); waiting only")
    if cpu.available():
        cpu.wait_until_quiet()
    return time.monotonic() - began


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    options = Options(quick=args.quick, postgres_url=args.postgres_url, verbose=not args.quiet)
    if args.queue_sizes:
        options.queue_sizes = tuple(int(n) for n in args.queue_sizes.split(","))
    elif args.quick:
        options.queue_sizes = (1_000, 10_000, 100_000)
    databases = tuple(args.db or ("sqlite", "postgres"))
    skipped: list[Result] = []
    if "postgres" in databases:
        reason = postgres_reachable(options)
        if reason:
            databases = tuple(d for d in databases if d != "postgres")
            skipped.append(Result("(all)", "PostgreSQL", "not measured", "-", None, [reason]))
    options.databases = databases
    names = args.only or list(BENCHMARKS)
    facts = machine(options)
    results: list[Result] = []
    loads: list[str] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sos-bench-") as workdir:
        options.workdir = Path(workdir)
        for name in names:
            waited = settle(options)
            load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
            loads.append(f"{name} {load:.1f} (after {waited:.0f} s for a quiet machine)")
            options.say(f"running {name} (load average {load:.1f}, waited {waited:.0f} s)")
            began = time.monotonic()
            try:
                results += BENCHMARKS[name].run(options)
            except Exception as exc:  # noqa: BLE001 - one failure must not hide the others
                traceback.print_exc()
                results.append(Result(name, "(failed)", f"error: {exc}", "-", False))
            options.say(f"{name} took {time.monotonic() - began:.0f} s")
    results += skipped
    facts["load average (1 min) as each benchmark began"] = ", ".join(loads)
    facts["total run time"] = f"{(time.monotonic() - started) / 60:.1f} min"
    if options.verbose:
        print("\ndetails:")
        for result in results:
            for line in result.details:
                print(f"  [{result.benchmark} | {result.configuration}] {line}")
    print()
    print(text_table(results))
    if args.write:
        command = "python -m bench " + shlex.join(sys.argv[1:] if argv is None else argv)
        write_doc(markdown_figures(results, facts, command.strip()))
        print("\nfigures written to docs/benchmarks.md")
    # Missed targets are findings, not failures: only a benchmark that could not run fails.
    return 1 if any(r.configuration == "(failed)" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
