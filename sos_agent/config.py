"""The agent's configuration: the brand, the backend settings and the per-user folders.

Brand settings come from the bundled ``brand.json`` when frozen, or from a brand folder in
development. The backend URL and deployment key come from the brand (baked in by the build),
else from flags or ``SOS_BACKEND_URL`` / ``SOS_DEPLOYMENT_KEY``. The deployment's own settings
(which customer fields to ask for, which topics to offer) are fetched from ``GET /agent/config``
and merged in; the last answer is cached in the data folder so that an offline start knows them
too.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import platformdirs

from sos_agent.brand import Brand, BrandError, bundled_brand_dir, load_brand, load_bundled_brand

CUSTOMER_FIELDS = ("name", "email", "description")
DEFAULT_CUSTOMER_FIELDS = CUSTOMER_FIELDS
APP_DIR_NAME = "SOS Agent"
LOG_FILE = "agent.log"
LOG_MAX_BYTES = 1_000_000
LOG_BACKUPS = 3


class ConfigError(Exception):
    """A setting the agent cannot start with; the message tells the person what to fix."""


@dataclass(frozen=True)
class DeploymentSettings:
    """The deployment's public settings from ``GET /agent/config``."""

    name: str | None = None
    group_name: str | None = None
    customer_fields: tuple[str, ...] = DEFAULT_CUSTOMER_FIELDS
    # The topics the customer may choose from (each routed to a group by the backend).
    topics: tuple[str, ...] = ()

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> DeploymentSettings:
        """Parse the backend's answer, keeping only fields this agent knows how to ask for."""
        fields = data.get("customer_fields")
        if not isinstance(fields, list):
            fields = list(DEFAULT_CUSTOMER_FIELDS)
        known = tuple(f for f in CUSTOMER_FIELDS if f in fields)
        deployment = data.get("deployment") or {}
        group = data.get("group") or {}
        return cls(
            name=deployment.get("name") if isinstance(deployment, dict) else None,
            group_name=group.get("name") if isinstance(group, dict) else None,
            customer_fields=known,
            topics=_topic_names(data.get("topics")),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "deployment": {"name": self.name},
            "group": {"name": self.group_name},
            "customer_fields": list(self.customer_fields),
            "topics": list(self.topics),
        }

    def find_topic(self, name: str) -> str | None:
        """The offered topic called ``name`` (case-insensitively), in the deployment's spelling."""
        wanted = name.strip()
        if wanted in self.topics:
            return wanted
        matches = [t for t in self.topics if t.casefold() == wanted.casefold()]
        return matches[0] if len(matches) == 1 else None


def _topic_names(value: Any) -> tuple[str, ...]:
    """Topic names from the backend (a list of names), in order, without blanks or repeats."""
    if not isinstance(value, list):
        return ()
    names: list[str] = []
    for item in value:
        # Tolerate the admin shape ({"name", "group_id"}) too: only the name matters here.
        name = item.get("name") if isinstance(item, dict) else item
        if isinstance(name, str) and name.strip() and name.strip() not in names:
            names.append(name.strip())
    return tuple(names)


@dataclass(frozen=True)
class AgentConfig:
    """Everything the agent runs with; built once at start-up by :func:`load_config`."""

    brand: Brand
    backend_url: str
    deployment_key: str
    data_dir: Path
    log_dir: Path
    brand_dir: Path | None = None
    deployment: DeploymentSettings = field(default_factory=DeploymentSettings)
    # Flags a shortcut must repeat to start this same agent (development runs only).
    launch_args: tuple[str, ...] = ()

    def with_deployment(self, deployment: DeploymentSettings) -> AgentConfig:
        """This configuration merged with the deployment's settings from the backend."""
        return replace(self, deployment=deployment)


def find_brand(brand_dir: Path | None) -> tuple[Brand, Path | None]:
    """The brand: the ``--brand`` folder, else the bundled one, else ``branding/default``."""
    if brand_dir is not None:
        return load_brand(brand_dir), Path(brand_dir).resolve()
    bundled = bundled_brand_dir()
    if bundled is not None:
        return load_bundled_brand(bundled), None
    default = Path(__file__).resolve().parent.parent / "branding" / "default"
    if (default / "brand.toml").is_file():
        return load_brand(default), default
    raise ConfigError("no brand: pass --brand FOLDER (a folder with brand.toml and its logo)")


def load_config(
    *,
    brand_dir: Path | None = None,
    backend_url: str | None = None,
    deployment_key: str | None = None,
    data_dir: Path | None = None,
    log_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> AgentConfig:
    """Build the configuration from flags, the environment and the brand; ``ConfigError`` if bad.

    Precedence: flags, then ``SOS_*`` environment variables, then the values baked into the brand.
    """
    env = environ if environ is not None else {}
    try:
        brand, resolved_dir = find_brand(brand_dir)
        url = backend_url or env.get("SOS_BACKEND_URL") or brand.backend_url
        key = deployment_key or env.get("SOS_DEPLOYMENT_KEY") or brand.deployment_key
        if not url:
            raise ConfigError(
                "no backend address: pass --backend-url URL or set SOS_BACKEND_URL "
                "(a built agent has it baked in)"
            )
        brand = brand.with_backend(url, key)
    except BrandError as exc:
        problems = "; ".join(exc.problems)
        raise ConfigError(f"bad brand {exc.source}: {problems}") from exc
    if not brand.deployment_key:
        raise ConfigError(
            "no deployment key: pass --deployment-key sosd_... or set SOS_DEPLOYMENT_KEY "
            "(a built agent has it baked in)"
        )
    if not brand.deployment_key.startswith("sosd_"):
        raise ConfigError("the deployment key must start with 'sosd_'; copy it from the backend")
    data = Path(data_dir or env.get("SOS_AGENT_DATA_DIR") or _user_dir("data", brand))
    logs = Path(log_dir) if log_dir else (
        data / "logs" if (data_dir or env.get("SOS_AGENT_DATA_DIR")) else _user_dir("log", brand)
    )
    return AgentConfig(
        brand=brand,
        backend_url=brand.backend_url or url,
        deployment_key=brand.deployment_key,
        data_dir=data.resolve(),
        log_dir=logs.resolve(),
        brand_dir=resolved_dir,
    )


def _user_dir(kind: str, brand: Brand) -> Path:
    # One folder per brand: two providers' agents on one computer must not share a device state.
    name = f"{brand.product_name} Agent" if brand.product_name else APP_DIR_NAME
    if kind == "log":
        return Path(platformdirs.user_log_dir(name, appauthor=False))
    return Path(platformdirs.user_data_dir(name, appauthor=False))


def setup_logging(
    log_dir: Path,
    *,
    verbose: bool = False,
    max_bytes: int = LOG_MAX_BYTES,
    backups: int = LOG_BACKUPS,
) -> None:
    """Log to a rotating file in the per-user log folder (and to stderr with ``--verbose``)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(
        log_dir / LOG_FILE, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
    )
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s")
    )
    root = logging.getLogger("sos_agent")
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for old in list(root.handlers):
        if getattr(old, "_sos_agent", False):
            root.removeHandler(old)
            old.close()
    handler._sos_agent = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    if verbose:
        stream = logging.StreamHandler(sys.stderr)
        stream._sos_agent = True  # type: ignore[attr-defined]
        root.addHandler(stream)
