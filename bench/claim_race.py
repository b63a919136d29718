"""Benchmark 4: many experts racing to claim the same cases across several server processes.

Cases are opened through the services (as an agent would, unassigned: the group's routing
policy is ``none``). Four ``sos-backend serve`` processes share the database (one SQLite file,
or one PostgreSQL schema); 32 experts, spread over the four, each repeatedly list the
unassigned cases (``GET /api/v1/cases?assignee=none``) and try to claim them in a random order
(``POST /api/v1/cases/{code}/claim``) until one claim wins, then list again, until nothing is
left. Afterwards the database is checked: every case assigned (none lost), exactly one
``case.assigned`` event with reason ``claimed`` per case, and exactly one 200 answer per case
across all clients, naming the expert the database holds.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, defaultdict
from typing import Any

import requests
from sqlalchemy import select

from backend.models import Case, Event, User
from backend.services.cases import NewCase, open_agent_case
from backend.services.deployments import get_deployment
from bench.harness import Options, Result
from bench.servers import (
    Database,
    ServerProcess,
    bearer,
    database,
    free_port,
    runtime,
    seed,
    serving,
    waitress_argv,
)

NAME = "claim-race"
EXPERTS = 32
SERVERS = 4


def open_cases(db: Database, deployment_id: int, count: int) -> None:
    """Open ``count`` unassigned cases through the services, 200 per transaction."""
    with runtime(db) as rt:
        for start in range(0, count, 200):
            ctx = rt.context()
            with rt.store.write() as s:
                deployment = get_deployment(s, deployment_id)
                for n in range(start, min(start + 200, count)):
                    open_agent_case(
                        s,
                        ctx,
                        deployment,
                        source="sos_button",
                        details=NewCase(customer_name=f"Customer {n}", device_id=f"dev-{n}"),
                        idempotency_key=f"claim-race-{n}",
                    )


class Claimer(threading.Thread):
    """One expert: list the unassigned cases, claim one, repeat until none is left."""

    def __init__(self, url: str, username: str, token: str, seed_: int) -> None:
        super().__init__(daemon=True)
        self.url = url + "/api/v1"
        self.username = username
        self.headers = bearer(token)
        self.random = random.Random(seed_)
        self.wins: list[str] = []
        self.lost_races = 0
        self.requests = 0
        self.unexpected: Counter[str] = Counter()

    def run(self) -> None:
        session = requests.Session()
        session.headers.update(self.headers)
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            listing = self._call(session, "GET", "/cases?assignee=none&limit=50")
            if listing is None:
                continue
            cases = listing.json()["cases"]
            if not cases:
                break
            self.random.shuffle(cases)
            for case in cases:
                answer = self._call(session, "POST", f"/cases/{case['code']}/claim")
                if answer is None:
                    continue
                if answer.status_code == 200:
                    self.wins.append(case["code"])
                    break
                if answer.status_code == 409:
                    self.lost_races += 1
                else:
                    self.unexpected[f"claim {answer.status_code}"] += 1
        session.close()

    def _call(self, session: requests.Session, method: str, path: str) -> requests.Response | None:
        self.requests += 1
        try:
            response = session.request(method, self.url + path, timeout=60)
        except requests.RequestException as exc:
            self.unexpected[f"{method} {exc.__class__.__name__}"] += 1
            time.sleep(0.2)
            return None
        if method == "GET" and response.status_code != 200:
            self.unexpected[f"list {response.status_code}"] += 1
            time.sleep(0.2)
            return None
        return response


def check(db: Database, claimers: list[Claimer]) -> dict[str, Any]:
    """Compare the clients' wins with what the database holds."""
    with runtime(db) as rt, rt.store.read() as s:
        assignees = dict(
            s.execute(
                select(Case.code, User.username).outerjoin(User, User.id == Case.assignee_id)
            ).all()
        )
        claimed_events: Counter[str] = Counter()
        for code, data in s.execute(
            select(Event.case_code, Event.data).where(Event.type == "case.assigned")
        ):
            if data.get("reason") == "claimed":
                claimed_events[code] += 1
    winners: dict[str, list[str]] = defaultdict(list)
    for claimer in claimers:
        for code in claimer.wins:
            winners[code].append(claimer.username)
    return {
        "cases": len(assignees),
        "lost": sum(1 for user in assignees.values() if user is None),
        "double_events": sum(1 for code in assignees if claimed_events[code] > 1),
        "no_event": sum(1 for code in assignees if claimed_events[code] == 0),
        "double_wins": sum(1 for names in winners.values() if len(names) > 1),
        "no_win": sum(1 for code in assignees if not winners.get(code)),
        "mismatch": sum(
            1 for code, names in winners.items() if len(names) == 1 and assignees[code] != names[0]
        ),
    }


def run(options: Options) -> list[Result]:
    count = 200 if options.quick else 2_000
    results = []
    for kind in options.databases:
        label = "SQLite file" if kind == "sqlite" else "PostgreSQL schema"
        config = f"{SERVERS} × sos-backend serve sharing one {label}, {EXPERTS} experts"
        options.say(f"{NAME}: {config}, {count} cases")
        with database(kind, options.workdir, options) as db:
            seeded = seed(db, experts=EXPERTS)
            open_cases(db, seeded.deployment_id, count)
            servers = []
            for n in range(SERVERS):
                port = free_port()
                servers.append(ServerProcess(waitress_argv(port, 32), db, port, f"server{n}"))
            with serving(*servers):
                claimers = [
                    Claimer(servers[n % SERVERS].url, username, token, n)
                    for n, (username, token) in enumerate(seeded.experts)
                ]
                began = time.perf_counter()
                for claimer in claimers:
                    claimer.start()
                for claimer in claimers:
                    claimer.join()
                wall = time.perf_counter() - began
            found = check(db, claimers)
        unexpected = sum((c.unexpected for c in claimers), Counter())
        races = sum(c.lost_races for c in claimers)
        calls = sum(c.requests for c in claimers)
        double = found["double_events"] + found["double_wins"] + found["mismatch"]
        lost = found["lost"] + found["no_event"] + found["no_win"]
        measured = (
            f"{double} double, {lost} lost of {found['cases']:,} cases; {wall:.1f} s wall "
            f"({found['cases'] / wall:.0f} claims/s)"
        )
        if unexpected:
            measured += f"; unexpected answers {dict(unexpected)}"
        details = [
            f"{calls:,} requests: {found['cases']:,} winning claims, {races:,} lost races "
            f"(409 already_assigned), the rest listings",
            "checks: cases with >1 'claimed' event {double_events}, with none {no_event}; "
            "cases with >1 winning 200 {double_wins}, with none {no_win}; winner ≠ stored "
            "assignee {mismatch}; unassigned cases {lost}".format(**found),
        ]
        options.say(f"{NAME}: {measured}")
        results.append(
            Result(
                "4. claim race",
                config,
                measured,
                "0 double assignments, 0 lost",
                double == 0 and lost == 0 and not unexpected,
                details,
            )
        )
    return results
