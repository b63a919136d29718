"""``sos-agent``: the customer's SOS agent (tray + window), or headless for scripts."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from sos_agent import __version__
from sos_agent.config import AgentConfig, ConfigError, load_config, setup_logging

log = logging.getLogger("sos_agent")

EXIT_USAGE = 2
EXIT_NO_DISPLAY = 4
EXIT_HAND_OVER_FAILED = 5


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sos-agent", description="The SOS support agent: get help from your IT provider."
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("--brand", type=Path, help="brand folder (brand.toml + logo), for development")
    p.add_argument("--backend-url", help="backend address (default: SOS_BACKEND_URL or the brand)")
    p.add_argument("--deployment-key", help="sosd_ key (default: SOS_DEPLOYMENT_KEY or the brand)")
    p.add_argument("--data-dir", type=Path, help="folder for the agent's state, outbox and logs")
    action = p.add_mutually_exclusive_group()
    action.add_argument("--sos", action="store_true", help="ask for help (the SOS button)")
    action.add_argument("--join", metavar="CODE", help="join the case an expert opened")
    p.add_argument("--headless", action="store_true", help="no tray, no window: print JSON, exit")
    p.add_argument("--name", help="your name, sent with the case")
    p.add_argument("--email", help="your e-mail, sent with the case")
    p.add_argument("--description", help="what the problem is")
    p.add_argument(
        "--topic", metavar="NAME",
        help="what the request is about, one of the deployment's topics (routes the case)",
    )
    p.add_argument(
        "--timeout", type=float, default=20.0, help="headless: seconds to wait for the backend"
    )
    p.add_argument("--no-shortcut", action="store_true", help="never create desktop shortcuts")
    p.add_argument("--verbose", action="store_true", help="also log to stderr")
    return p


def _launch_args(args: argparse.Namespace, config: AgentConfig) -> tuple[str, ...]:
    """Flags a desktop shortcut repeats so that it starts this same agent (development runs)."""
    out: list[str] = []
    if config.brand_dir is not None:
        out += ["--brand", str(config.brand_dir)]
    if args.backend_url or os.environ.get("SOS_BACKEND_URL"):
        out += ["--backend-url", config.backend_url]
    if args.deployment_key or os.environ.get("SOS_DEPLOYMENT_KEY"):
        out += ["--deployment-key", config.deployment_key]
    if args.data_dir:
        out += ["--data-dir", str(config.data_dir)]
    return tuple(out)


def _command(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    fields = {
        k: getattr(args, k) for k in ("name", "email", "description", "topic") if getattr(args, k)
    }
    if args.join:
        return "join", {"code": args.join, **fields}
    if args.sos:
        return "sos", fields
    return "start", fields


def _fail(message: str, code: int) -> int:
    print(f"sos-agent: {message}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.join:
        from sos_agent.core import InvalidCode, normalize_code

        try:
            args.join = normalize_code(args.join)
        except InvalidCode:
            return _fail(f"{args.join!r} is not a session code (like s12-345-678)", EXIT_USAGE)
        if args.topic:
            return _fail(
                "--topic chooses where a new request goes; a joined case is the expert's own",
                EXIT_USAGE,
            )
    try:
        config = load_config(
            brand_dir=args.brand,
            backend_url=args.backend_url,
            deployment_key=args.deployment_key,
            data_dir=args.data_dir,
            environ=os.environ,
        )
    except ConfigError as exc:
        return _fail(str(exc), EXIT_USAGE)
    from dataclasses import replace

    config = replace(config, launch_args=_launch_args(args, config))
    try:
        setup_logging(config.log_dir, verbose=args.verbose)
    except OSError as exc:
        return _fail(f"cannot write the log folder {config.log_dir}: {exc}", EXIT_USAGE)
    command, command_args = _command(args)
    if args.no_shortcut:
        command_args["no_shortcut"] = True
    if args.headless:
        return run_headless(config, command, command_args, args.timeout)
    return run_gui(config, command, command_args)


def _make_core(config: AgentConfig, no_shortcut: bool):
    from sos_agent.core import AgentCore
    from sos_agent.shortcuts import install_shortcuts

    return AgentCore(config, install_shortcuts=None if no_shortcut else install_shortcuts)


def run_headless(config: AgentConfig, command: str, args: dict[str, Any], timeout: float) -> int:
    """Do one command without UI and print its result as JSON."""
    from sos_agent import instance
    from sos_agent.commands import HEADLESS_EXIT, handle

    core = _make_core(config, bool(args.get("no_shortcut")))
    inbox = instance.CommandInbox()
    server = instance.acquire(config.data_dir, inbox.handle)
    if server is None:
        # Another agent runs for this user: it does the work (one state, one outbox).
        try:
            result = instance.hand_over(
                config.data_dir, command, {**args, "timeout": timeout}, wait=True,
                result_timeout=timeout + 10,
            )
        except instance.HandOverFailed as exc:
            return _fail(str(exc), EXIT_HAND_OVER_FAILED)
        result["handed_over"] = True
    else:
        try:
            core.start()
            core.refresh_deployment()
            # Hand-overs wait for the deployment's settings (their topics are checked against them).
            inbox.open(lambda cmd, a: handle(core, cmd, a, float(a.get("timeout", timeout))))
            result = handle(core, command, args, timeout)
        finally:
            inbox.close("the agent is quitting")
            # A hand-over still waiting for its case gets its answer before this process goes.
            server.close(wait=timeout + 5)
            core.stop()
    print(json.dumps(result))
    if result.get("outcome") == "refused" and result.get("error"):
        print(f"sos-agent: {result['error']}", file=sys.stderr)  # for people; JSON for scripts
    return HEADLESS_EXIT.get(result.get("outcome", "ok"), 1)


def display_problem() -> str | None:
    """Why no window can be shown here, in one line; ``None`` when a display is available."""
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return "no display found (DISPLAY is not set); use --headless to run without a window"
    try:
        import tkinter
    except ImportError:
        return "tkinter is missing from this Python; use --headless or install python3-tk"
    try:
        root = tkinter.Tk()
        root.destroy()
    except tkinter.TclError as exc:
        return f"cannot open the display ({exc}); use --headless to run without a window"
    return None


def run_gui(config: AgentConfig, command: str, args: dict[str, Any]) -> int:
    """Hand over to the running agent, or become it: tray icon and window."""
    from sos_agent import instance

    started = time.monotonic()
    # Hand-overs that arrive while the window and tray are starting wait here, then run.
    inbox = instance.CommandInbox()
    server = instance.acquire(config.data_dir, inbox.handle)
    if server is None:
        try:
            instance.hand_over(config.data_dir, command, args, wait=False)
        except instance.HandOverFailed as exc:
            return _fail(str(exc), EXIT_HAND_OVER_FAILED)
        elapsed = time.monotonic() - started
        log.info("handed %s over to the running agent in %.3f s", command, elapsed)
        return 0
    try:
        problem = display_problem()
        if problem:
            inbox.close(problem)
            return _fail(problem, EXIT_NO_DISPLAY)
        from sos_agent.app import AgentApp

        app = AgentApp(config, _make_core(config, bool(args.get("no_shortcut"))))
        return app.run(command, args, on_ready=lambda: inbox.open(app.handle_command))
    finally:
        inbox.close("the agent is quitting")
        server.close(wait=5)


if __name__ == "__main__":
    sys.exit(main())
