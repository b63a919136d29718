"""The manifest written beside a build: what was built, for which backend, and its checksum.

It is meant to be published with the executable, so it never holds the deployment key.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

import sos_agent
from sos_agent.brand import Brand

MANIFEST_SCHEMA = 1
LOOKUP_TIMEOUT = 5.0


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def size_of(path: Path) -> int:
    """Bytes of a file, or of every file in a folder."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def lookup_deployment_id(backend_url: str | None, deployment_key: str) -> int | None:
    """The deployment's id from ``GET /api/v1/agent/config``; ``None`` when it cannot be had."""
    if not backend_url:
        return None
    try:
        response = requests.get(
            backend_url.rstrip("/") + "/api/v1/agent/config",
            headers={"Authorization": f"Bearer {deployment_key}"},
            timeout=LOOKUP_TIMEOUT,
        )
        if not response.ok:
            return None
        deployment_id = response.json().get("deployment", {}).get("id")
    except (requests.RequestException, ValueError, AttributeError):
        return None
    return deployment_id if isinstance(deployment_id, int) else None


def build_manifest(
    *,
    brand: Brand,
    brand_dir: Path,
    artifact: Path,
    executable: Path,
    onedir: bool,
    deployment_id: int | None,
) -> dict[str, Any]:
    """Describe a finished build (``artifact`` is the file, or the folder for ``--onedir``)."""
    import PyInstaller

    return {
        "schema": MANIFEST_SCHEMA,
        "version": sos_agent.__version__,
        "brand": {
            "folder": Path(brand_dir).resolve().name,
            "product_name": brand.product_name,
            "company": brand.company,
            "language": brand.language,
        },
        "backend_url": brand.backend_url,
        "deployment_id": deployment_id,
        "kind": "onedir" if onedir else "onefile",
        "file": artifact.name,
        "executable": executable.relative_to(artifact.parent).as_posix(),
        "size": size_of(artifact),
        "sha256": sha256_of(executable),
        "built_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "platform": f"{sys.platform}-{platform.machine().lower()}",
        "python": platform.python_version(),
        "pyinstaller": PyInstaller.__version__,
    }


def manifest_path_for(out_dir: Path, product_name: str) -> Path:
    return Path(out_dir) / f"{product_name}.manifest.json"


def write_manifest(manifest: dict[str, Any], out_dir: Path, product_name: str) -> Path:
    target = manifest_path_for(out_dir, product_name)
    target.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return target
