from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from sos_agent.config import (
    LOG_FILE,
    ConfigError,
    DeploymentSettings,
    load_config,
    setup_logging,
)
from sos_agent.core import AgentCore
from sos_agent.state import RuntimeState
from tests.agent.conftest import DEFAULT_BRAND, KEY


def test_flags_win_over_environment_and_brand(tmp_path: Path) -> None:
    env = {"SOS_BACKEND_URL": "http://env.example", "SOS_DEPLOYMENT_KEY": "sosd_env"}
    config = load_config(
        brand_dir=DEFAULT_BRAND,
        backend_url="http://flag.example/",
        data_dir=tmp_path,
        environ=env,
    )
    assert config.backend_url == "http://flag.example"
    assert config.deployment_key == "sosd_env"
    assert config.brand.product_name == "SOS Support"
    assert config.data_dir == tmp_path.resolve()
    assert config.log_dir == (tmp_path / "logs").resolve()


def test_runtime_state_lives_in_the_platformdirs_user_folder_by_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    config = load_config(brand_dir=DEFAULT_BRAND, backend_url="http://x", deployment_key=KEY)
    assert config.data_dir == tmp_path / ".local" / "share" / "SOS Support Agent"
    assert config.log_dir == tmp_path / ".local" / "state" / "SOS Support Agent" / "log"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"deployment_key": KEY}, "no backend address"),
        ({"backend_url": "http://x"}, "no deployment key"),
        ({"backend_url": "http://x", "deployment_key": "nope"}, "must start with 'sosd_'"),
        ({"backend_url": "ftp://x", "deployment_key": KEY}, "backend_url"),
    ],
)
def test_missing_or_bad_settings_are_config_errors(
    tmp_path: Path, kwargs: dict, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(brand_dir=DEFAULT_BRAND, data_dir=tmp_path, environ={}, **kwargs)


def test_bad_brand_folder_is_a_config_error_listing_its_problems(tmp_path: Path) -> None:
    (tmp_path / "brand.toml").write_text('product_name = ""\n[colors]\nprimary = "red"\n')
    with pytest.raises(ConfigError, match="bad brand") as info:
        load_config(brand_dir=tmp_path, backend_url="http://x", deployment_key=KEY)
    assert "primary" in str(info.value)


def test_deployment_settings_from_the_backend_are_merged_and_cached(fake_backend, make_config):
    fake_backend.topics = ["Printer", "Network"]
    config = make_config(fake_backend.url)
    assert config.deployment.customer_fields == ("name", "email", "description")
    assert config.deployment.topics == ()
    core = AgentCore(config)
    settings = core.refresh_deployment()
    assert settings == DeploymentSettings(
        "Fake", "G", ("email", "description"), topics=("Printer", "Network")
    )
    assert core.config.deployment.customer_fields == ("email", "description")
    assert core.config.deployment.topics == ("Printer", "Network")
    # A later start without the network still knows which fields to ask for and which topics.
    offline = AgentCore(make_config("http://127.0.0.1:9"))
    assert offline.config.deployment.customer_fields == ("email", "description")
    assert offline.config.deployment.topics == ("Printer", "Network")


def test_a_deployment_that_stops_offering_topics_clears_the_cached_ones(
    fake_backend, make_config
) -> None:
    fake_backend.topics = ["Printer"]
    AgentCore(make_config(fake_backend.url)).refresh_deployment()
    fake_backend.topics = []
    core = AgentCore(make_config(fake_backend.url))
    assert core.config.deployment.topics == ("Printer",)  # from the cache, before asking
    core.refresh_deployment()
    assert core.config.deployment.topics == ()
    assert AgentCore(make_config("http://127.0.0.1:9")).config.deployment.topics == ()


@pytest.mark.parametrize(
    ("topics", "expected"),
    [
        (["Printer", "Network"], ("Printer", "Network")),
        ([" Printer ", "", "Printer", 7, None], ("Printer",)),  # trimmed, blanks and repeats out
        ([{"name": "Printer", "group_id": 2}], ("Printer",)),  # the admin API's shape
        ("Printer", ()),  # not a list: none
        (None, ()),
    ],
)
def test_topics_from_the_backend_are_parsed_defensively(topics, expected) -> None:
    assert DeploymentSettings.from_api({"topics": topics}).topics == expected


def test_an_old_backend_without_topics_offers_none() -> None:
    settings = DeploymentSettings.from_api({"customer_fields": ["name"]})
    assert settings.topics == ()
    assert DeploymentSettings.from_api(settings.to_json()) == settings


def test_a_topic_is_found_whatever_its_case_in_the_deployments_spelling() -> None:
    settings = DeploymentSettings(topics=("Printer", "E-mail"))
    assert settings.find_topic("Printer") == "Printer"
    assert settings.find_topic(" printer ") == "Printer"
    assert settings.find_topic("E-MAIL") == "E-mail"
    assert settings.find_topic("Fax") is None
    # Two topics differing only by case: only the exact spelling picks one.
    twins = DeploymentSettings(topics=("VPN", "vpn"))
    assert twins.find_topic("vpn") == "vpn" and twins.find_topic("Vpn") is None


def test_unknown_customer_fields_from_the_backend_are_ignored() -> None:
    settings = DeploymentSettings.from_api({"customer_fields": ["phone", "name"]})
    assert settings.customer_fields == ("name",)


def test_state_keeps_a_stable_device_id_and_survives_a_corrupt_file(tmp_path: Path) -> None:
    first = RuntimeState(tmp_path).device_id
    assert RuntimeState(tmp_path).device_id == first
    (tmp_path / "state.json").write_text("{not json")
    assert RuntimeState(tmp_path).device_id  # a fresh state rather than a crash


@pytest.fixture
def agent_logging() -> Iterator[logging.Logger]:
    """The ``sos_agent`` logger, with the handlers a test adds closed afterwards."""
    logger = logging.getLogger("sos_agent")
    level, handlers = logger.level, list(logger.handlers)
    yield logger
    for handler in list(logger.handlers):
        if handler not in handlers:
            logger.removeHandler(handler)
            handler.close()
    logger.setLevel(level)


def test_the_log_goes_to_a_rotating_file_in_the_log_folder(
    tmp_path: Path, agent_logging: logging.Logger
) -> None:
    log_dir = tmp_path / "logs"
    setup_logging(log_dir, max_bytes=2_000, backups=2)
    logging.getLogger("sos_agent.core").info("first line")
    log_file = log_dir / LOG_FILE
    assert log_file.is_file() and "sos_agent.core: first line" in log_file.read_text()

    for n in range(100):
        logging.getLogger("sos_agent.outbox").info("line %03d %s", n, "x" * 60)
    rotated = sorted(p.name for p in log_dir.iterdir())
    assert rotated == [LOG_FILE, f"{LOG_FILE}.1", f"{LOG_FILE}.2"]  # at most 2 old files
    assert all(p.stat().st_size <= 2_000 for p in log_dir.iterdir())
    assert "line 099" in log_file.read_text()  # the newest lines are in the current file


def test_setting_up_logging_again_replaces_the_agents_handler(
    tmp_path: Path, agent_logging: logging.Logger
) -> None:
    setup_logging(tmp_path / "a")
    setup_logging(tmp_path / "b")
    logging.getLogger("sos_agent").info("only once")
    assert not (tmp_path / "a" / LOG_FILE).read_text()
    assert (tmp_path / "b" / LOG_FILE).read_text().count("only once") == 1
