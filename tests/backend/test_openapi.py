"""The OpenAPI document matches what the server really accepts and returns.

schemathesis generates requests (valid and invalid) from ``/api/v1/openapi.json`` and checks
every answer: no server error, a documented status and content type, a body matching the
documented schema, and invalid input refused. Its "valid data is accepted" heuristic is left
out: a schema-valid body may still name a group that does not exist, which is a 422 here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from backend.app import create_app
from backend.clock import FakeClock
from backend.models import Base
from backend.services import accounts, deployments
from backend.settings import Settings


@pytest.fixture(scope="module")
def seeded_app(tmp_path_factory: pytest.TempPathFactory):
    path: Path = tmp_path_factory.mktemp("openapi")
    app = create_app(
        Settings(
            instance_path=path,
            database_url=f"sqlite:///{path / 'db.sqlite3'}",
            debug=True,
            password_hash_fast=True,
            feed_poll_interval=0.1,
        ),
        clock=FakeClock(),
    )
    rt = app.extensions["sos"]
    Base.metadata.create_all(rt.store.engine)
    ctx = rt.context()
    with rt.store.write() as s:
        group = accounts.create_group(s, ctx, name="Helpdesk")
        admin = accounts.create_user(
            s, ctx, username="admin", password="password-123", role="admin", group_ids=[group.id]
        )
        deployments.create_deployment(s, ctx, name="Agent", group_id=group.id)
        app.config["ADMIN_TOKEN"] = accounts.create_token(s, ctx, admin, "schemathesis")[1]
    yield app
    rt.close()


@pytest.fixture(scope="module")
def api_schema(seeded_app):
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", seeded_app)


def test_openapi_document_is_valid_openapi_3_1(seeded_app):
    from openapi_spec_validator import validate

    document = seeded_app.test_client().get("/api/v1/openapi.json").get_json()
    validate(document)
    assert document["openapi"] == "3.1.0"


def test_api_answers_match_the_openapi_document(api_schema, seeded_app):
    headers = {"Authorization": f"Bearer {seeded_app.config['ADMIN_TOKEN']}"}
    failures: dict[str, str] = {}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 40

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=20, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def check(case):
            if case.path == "/api/v1/events":
                case.query = {**(case.query or {}), "wait": 0}  # keep generated long-polls short
            case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

        try:
            check()
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure
            failures[operation.label] = str(exc)[:2000]
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
