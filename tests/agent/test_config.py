from __future__ import annotations

from pathlib import Path

import pytest

from sos_agent.config import ConfigError, DeploymentSettings, load_config
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
    config = make_config(fake_backend.url)
    assert config.deployment.customer_fields == ("name", "email", "description")
    core = AgentCore(config)
    settings = core.refresh_deployment()
    assert settings == DeploymentSettings("Fake", "G", ("email", "description"))
    assert core.config.deployment.customer_fields == ("email", "description")
    # A later start without the network still knows which fields to ask for.
    offline = AgentCore(make_config("http://127.0.0.1:9"))
    assert offline.config.deployment.customer_fields == ("email", "description")


def test_unknown_customer_fields_from_the_backend_are_ignored() -> None:
    settings = DeploymentSettings.from_api({"customer_fields": ["phone", "name"]})
    assert settings.customer_fields == ("name",)


def test_state_keeps_a_stable_device_id_and_survives_a_corrupt_file(tmp_path: Path) -> None:
    first = RuntimeState(tmp_path).device_id
    assert RuntimeState(tmp_path).device_id == first
    (tmp_path / "state.json").write_text("{not json")
    assert RuntimeState(tmp_path).device_id  # a fresh state rather than a crash
