"""The console's languages: English source strings, French and Portuguese catalogues.

Catalogues are JSON files in ``translations/`` mapping each English string to its
translation; a string missing from a catalogue falls back to English. The same catalogue is
handed to the page's JavaScript, so server and browser speak with one voice.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

LANGUAGES = {"en": "English", "fr": "Français", "pt": "Português"}
DEFAULT_LANGUAGE = "en"
CATALOGUES = Path(__file__).with_name("translations")


@cache
def catalogue(language: str) -> dict[str, str]:
    """The translations of one language (empty for English, the source language)."""
    if language == DEFAULT_LANGUAGE or language not in LANGUAGES:
        return {}
    return json.loads((CATALOGUES / f"{language}.json").read_text(encoding="utf-8"))


def translate(language: str, text: str, **values: object) -> str:
    """``text`` in ``language``, with ``{name}`` placeholders filled from ``values``."""
    translated = catalogue(language).get(text, text)
    return translated.format(**values) if values else translated


def choose_language(requested: str | None, accept_languages: list[str]) -> str:
    """The language asked for explicitly, else the browser's first supported one."""
    if requested in LANGUAGES:
        return requested
    for tag in accept_languages:
        base = tag.split("-")[0].lower()
        if base in LANGUAGES:
            return base
    return DEFAULT_LANGUAGE
