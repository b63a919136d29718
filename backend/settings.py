"""Settings read once from ``SOS_*`` environment variables into a typed object."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from limits import parse_many

DEV_SECRET_KEY = "sos-development-secret-key-do-not-use-in-production"


class SettingsError(ValueError):
    """A setting has a value the backend cannot run with."""


def _env_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise SettingsError(f"expected a yes/no value (1, 0, true, false), got {value!r}")


def _env_seconds(name: str, value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise SettingsError(f"{name} must be a number of seconds, got {value!r}") from None
    if seconds <= 0:
        raise SettingsError(f"{name} must be positive, got {value!r}")
    return seconds


def _env_rate_limit(name: str, value: str) -> str:
    try:
        parse_many(value)
    except ValueError:
        raise SettingsError(
            f"{name} must be a rate limit such as '30/minute' or '10/minute;100/hour', "
            f"got {value!r}"
        ) from None
    return value


# The limit strings, each read from SOS_ + its field name in capitals (SOS_RATELIMIT_TOKEN...).
RATE_LIMIT_FIELDS = (
    "ratelimit_case_device",
    "ratelimit_case_deployment",
    "ratelimit_login_account",
    "ratelimit_login_address",
    "ratelimit_token",
)


@dataclass(frozen=True)
class Settings:
    """Everything the backend reads from its environment, with laptop-friendly defaults."""

    instance_path: Path = field(default_factory=lambda: Path.cwd() / "instance")
    database_url: str | None = None
    secret_key: str | None = None
    debug: bool = False
    case_ttl: float = 24 * 3600.0
    presence_timeout: float = 60.0
    sweep_interval: float = 30.0
    feed_poll_interval: float = 1.0
    max_body_bytes: int = 64 * 1024
    session_cookie_secure: bool = False
    password_hash_fast: bool = False  # tests only: cheap Argon2 parameters
    public_url: str | None = None
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_from: str = "sos@localhost"
    smtp_starttls: bool = False
    trusted_proxies: int = 0  # reverse proxies in front whose X-Forwarded-For/-Proto are trusted
    ratelimit_enabled: bool = True
    ratelimit_storage: str | None = None  # None: per-process memory; e.g. redis://host:6379/0
    ratelimit_key_prefix: str = "sos"
    ratelimit_case_device: str = "30/minute"
    ratelimit_case_deployment: str = "600/minute"
    ratelimit_login_account: str = "10/minute"
    ratelimit_login_address: str = "30/minute"
    ratelimit_token: str = "1200/minute"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        if "SOS_INSTANCE_PATH" in env:
            values["instance_path"] = Path(env["SOS_INSTANCE_PATH"]).expanduser()
        if env.get("SOS_DATABASE_URL"):
            values["database_url"] = env["SOS_DATABASE_URL"]
        if env.get("SOS_SECRET_KEY"):
            values["secret_key"] = env["SOS_SECRET_KEY"]
        if "SOS_DEBUG" in env:
            values["debug"] = _env_bool(env["SOS_DEBUG"])
        if "SOS_CASE_TTL" in env:
            values["case_ttl"] = _env_seconds("SOS_CASE_TTL", env["SOS_CASE_TTL"])
        if "SOS_PRESENCE_TIMEOUT" in env:
            values["presence_timeout"] = _env_seconds(
                "SOS_PRESENCE_TIMEOUT", env["SOS_PRESENCE_TIMEOUT"]
            )
        if "SOS_SWEEP_INTERVAL" in env:
            values["sweep_interval"] = _env_seconds("SOS_SWEEP_INTERVAL", env["SOS_SWEEP_INTERVAL"])
        if "SOS_FEED_POLL_INTERVAL" in env:
            values["feed_poll_interval"] = _env_seconds(
                "SOS_FEED_POLL_INTERVAL", env["SOS_FEED_POLL_INTERVAL"]
            )
        if "SOS_SESSION_COOKIE_SECURE" in env:
            values["session_cookie_secure"] = _env_bool(env["SOS_SESSION_COOKIE_SECURE"])
        for name in ("public_url", "smtp_host", "smtp_user", "smtp_password", "smtp_from"):
            if env.get(f"SOS_{name.upper()}"):
                values[name] = env[f"SOS_{name.upper()}"]
        if env.get("SOS_SMTP_PORT"):
            try:
                values["smtp_port"] = int(env["SOS_SMTP_PORT"])
            except ValueError:
                raise SettingsError(
                    f"SOS_SMTP_PORT must be a port number, got {env['SOS_SMTP_PORT']!r}"
                ) from None
        if "SOS_SMTP_STARTTLS" in env:
            values["smtp_starttls"] = _env_bool(env["SOS_SMTP_STARTTLS"])
        if env.get("SOS_TRUSTED_PROXIES"):
            raw = env["SOS_TRUSTED_PROXIES"]
            if not raw.isdigit():
                raise SettingsError(
                    f"SOS_TRUSTED_PROXIES must be the number of proxies in front, got {raw!r}"
                )
            values["trusted_proxies"] = int(raw)
        if "SOS_RATELIMIT_ENABLED" in env:
            values["ratelimit_enabled"] = _env_bool(env["SOS_RATELIMIT_ENABLED"])
        if env.get("SOS_RATELIMIT_STORAGE"):
            values["ratelimit_storage"] = env["SOS_RATELIMIT_STORAGE"]
        if env.get("SOS_RATELIMIT_KEY_PREFIX"):
            values["ratelimit_key_prefix"] = env["SOS_RATELIMIT_KEY_PREFIX"]
        for name in RATE_LIMIT_FIELDS:
            variable = f"SOS_{name.upper()}"
            if env.get(variable):
                values[name] = _env_rate_limit(variable, env[variable])
        values.update(overrides)
        return cls(**values)

    def with_overrides(self, **overrides: Any) -> Settings:
        return replace(self, **overrides)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.instance_path / 'sos.sqlite3'}"

    def resolve_secret_key(self) -> str:
        """Return the key that signs session cookies, refusing insecure ones outside debug.

        Unset outside debug, a random key is generated once and kept in the instance folder,
        so a first start needs no set-up and no weak key is ever used.
        """
        if self.secret_key:
            if not self.debug and (self.secret_key == DEV_SECRET_KEY or len(self.secret_key) < 32):
                raise SettingsError(
                    "SOS_SECRET_KEY is the development key or shorter than 32 characters; "
                    "set a long random value (python -c 'import secrets; "
                    "print(secrets.token_urlsafe(48))') or run with SOS_DEBUG=1"
                )
            return self.secret_key
        if self.debug:
            return DEV_SECRET_KEY
        key_file = self.instance_path / "secret_key"
        if key_file.exists():
            return key_file.read_text(encoding="utf-8").strip()
        self.instance_path.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(key)
        return key
