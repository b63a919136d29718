"""Escalation with several server processes: each overdue case is escalated exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from backend.app import create_app
from backend.clock import FakeClock
from backend.migrate import upgrade
from backend.models import Deployment, Event
from backend.services import accounts, deployments
from backend.services.cases import NewCase, open_agent_case
from backend.services.routing import configure_routing
from backend.settings import Settings

CASES = 40
PROCESSES = 4


@pytest.mark.slow
def test_four_processes_escalate_each_overdue_case_exactly_once(empty_database_url, tmp_path):
    database_url = empty_database_url
    # The cases were assigned an hour ago (by the clock of the past); the processes run now.
    past = FakeClock(datetime.now(UTC) - timedelta(hours=1))
    settings = Settings(
        instance_path=tmp_path, database_url=database_url, debug=True, password_hash_fast=True
    )
    app = create_app(settings, clock=past)
    rt = app.extensions["sos"]
    upgrade(rt.store.engine)
    ctx = rt.context()
    with rt.store.write() as s:
        group = accounts.create_group(s, ctx, name="Helpdesk")
        for name in ("alice", "bob", "carol"):
            accounts.create_user(s, ctx, username=name, password=None, group_ids=[group.id])
        configure_routing(s, group, {"policy": "round_robin", "escalate_after_minutes": 5})
        deployment_id = deployments.create_deployment(s, ctx, name="Agent", group_id=group.id)[0].id
    for _ in range(CASES):
        with rt.store.write() as s:
            open_agent_case(
                s,
                ctx,
                s.get(Deployment, deployment_id),
                source="api",
                details=NewCase(),
                idempotency_key=None,
            )
    rt.close()

    env = {k: v for k, v in os.environ.items() if not k.startswith("SOS_")}
    env.update(SOS_DATABASE_URL=database_url, SOS_INSTANCE_PATH=str(tmp_path), SOS_DEBUG="1")
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "backend.cli", "expire"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    outputs = [w.communicate(timeout=120)[0] for w in workers]
    assert all(w.returncode == 0 for w in workers), outputs
    escalated = sum(int(out.split(" case(s) escalated")[0].rsplit(" ", 1)[1]) for out in outputs)
    assert escalated == CASES, outputs

    app = create_app(settings)
    rt = app.extensions["sos"]
    with rt.store.read() as s:
        reasons = [
            e.data["reason"] for e in s.scalars(select(Event).where(Event.type == "case.assigned"))
        ]
    rt.close()
    escalations = [r for r in reasons if r.startswith("escalated:")]
    assert len(escalations) == CASES
