"""The build itself: brand → icons → resolved brand → PyInstaller → manifest.

The deployment key goes into exactly one place, the bundled ``sos_brand/brand.json``. It is
never given to PyInstaller's process, never printed, and scrubbed from every text this module
writes or raises; the staging copy is deleted once PyInstaller has packed it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from sos_agent.brand import BUNDLE_FOLDER, Brand, load_brand, write_bundled_brand
from sos_build.icons import IconSet, render_icons
from sos_build.manifest import build_manifest, lookup_deployment_id, write_manifest

SPEC_NAME = "sos-agent.spec"
TOTAL_STEPS = 6
LOG_TAIL_LINES = 40

# PyInstaller's milestones, shown as sub-steps instead of its full log.
_MILESTONES = (
    (re.compile(r"INFO: (Initializing module dependency graph|Analyzing )"), "analysing imports"),
    (re.compile(r"INFO: Building PYZ"), "bundling Python modules"),
    (re.compile(r"INFO: Building PKG"), "packing the archive"),
    (re.compile(r"INFO: Building EXE"), "writing the executable"),
    (re.compile(r"INFO: Building COLLECT"), "collecting the folder"),
    (re.compile(r"INFO: Building BUNDLE"), "making the .app bundle"),
)

Progress = Callable[[str], None]


class BuildFailed(Exception):
    """A build that did not produce an agent; the message is safe to print (no key in it)."""

    def __init__(self, message: str, *, log_path: Path | None = None, log_tail: str = "") -> None:
        super().__init__(message)
        self.log_path = log_path
        self.log_tail = log_tail


@dataclass(frozen=True)
class BuildRequest:
    brand_dir: Path
    backend_url: str
    deployment_key: str
    out_dir: Path
    work_dir: Path
    deployment_id: int | None = None
    onedir: bool = False
    console: bool = False
    spec: Path | None = None


@dataclass(frozen=True)
class BuildResult:
    artifact: Path
    executable: Path
    manifest_path: Path
    manifest: dict
    log_path: Path


class Scrubber:
    """Replaces secrets in text with a fixed mask."""

    MASK = "sosd_***"

    def __init__(self, secrets: Iterable[str]) -> None:
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, self.MASK)
        return text


def default_spec() -> Path:
    """The spec beside this package (``build/sos-agent.spec`` in a source checkout)."""
    return Path(__file__).resolve().parent.parent / SPEC_NAME


def file_slug(name: str) -> str:
    """A folder name for per-build scratch files."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "agent"


def build(request: BuildRequest, progress: Progress = print) -> BuildResult:
    """Run every step; raise ``BrandError`` for a bad brand and ``BuildFailed`` for the rest."""
    scrub = Scrubber([request.deployment_key])
    step = _Stepper(progress)
    spec = (request.spec or default_spec()).resolve()
    if not spec.is_file():
        raise BuildFailed(f"spec not found: {spec}; run sos-build from a source checkout or --spec")

    step("Validating the brand")
    brand = load_brand(request.brand_dir).with_backend(request.backend_url, request.deployment_key)
    progress(f"      {brand.product_name} ({brand.company}), backend {brand.backend_url}")

    work = request.work_dir.resolve() / file_slug(brand.product_name)
    staging = work / "staging"
    if staging.exists():
        shutil.rmtree(staging)
    bundle_dir = staging / BUNDLE_FOLDER
    try:
        step("Rendering icons from the logo")
        icons = render_icons(brand.logo_path, staging / "icons")
        _bundle_icons(icons, bundle_dir)

        step("Writing the resolved brand into the bundle")
        write_bundled_brand(brand, bundle_dir)

        step("Looking up the deployment")
        deployment_id = request.deployment_id
        if deployment_id is None:
            deployment_id = lookup_deployment_id(brand.backend_url, request.deployment_key)
        progress(
            f"      deployment id {deployment_id}"
            if deployment_id is not None
            else "      deployment id unknown (backend not reachable; pass --deployment-id)"
        )

        step("Running PyInstaller")
        log_path = work / "pyinstaller.log"
        artifact, executable = _run_pyinstaller(
            request, brand, spec, staging, work, log_path, scrub, progress
        )
    finally:
        # The staging folder holds the key in clear; PyInstaller has packed it by now.
        shutil.rmtree(staging, ignore_errors=True)
        for leftover in work.glob("pyinstaller/**/*.pkg"):
            leftover.unlink(missing_ok=True)

    step("Writing the manifest")
    manifest = build_manifest(
        brand=brand,
        brand_dir=request.brand_dir,
        artifact=artifact,
        executable=executable,
        onedir=request.onedir,
        deployment_id=deployment_id,
    )
    manifest_path = write_manifest(manifest, request.out_dir, brand.product_name)
    if request.deployment_key in manifest_path.read_text(encoding="utf-8"):
        raise BuildFailed("refusing to keep a manifest that contains the deployment key")
    return BuildResult(artifact, executable, manifest_path, manifest, log_path)


