from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sos_agent.__main__ import main
from tests.agent.conftest import DEFAULT_BRAND, KEY


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("sos-agent: ")
    return lines[0]


def test_bad_brand_gives_one_clear_line_and_a_non_zero_exit(tmp_path: Path, capsys) -> None:
    (tmp_path / "brand.toml").write_text('product_name = "x"\nlanguage = "de"\n')
    code = main(["--brand", str(tmp_path), "--backend-url", "http://x", "--deployment-key", KEY,
                 "--headless"])
    assert code == 2
    line = _one_line(capsys.readouterr().err)
    assert "language" in line and "company" in line


def test_missing_deployment_key_is_named(tmp_path: Path, capsys) -> None:
    code = main(["--brand", str(DEFAULT_BRAND), "--backend-url", "http://x", "--headless",
                 "--data-dir", str(tmp_path)])
    assert code == 2
    assert "SOS_DEPLOYMENT_KEY" in _one_line(capsys.readouterr().err)


def test_a_malformed_join_code_is_refused_before_anything_runs(capsys) -> None:
    assert main(["--join", "hello", "--headless"]) == 2
    assert "s12-345-678" in _one_line(capsys.readouterr().err)


@pytest.mark.slow
def test_without_a_display_the_window_mode_says_so_in_one_line(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "sos_agent", "--brand", str(DEFAULT_BRAND), "--backend-url",
         "http://127.0.0.1:9", "--deployment-key", KEY, "--data-dir", str(tmp_path / "d")],
        capture_output=True, text=True, env=env, timeout=30,
    )
    assert result.returncode == 4
    assert "no display" in _one_line(result.stderr)
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_headless_offline_prints_queued_json_and_keeps_the_request(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sos_agent", "--brand", str(DEFAULT_BRAND), "--backend-url",
         "http://127.0.0.1:9", "--deployment-key", KEY, "--data-dir", str(tmp_path / "d"),
         "--headless", "--sos", "--timeout", "1", "--no-shortcut"],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 75, result.stderr
    assert '"outcome": "queued"' in result.stdout
    assert len(list((tmp_path / "d" / "outbox").glob("*.json"))) == 1
