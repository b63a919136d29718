"""End to end: sos-build makes the default brand's agent, which opens exactly one case.

Builds once per module (about 20 s), against a live backend so that the deployment id is
looked up and the frozen agent can be run headless against it.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

import sos_agent

pytestmark = [
    pytest.mark.build,
    pytest.mark.slow,
]

REPO = Path(__file__).resolve().parents[2]
DEFAULT_BRAND = REPO / "branding" / "default"
PRODUCT = "SOS Support"


def require(condition: bool, why: str) -> None:
    """A missing component fails the test in CI and skips it (saying why) elsewhere."""
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI needs this: {why}")
    pytest.skip(why)


@dataclass
class Build:
    live: object
    out_dir: Path
    work_dir: Path
    executable: Path
    manifest_path: Path
    output: str
    key: str
    started: datetime


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOS_")}
    env.update(extra)
    return env


def run_build(tmp: Path, live, *extra_args: str) -> tuple[subprocess.CompletedProcess, Path]:
    out_dir = tmp / "dist"
    command = [
        sys.executable,
        "-m",
        "sos_build.cli",
        str(DEFAULT_BRAND),
        "--backend-url",
        live.url,
        "--out",
        str(out_dir),
        "--work-dir",
        str(tmp / "work"),
        *extra_args,
    ]
    result = subprocess.run(
        command,
        env=clean_env(SOS_DEPLOYMENT_KEY=live.deployment_key),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result, out_dir


@pytest.fixture(scope="module")
def live_backend(tmp_path_factory: pytest.TempPathFactory):
    try:
        from tests.support.live import start_backend
    except ImportError as exc:  # pragma: no cover - depends on the backend being there
        require(False, f"the live backend helper is not importable ({exc})")
    with warnings.catch_warnings():
        # start_backend leaves its log file handle to the garbage collector: collect it here
        # rather than let its ResourceWarning land on an unrelated test.
        warnings.simplefilter("ignore", ResourceWarning)
        live = start_backend(tmp_path_factory.mktemp("backend"))
        gc.collect()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def onefile_build(tmp_path_factory: pytest.TempPathFactory, live_backend) -> Build:
    require(
        (Path(sos_agent.__file__).parent / "__main__.py").is_file(),
        "the agent's entry point sos_agent/__main__.py is missing",
    )
    try:
        import PyInstaller  # noqa: F401
    except ImportError:
        require(False, "PyInstaller is not installed (pip install -e .[build])")
    tmp = tmp_path_factory.mktemp("build")
    started = datetime.now(UTC).replace(microsecond=0)
    result, out_dir = run_build(tmp, live_backend)
    return Build(
        live=live_backend,
        out_dir=out_dir,
        work_dir=tmp / "work",
        executable=out_dir / PRODUCT,
        manifest_path=out_dir / f"{PRODUCT}.manifest.json",
        output=result.stdout + result.stderr,
        key=live_backend.deployment_key,
        started=started,
    )


def test_build_shows_steps_not_pyinstaller_flood(onefile_build: Build) -> None:
    lines = onefile_build.output.splitlines()
    assert [line.split("]")[0] for line in lines if line.startswith("[")] == [
        f"[{n}/6" for n in range(1, 7)
    ]
    assert len(lines) < 30, onefile_build.output
    assert "INFO:" not in onefile_build.output


def test_build_writes_a_correct_manifest(onefile_build: Build) -> None:
    manifest = json.loads(onefile_build.manifest_path.read_text())
    exe = onefile_build.executable
    assert exe.is_file() and os.access(exe, os.X_OK)
    assert manifest["version"] == sos_agent.__version__
    assert manifest["brand"] == {
        "folder": "default",
        "product_name": PRODUCT,
        "company": "SOS",
        "language": "auto",
    }
    assert manifest["backend_url"] == onefile_build.live.url
    assert manifest["deployment_id"] == onefile_build.live.deployment_id
    assert manifest["kind"] == "onefile"
    assert manifest["file"] == PRODUCT
    assert manifest["size"] == exe.stat().st_size
    assert manifest["sha256"] == hashlib.sha256(exe.read_bytes()).hexdigest()
    built_at = datetime.fromisoformat(manifest["built_at"].replace("Z", "+00:00"))
    assert onefile_build.started <= built_at <= datetime.now(UTC)
    assert manifest["platform"].startswith(sys.platform)


def test_key_is_in_neither_manifest_nor_build_output_nor_log(onefile_build: Build) -> None:
    key = onefile_build.key
    assert key not in onefile_build.manifest_path.read_text()
    assert key not in onefile_build.output
    log = next(onefile_build.work_dir.glob("*/pyinstaller.log"))
    assert "Building EXE" in log.read_text(), "the log is kept"
    assert key not in log.read_text()
    for path in onefile_build.work_dir.rglob("*"):
        if path.is_file():
            assert key.encode() not in path.read_bytes(), f"key left in {path}"


def test_executable_is_small_enough(onefile_build: Build) -> None:
    assert onefile_build.executable.stat().st_size <= 35 * 1024 * 1024


def test_bundle_holds_tray_backends_tkinter_brand_and_catalogues(onefile_build: Build) -> None:
    from PyInstaller.archive.readers import CArchiveReader

    archive = CArchiveReader(str(onefile_build.executable))
    files = set(archive.toc)
    modules = set(archive.open_embedded_archive("PYZ.pyz").toc)
    for backend in ("_xorg", "_appindicator", "_gtk", "_win32", "_darwin"):
        assert f"pystray.{backend}" in modules
    assert {"tkinter", "tkinter.ttk", "sos_agent.brand", "sos_agent.__main__"} <= modules
    assert any(name.startswith("python3") and "_tkinter" in name for name in files)
    assert {"sos_brand/brand.json", "sos_brand/logo.png", "sos_brand/icon-256.png"} <= files
    assert "sos_agent/locale/fr/LC_MESSAGES/sos_agent.mo" in files
    assert "sos_agent/locale/pt/LC_MESSAGES/sos_agent.mo" in files
    assert not {m for m in modules if m.split(".")[0] in ("backend", "flask", "sqlalchemy")}


def test_bundle_leaves_out_the_tcl_files_the_agent_never_reads(onefile_build: Build) -> None:
    from PyInstaller.archive.readers import CArchiveReader

    files = set(CArchiveReader(str(onefile_build.executable)).toc)
    assert {"_tcl_data/init.tcl", "_tk_data/tk.tcl", "_tk_data/ttk/ttk.tcl"} <= files
    assert {"_tk_data/msgs/fr.msg", "_tk_data/msgs/pt.msg"} <= files
    assert "_tcl_data/encoding/cp1252.enc" in files
    assert not [f for f in files if f.startswith("_tcl_data/msgs/")]
    assert not [f for f in files if f.startswith("_tk_data/images/")]
    assert "_tk_data/msgs/de.msg" not in files
    assert len([f for f in files if f.startswith("_tcl_data/encoding/")]) <= 5


def test_binary_headless_opens_exactly_one_case_in_the_deployment_group(
    onefile_build: Build, tmp_path: Path
) -> None:
    live = onefile_build.live
    env = clean_env()
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    started = time.monotonic()
    result = subprocess.run(
        [str(onefile_build.executable), "--headless", "--sos", "--data-dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["code"] and answer["status"] == "new"
    assert onefile_build.key not in result.stdout + result.stderr

    listed = live.api("GET", f"/cases?group={live.group_id}")
    assert listed.status_code == 200, listed.text
    cases = listed.json()["cases"]
    assert [case["code"] for case in cases] == [answer["code"]]
    assert cases[0]["deployment"]["id"] == live.deployment_id
    assert cases[0]["group"]["id"] == live.group_id
    assert elapsed < 15


def test_onedir_build_makes_a_folder_that_runs(onefile_build: Build, tmp_path: Path) -> None:
    result, out_dir = run_build(tmp_path, onefile_build.live, "--onedir")
    folder = out_dir / PRODUCT
    assert folder.is_dir()
    manifest = json.loads((out_dir / f"{PRODUCT}.manifest.json").read_text())
    assert manifest["kind"] == "onedir"
    assert manifest["executable"] == f"{PRODUCT}/{PRODUCT}"
    assert onefile_build.key not in result.stdout + result.stderr
    assert onefile_build.key not in json.dumps(manifest)
    version = subprocess.run(
        [str(folder / PRODUCT), "--version"], capture_output=True, text=True, timeout=60
    )
    assert version.returncode == 0
    assert sos_agent.__version__ in version.stdout + version.stderr
