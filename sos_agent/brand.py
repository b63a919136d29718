"""Brand settings: a brand folder (``brand.toml`` + logo) and the resolved form a build bundles.

A brand folder is what IT staff edit; ``load_brand`` reads and validates it. ``sos-build`` then
writes the *resolved* brand (every default filled in, plus the backend URL and deployment key)
as ``brand.json`` beside ``logo.png`` into the bundle's ``sos_brand/`` folder, which the frozen
agent reads back with ``load_bundled_brand(bundled_brand_dir())``.

This module is imported at agent start-up: it needs only the standard library at import time
(Pillow is imported lazily, for the logo's size check).
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

BRAND_FILE = "brand.toml"
BUNDLED_BRAND_FILE = "brand.json"
BUNDLED_LOGO_FILE = "logo.png"
BUNDLE_FOLDER = "sos_brand"
DEFAULT_LOGO_FILE = "logo.png"
MIN_LOGO_SIZE = 256
LANGUAGES = ("auto", "en", "fr", "pt")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_COLOR = re.compile(r"#[0-9a-fA-F]{6}")
_URL = re.compile(r"https?://[^\s/?#]+[^\s]*", re.IGNORECASE)
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
# The product name becomes a file name (dist/<Product name>.exe) and a shortcut name.
_FILE_NAME_FORBIDDEN = re.compile(r'[<>:"/\\|?*\x00-\x1f]')

_TOP_KEYS = {
    "product_name": 40,
    "company": 80,
    "language": None,
    "shortcut_name": 40,
    "start_at_login": None,
    "backend_url": 2000,
    "logo": 200,
    "colors": None,
    "texts": None,
    "support": None,
}
_REQUIRED_KEYS = ("product_name", "company")
_COLOR_DEFAULTS = {
    "primary": "#1f6feb",
    "on_primary": "#ffffff",
    "background": "#ffffff",
    "text": "#1f2328",
}
_TEXT_LIMITS = {"welcome": 500, "waiting": 500, "consent": 2000}
_SUPPORT_LIMITS = {"email": 254, "phone": 40, "url": 2000}


class BrandError(ValueError):
    """A brand that cannot be used; ``problems`` lists each one with its field and its fix."""

    def __init__(self, source: Path | str, problems: list[str]) -> None:
        self.source = str(source)
        self.problems = list(problems)
        count = len(self.problems)
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"{self.source}: {count} {noun}:\n{lines}")


@dataclass(frozen=True)
class BrandColors:
    primary: str
    on_primary: str
    background: str
    text: str


@dataclass(frozen=True)
class SupportContact:
    email: str | None = None
    phone: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class Brand:
    product_name: str
    company: str
    language: str
    shortcut_name: str
    start_at_login: bool
    backend_url: str | None
    deployment_key: str | None
    colors: BrandColors
    texts: dict[str, str]
    support: SupportContact
    logo_path: Path

    def with_backend(self, backend_url: str, deployment_key: str | None) -> Brand:
        """This brand pointed at a backend (validated like the brand's own URL)."""
        problems: list[str] = []
        _check_url(problems, "backend_url", backend_url)
        if deployment_key is not None and not deployment_key.strip():
            problems.append("deployment_key: is empty; pass the key the backend gave you")
        if problems:
            raise BrandError("build settings", problems)
        return replace(self, backend_url=backend_url.rstrip("/"), deployment_key=deployment_key)

    def to_resolved_dict(self, *, include_key: bool = True) -> dict[str, Any]:
        """The resolved brand as JSON-ready data (``include_key=False`` for anything public)."""
        data = {
            "product_name": self.product_name,
            "company": self.company,
            "language": self.language,
            "shortcut_name": self.shortcut_name,
            "start_at_login": self.start_at_login,
            "backend_url": self.backend_url,
            "colors": asdict(self.colors),
            "texts": dict(self.texts),
            "support": asdict(self.support),
        }
        if include_key:
            data["deployment_key"] = self.deployment_key
        return data


def load_brand(folder: Path) -> Brand:
    """Read and validate ``folder/brand.toml`` and its logo; ``BrandError`` lists all problems."""
    folder = Path(folder)
    toml_path = folder / BRAND_FILE
    if not toml_path.is_file():
        raise BrandError(
            folder, [f"{BRAND_FILE}: not found; create {toml_path} (see branding/default/)"]
        )
    try:
        data = tomllib.loads(toml_path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        problem = f"{BRAND_FILE}: not valid TOML ({exc}); fix the syntax"
        raise BrandError(toml_path, [problem]) from exc
    problems: list[str] = []
    logo_name = data.get("logo", DEFAULT_LOGO_FILE)
    if not isinstance(logo_name, str) or not logo_name.strip():
        logo_name = DEFAULT_LOGO_FILE
    logo_path = folder / logo_name
    brand = _brand_from_data(data, logo_path, problems, allow_key=False)
    _check_logo(problems, logo_path)
    if problems or brand is None:
        raise BrandError(toml_path, problems)
    return brand


def load_bundled_brand(folder: Path) -> Brand:
    """Read the resolved brand a build wrote (``brand.json`` + ``logo.png`` in ``folder``)."""
    folder = Path(folder)
    json_path = folder / BUNDLED_BRAND_FILE
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        problem = f"{BUNDLED_BRAND_FILE}: not found; rebuild with sos-build"
        raise BrandError(folder, [problem]) from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BrandError(json_path, [f"{BUNDLED_BRAND_FILE}: not valid JSON ({exc})"]) from exc
    problems: list[str] = []
    logo_path = folder / BUNDLED_LOGO_FILE
    if not isinstance(data, dict):
        raise BrandError(json_path, ["brand.json: must hold an object; rebuild with sos-build"])
    brand = _brand_from_data(data, logo_path, problems, allow_key=True)
    if not logo_path.is_file():
        problems.append(f"logo: {logo_path} not found; rebuild with sos-build")
    if problems or brand is None:
        raise BrandError(json_path, problems)
    return brand


def write_bundled_brand(brand: Brand, folder: Path) -> Path:
    """Write the resolved brand (``brand.json``, key included) and ``logo.png`` into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / BUNDLED_BRAND_FILE
    payload = json.dumps(brand.to_resolved_dict(include_key=True), indent=2, ensure_ascii=False)
    target.write_text(payload + "\n", encoding="utf-8")
    logo_target = folder / BUNDLED_LOGO_FILE
    if Path(brand.logo_path).resolve() != logo_target.resolve():
        logo_target.write_bytes(Path(brand.logo_path).read_bytes())
    return target


def bundled_brand_dir() -> Path | None:
    """Where a frozen agent finds its brand (``sys._MEIPASS/sos_brand``); else ``None``."""
    base = getattr(sys, "_MEIPASS", None)
    if not getattr(sys, "frozen", False) or base is None:
        return None
    return Path(base) / BUNDLE_FOLDER


# --- validation -------------------------------------------------------------------------------


def _brand_from_data(
    data: dict[str, Any], logo_path: Path, problems: list[str], *, allow_key: bool
) -> Brand | None:
    allowed = dict(_TOP_KEYS)
    if allow_key:
        allowed["deployment_key"] = None
        allowed.pop("logo")
    _check_unknown(problems, data, allowed, section=None)
    for key in _REQUIRED_KEYS:
        if key not in data:
            problems.append(f'{key}: missing; add {key} = "..." to {BRAND_FILE}')

    product_name = _text(problems, data, "product_name", _TOP_KEYS["product_name"], "")
    if product_name and _FILE_NAME_FORBIDDEN.search(product_name):
        problems.append(
            "product_name: contains a character not allowed in file names "
            '(< > : " / \\ | ? * or control characters); remove it'
        )
    if product_name and product_name != product_name.strip(" ."):
        problems.append("product_name: starts or ends with a space or dot; remove it")
    company = _text(problems, data, "company", _TOP_KEYS["company"], "")
    shortcut_name = _text(
        problems, data, "shortcut_name", _TOP_KEYS["shortcut_name"], product_name or "SOS"
    )
    if shortcut_name and _FILE_NAME_FORBIDDEN.search(shortcut_name):
        problems.append(
            "shortcut_name: contains a character not allowed in file names "
            '(< > : " / \\ | ? * or control characters); remove it'
        )

    language = data.get("language", "auto")
    if language not in LANGUAGES:
        problems.append(
            f"language: {language!r} is not supported; use one of {', '.join(LANGUAGES)}"
        )
    start_at_login = data.get("start_at_login", False)
    if not isinstance(start_at_login, bool):
        problems.append(
            f"start_at_login: {start_at_login!r} is not true or false; write true or false"
        )

    backend_url = data.get("backend_url")
    if backend_url is not None:
        if _check_url(problems, "backend_url", backend_url):
            backend_url = backend_url.rstrip("/")
    deployment_key = data.get("deployment_key") if allow_key else None
    if deployment_key is not None and not isinstance(deployment_key, str):
        problems.append("deployment_key: must be a string; rebuild with sos-build")

    colors_data = _section(problems, data, "colors")
    _check_unknown(problems, colors_data, _COLOR_DEFAULTS, section="colors")
    colors = {}
    for name, default in _COLOR_DEFAULTS.items():
        value = colors_data.get(name, default)
        if not isinstance(value, str) or not _COLOR.fullmatch(value):
            problems.append(
                f"colors.{name}: {value!r} is not a colour of the form #rrggbb; "
                f'write six hex digits, e.g. "{default}"'
            )
            value = default
        colors[name] = value.lower()

    texts_data = _section(problems, data, "texts")
    _check_unknown(problems, texts_data, _TEXT_LIMITS, section="texts")
    texts = {
        name: _text(problems, texts_data, name, limit, "", label=f"texts.{name}")
        for name, limit in _TEXT_LIMITS.items()
    }

    support_data = _section(problems, data, "support")
    _check_unknown(problems, support_data, _SUPPORT_LIMITS, section="support")
    support: dict[str, str | None] = {}
    for name, limit in _SUPPORT_LIMITS.items():
        value = _text(problems, support_data, name, limit, "", label=f"support.{name}") or None
        if value and name == "url" and not _check_url(problems, "support.url", value):
            value = None
        if value and name == "email" and not _EMAIL.fullmatch(value):
            problems.append(f"support.email: {value!r} is not an e-mail address; write name@domain")
            value = None
        support[name] = value

    if problems:
        return None
    return Brand(
        product_name=product_name,
        company=company,
        language=language,
        shortcut_name=shortcut_name,
        start_at_login=start_at_login,
        backend_url=backend_url,
        deployment_key=deployment_key,
        colors=BrandColors(**colors),
        texts=texts,
        support=SupportContact(**support),
        logo_path=logo_path,
    )


def _check_unknown(
    problems: list[str], data: dict[str, Any], allowed: dict[str, Any], section: str | None
) -> None:
    where = f"[{section}]" if section else BRAND_FILE
    prefix = f"{section}." if section else ""
    for key in data:
        if key in allowed:
            continue
        import difflib  # lazy: only needed to explain a mistake

        close = difflib.get_close_matches(key, list(allowed), n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(allowed)}"
        problems.append(f"{prefix}{key}: unknown key in {where}; remove it ({hint})")


def _section(problems: list[str], data: dict[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        problems.append(f"{name}: must be a table; write it as a [{name}] section")
        return {}
    return value


def _text(
    problems: list[str],
    data: dict[str, Any],
    name: str,
    limit: int | None,
    default: str,
    *,
    label: str | None = None,
) -> str:
    label = label or name
    value = data.get(name, default)
    if value is None:
        return default
    if not isinstance(value, str):
        problems.append(f'{label}: {value!r} is not text; put it in quotes ("...")')
        return default
    value = value.strip()
    if name in _REQUIRED_KEYS and name in data and not value:
        problems.append(f"{label}: is empty; give it a value")
    if limit is not None and len(value) > limit:
        problems.append(
            f"{label}: too long ({len(value)} characters); shorten it to at most {limit}"
        )
    return value


def _check_url(problems: list[str], label: str, value: Any) -> bool:
    if not isinstance(value, str) or not _URL.fullmatch(value.strip()):
        problems.append(
            f"{label}: {value!r} is not an http(s) URL; write it like https://support.example.com"
        )
        return False
    return True


def _check_logo(problems: list[str], logo_path: Path) -> None:
    if not logo_path.is_file():
        problems.append(
            f"logo: {logo_path.name} not found in {logo_path.parent}; add a square PNG of at "
            f"least {MIN_LOGO_SIZE}x{MIN_LOGO_SIZE} px"
        )
        return
    with logo_path.open("rb") as fh:
        if fh.read(len(PNG_SIGNATURE)) != PNG_SIGNATURE:
            problems.append(f"logo: {logo_path.name} is not a PNG file; save it as PNG")
            return
    from PIL import Image, UnidentifiedImageError  # lazy: the agent's start-up skips Pillow

    try:
        with Image.open(logo_path) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError) as exc:
        problems.append(f"logo: {logo_path.name} cannot be read as PNG ({exc}); re-export it")
        return
    if min(width, height) < MIN_LOGO_SIZE:
        problems.append(
            f"logo: {logo_path.name} is {width}x{height} px; use at least "
            f"{MIN_LOGO_SIZE}x{MIN_LOGO_SIZE} px"
        )
