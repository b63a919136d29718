"""Customer-facing text in English, French and Portuguese (gettext catalogues in ``locale/``).

The ``.po`` files are the sources; the compiled ``.mo`` files are committed beside them so that
the wheel and the PyInstaller bundle carry them (``tests/agent/test_i18n.py`` checks they are up
to date). The language is the brand's, or the system's when the brand says ``auto``.
"""

from __future__ import annotations

import gettext
import locale
import os
from collections.abc import Mapping
from pathlib import Path

DOMAIN = "sos_agent"
LANGUAGES = ("en", "fr", "pt")
LOCALE_DIR = Path(__file__).resolve().parent / "locale"


def system_language(environ: Mapping[str, str] | None = None) -> str:
    """The first supported language in the user's locale settings, else English."""
    env = os.environ if environ is None else environ
    candidates: list[str] = []
    for var in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        if value := env.get(var):
            candidates.extend(value.split(":"))
    if environ is None:
        try:
            lang = locale.getlocale()[0]
        except ValueError:
            lang = None
        if lang:
            candidates.append(lang)
    for candidate in candidates:
        code = candidate.split(".")[0].split("_")[0].split("-")[0].lower()
        if code in LANGUAGES:
            return code
        if code not in ("c", "posix", ""):
            return "en"
    return "en"


def resolve_language(brand_language: str, environ: Mapping[str, str] | None = None) -> str:
    """The brand's language, or the system's for ``auto``."""
    if brand_language in LANGUAGES:
        return brand_language
    return system_language(environ)


def translation(language: str) -> gettext.NullTranslations:
    """The catalogue for ``language`` (English is the source text itself)."""
    return gettext.translation(DOMAIN, LOCALE_DIR, languages=[language], fallback=True)
