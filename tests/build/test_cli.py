"""sos-build's checks before PyInstaller, its failure report, and what it never reveals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sos_agent.brand import load_brand
from sos_build import cli
from sos_build.builder import Scrubber, default_spec
from sos_build.manifest import build_manifest, lookup_deployment_id, sha256_of

REPO = Path(__file__).resolve().parents[2]
DEFAULT_BRAND = REPO / "branding" / "default"
KEY = "sosd_test-key-0123456789abcdefghijklmnop"


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = cli.main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def test_spec_lives_in_build_folder() -> None:
    assert default_spec() == REPO / "build" / "sos-agent.spec"
    assert default_spec().is_file()


def test_missing_deployment_key_is_a_usage_error(capsys, tmp_path: Path) -> None:
    status, out, err = run_cli(
        capsys, str(DEFAULT_BRAND), "--backend-url", "http://x", "--out", str(tmp_path)
    )
    assert status == 2
    assert "deployment key: missing; set SOS_DEPLOYMENT_KEY" in err


def test_missing_backend_url_is_a_usage_error(capsys, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SOS_DEPLOYMENT_KEY", KEY)
    status, out, err = run_cli(capsys, str(DEFAULT_BRAND), "--out", str(tmp_path))
    assert status == 2
    assert "backend URL: missing; pass --backend-url" in err
    assert KEY not in out + err


def test_environment_supplies_url_and_key(capsys, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SOS_DEPLOYMENT_KEY", KEY)
    monkeypatch.setenv("SOS_BACKEND_URL", "not a url")
    status, out, err = run_cli(capsys, str(DEFAULT_BRAND), "--out", str(tmp_path / "x"))
    assert status == 2
    assert "backend_url: 'not a url' is not an http(s) URL" in out + err
    assert KEY not in out + err


def test_bad_brand_lists_every_problem_and_builds_nothing(capsys, tmp_path: Path) -> None:
    brand = tmp_path / "brand"
    brand.mkdir()
    (brand / "brand.toml").write_text(
        'product_name = "X"\ncompany = "Y"\ncolour = 1\n[colors]\nprimary = "red"\n'
    )
    out_dir = tmp_path / "out"
    status, out, err = run_cli(
        capsys,
        str(brand),
        "--backend-url",
        "http://x",
        "--deployment-key",
        KEY,
        "--out",
        str(out_dir),
    )
    assert status == 2
    assert "brand: colour: unknown key" in err
    assert "brand: colors.primary: 'red' is not a colour of the form #rrggbb" in err
    assert "brand: logo: logo.png not found" in err
    assert KEY not in out + err
    assert not out_dir.exists()


@pytest.mark.parametrize("flag", ["--out", "--work-dir"])
def test_scratch_folders_inside_build_are_refused(capsys, flag: str) -> None:
    status, out, err = run_cli(
        capsys,
        str(DEFAULT_BRAND),
        "--backend-url",
        "http://x",
        "--deployment-key",
        KEY,
        flag,
        str(REPO / "build" / "build"),
    )
    assert status == 2
    assert f"{flag}: " in err and "choose a folder outside it" in err


def test_scrubber_masks_every_occurrence() -> None:
    scrub = Scrubber([KEY, ""])
    assert scrub(f"a {KEY} b {KEY}") == "a sosd_*** b sosd_***"
    assert scrub("nothing") == "nothing"


def test_manifest_describes_the_build_without_the_key(tmp_path: Path) -> None:
    exe = tmp_path / "SOS Support"
    exe.write_bytes(b"binary")
    brand = load_brand(DEFAULT_BRAND).with_backend("http://127.0.0.1:5000", KEY)
    manifest = build_manifest(
        brand=brand,
        brand_dir=DEFAULT_BRAND,
        artifact=exe,
        executable=exe,
        onedir=False,
        deployment_id=7,
    )
    assert manifest["brand"]["folder"] == "default"
    assert manifest["brand"]["product_name"] == "SOS Support"
    assert manifest["backend_url"] == "http://127.0.0.1:5000"
    assert manifest["deployment_id"] == 7
    assert manifest["size"] == 6
    assert manifest["sha256"] == sha256_of(exe)
    assert manifest["built_at"].endswith("Z")
    assert KEY not in json.dumps(manifest)


def test_deployment_lookup_without_a_backend_is_none() -> None:
    assert lookup_deployment_id("http://127.0.0.1:9", KEY) is None
    assert lookup_deployment_id(None, KEY) is None


FAILING_SPEC = """
import os, pathlib
staging = pathlib.Path(os.environ["SOS_BUILD_STAGING"])
print((staging / "sos_brand" / "brand.json").read_text())
raise SystemExit("spec failed on purpose")
"""


def test_failed_build_shows_log_tail_with_key_scrubbed(capsys, tmp_path: Path) -> None:
    spec = tmp_path / "failing.spec"
    spec.write_text(FAILING_SPEC)
    status, out, err = run_cli(
        capsys,
        str(DEFAULT_BRAND),
        "--backend-url",
        "http://127.0.0.1:9",
        "--deployment-key",
        KEY,
        "--deployment-id",
        "3",
        "--out",
        str(tmp_path / "dist"),
        "--work-dir",
        str(tmp_path / "work"),
        "--spec",
        str(spec),
    )
    assert status == 1
    assert "[5/6] Running PyInstaller" in out
    assert "end of the PyInstaller log" in err
    assert '"deployment_key": "sosd_***"' in err, "the tail shows the log, key masked"
    assert "PyInstaller failed" in err
    log = tmp_path / "work" / "SOS-Support" / "pyinstaller.log"
    assert log.is_file()
    assert "spec failed on purpose" in log.read_text()
    assert KEY not in out + err + log.read_text()
    assert not (tmp_path / "work" / "SOS-Support" / "staging").exists(), "staging key removed"
