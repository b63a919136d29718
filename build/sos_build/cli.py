"""``sos-build``: turn a brand folder into the branded one-file agent."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from sos_agent.brand import BrandError, load_brand
from sos_build.builder import BuildFailed, BuildRequest, build, default_spec

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sos-build",
        description=(
            "Build the branded SOS agent for this operating system: validates the brand, "
            "renders its icons, bakes in the backend URL and deployment key, and writes "
            "dist/<Product name> plus a manifest."
        ),
        epilog="Prefer SOS_DEPLOYMENT_KEY to --deployment-key: a flag is visible to other users.",
    )
    p.add_argument("brand_dir", type=Path, metavar="BRAND_DIR", help="e.g. branding/default")
    p.add_argument(
        "--backend-url",
        default=os.environ.get("SOS_BACKEND_URL"),
        help="the backend the agent talks to (env SOS_BACKEND_URL; else the brand's backend_url)",
    )
    p.add_argument(
        "--deployment-key",
        default=os.environ.get("SOS_DEPLOYMENT_KEY"),
        help="the deployment's sosd_… key (env SOS_DEPLOYMENT_KEY)",
    )
    p.add_argument(
        "--deployment-id",
        type=int,
        default=None,
        help="recorded in the manifest; looked up from the backend when omitted",
    )
    p.add_argument("--onedir", action="store_true", help="a folder instead of one file")
    p.add_argument("--out", type=Path, default=Path("dist"), help="output folder (default: dist)")
    p.add_argument(
        "--work-dir",
        type=Path,
        default=Path(".pyinstaller"),
        help="PyInstaller's scratch folder and log (default: .pyinstaller)",
    )
    p.add_argument("--console", action="store_true", help="keep a console window (Windows/macOS)")
    p.add_argument("--spec", type=Path, default=None, help=f"default: {default_spec()}")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    problems: list[str] = []
    brand = None
    try:
        brand = load_brand(args.brand_dir)
    except BrandError as exc:
        problems += [f"brand: {problem}" for problem in exc.problems]
    backend_url = args.backend_url or (brand.backend_url if brand else None)
    if not backend_url:
        problems.append(
            "backend URL: missing; pass --backend-url URL or set SOS_BACKEND_URL "
            "(or backend_url in brand.toml)"
        )
    if not args.deployment_key or not args.deployment_key.strip():
        problems.append(
            "deployment key: missing; set SOS_DEPLOYMENT_KEY (or pass --deployment-key) to the "
            "key the backend gave when the deployment was created"
        )
    scratch_root = default_spec().parent.resolve()
    for label, folder in (("--out", args.out), ("--work-dir", args.work_dir)):
        resolved = folder.resolve()
        if resolved == scratch_root or scratch_root in resolved.parents:
            problems.append(
                f"{label}: {resolved} is inside {scratch_root}, which holds the build recipe; "
                "choose a folder outside it"
            )
    if problems:
        _error(f"cannot build {args.brand_dir}:", problems)
        return EXIT_USAGE

    request = BuildRequest(
        brand_dir=args.brand_dir,
        backend_url=backend_url,
        deployment_key=args.deployment_key.strip(),
        deployment_id=args.deployment_id,
        onedir=args.onedir,
        out_dir=args.out,
        work_dir=args.work_dir,
        console=args.console,
        spec=args.spec,
    )
    try:
        result = build(request, progress=_say)
    except BrandError as exc:
        _error(f"the brand in {exc.source} cannot be used:", exc.problems)
        return EXIT_USAGE
    except BuildFailed as exc:
        if exc.log_tail:
            print("---- end of the PyInstaller log ----", file=sys.stderr)
            print(exc.log_tail.rstrip(), file=sys.stderr)
            print("----", file=sys.stderr)
        _error(str(exc), [])
        return EXIT_FAILED
    manifest = result.manifest
    _say(f"Built {result.artifact} ({manifest['size'] / 1e6:.1f} MB, sha256 {manifest['sha256']})")
    _say(f"Manifest: {result.manifest_path}")
    return EXIT_OK


def _say(line: str) -> None:
    print(line, flush=True)


def _error(headline: str, problems: list[str]) -> None:
    print(f"sos-build: {headline}", file=sys.stderr)
    for problem in problems:
        print(f"  - {problem}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
