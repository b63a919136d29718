"""Run the real ``sos-agent`` as a separate process against a live backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.agent.conftest import DEFAULT_BRAND


@dataclass
class AgentRunner:
    """Starts ``python -m sos_agent`` with one user's data folder and a private desktop."""

    backend_url: str
    deployment_key: str
    home: Path

    @property
    def data_dir(self) -> Path:
        return self.home / "agent-data"

    @property
    def desktop(self) -> Path:
        return self.home / "Desktop"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SOS_")}
        env.update(
            XDG_DESKTOP_DIR=str(self.desktop),
            XDG_DATA_HOME=str(self.home / ".local" / "share"),
            XDG_CONFIG_HOME=str(self.home / ".config"),
            PYTHONUNBUFFERED="1",
        )
        env.update(extra)
        return env

    def argv(self, *args: str) -> list[str]:
        return [
            sys.executable, "-m", "sos_agent",
            "--brand", str(DEFAULT_BRAND),
            "--backend-url", self.backend_url,
            "--deployment-key", self.deployment_key,
            "--data-dir", str(self.data_dir),
            *args,
        ]

    def popen(self, *args: str, **env: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(*args), env=self.env(**env), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )

    def headless(self, *args: str, timeout: float = 15) -> tuple[int, dict[str, Any]]:
        result = self.run_headless(*args, timeout=timeout)
        assert result.stdout.strip(), result.stderr
        return result.returncode, json.loads(result.stdout)

    def run_headless(self, *args: str, timeout: float = 15) -> subprocess.CompletedProcess[str]:
        """The finished headless process, for its exit code, JSON and stderr."""
        return subprocess.run(
            self.argv("--headless", "--timeout", str(timeout), *args),
            env=self.env(), capture_output=True, text=True, timeout=timeout + 30,
        )