class _Stepper:
    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._number = 0

    def __call__(self, title: str) -> None:
        self._number += 1
        self._progress(f"[{self._number}/{TOTAL_STEPS}] {title}")


def _bundle_icons(icons: IconSet, bundle_dir: Path) -> None:
    """PNGs for the tray and shortcuts, plus the platform's own icon format."""
    bundle_dir.mkdir(parents=True, exist_ok=True)
    wanted = list(icons.pngs.values())
    platform_icon = icons.for_platform(sys.platform)
    if platform_icon is not None:
        wanted.append(platform_icon)
    for path in wanted:
        shutil.copy2(path, bundle_dir / path.name)


def _run_pyinstaller(
    request: BuildRequest,
    brand: Brand,
    spec: Path,
    staging: Path,
    work: Path,
    log_path: Path,
    scrub: Scrubber,
    progress: Progress,
) -> tuple[Path, Path]:
    out_dir = request.out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    name = brand.product_name
    exe_name = name + (".exe" if sys.platform.startswith("win") else "")
    artifact = out_dir / (name if request.onedir else exe_name)
    executable = artifact / exe_name if request.onedir else artifact
    # A previous build of the other kind would be in the way (a file where a folder goes).
    if artifact.is_dir():
        shutil.rmtree(artifact)
    elif artifact.exists():
        artifact.unlink()

    env = {k: v for k, v in os.environ.items() if k != "SOS_DEPLOYMENT_KEY"}
    env.update(
        SOS_BUILD_NAME=name,
        SOS_BUILD_STAGING=str(staging),
        SOS_BUILD_ONEDIR="1" if request.onedir else "0",
        SOS_BUILD_CONSOLE="1" if request.console else "0",
        PYTHONUNBUFFERED="1",
    )
    command = [
        sys.executable,
        "-m",
        "PyInstaller",
        "--noconfirm",
        "--log-level",
        "INFO",
        "--distpath",
        str(out_dir),
        "--workpath",
        str(work / "pyinstaller"),
        str(spec),
    ]
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    seen: set[str] = set()
    with (
        log_path.open("w", encoding="utf-8") as log,
        subprocess.Popen(
            command,
            cwd=work,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
        ) as process,
    ):
        assert process.stdout is not None
        for line in process.stdout:
            log.write(scrub(line))
            for pattern, label in _MILESTONES:
                if label not in seen and pattern.search(line):
                    seen.add(label)
                    progress(f"      {label} ({time.monotonic() - started:.0f} s)")
        status = process.wait()
    if status != 0 or not executable.is_file():
        tail = "".join(log_path.read_text(encoding="utf-8").splitlines(True)[-LOG_TAIL_LINES:])
        raise BuildFailed(
            f"PyInstaller failed (exit status {status}); full log: {log_path}",
            log_path=log_path,
            log_tail=scrub(tail),
        )
    progress(f"      done in {time.monotonic() - started:.0f} s; log: {log_path}")
    return artifact, executable
