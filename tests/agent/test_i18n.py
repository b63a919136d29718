from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from sos_agent.i18n import LOCALE_DIR, resolve_language, system_language, translation

POT = LOCALE_DIR / "sos_agent.pot"


def _msgids(path: Path) -> list[str]:
    return [m for m in re.findall(r'^msgid "(.*)"$', path.read_text("utf-8"), re.M) if m]


@pytest.mark.parametrize("language", ["fr", "pt"])
def test_every_string_is_translated_in_the_compiled_catalogue(language: str) -> None:
    catalogue = translation(language)
    ids = _msgids(POT)
    assert len(ids) > 30
    untranslated = [i for i in ids if catalogue.gettext(i) == i]
    assert untranslated == []


def test_source_strings_are_all_in_the_template() -> None:
    source = (LOCALE_DIR.parent / "viewmodel.py").read_text("utf-8")
    used = set(re.findall(r'\b_\("((?:[^"\\]|\\.)*)"\)', source))
    used |= set(re.findall(r'\bN_\("((?:[^"\\]|\\.)*)"\)', source))
    assert used - set(_msgids(POT)) == set()


@pytest.mark.parametrize("language", ["fr", "pt"])
def test_committed_mo_files_match_their_po_sources(language: str, tmp_path: Path) -> None:
    if not shutil.which("msgfmt"):
        pytest.fail("msgfmt (Debian package gettext) is needed to check the catalogues")
    folder = LOCALE_DIR / language / "LC_MESSAGES"
    out = tmp_path / "x.mo"
    subprocess.run(["msgfmt", "-o", out, folder / "sos_agent.po"], check=True)
    assert out.read_bytes() == (folder / "sos_agent.mo").read_bytes()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"LANG": "fr_FR.UTF-8"}, "fr"),
        ({"LANGUAGE": "pt_BR:en", "LANG": "en_US.UTF-8"}, "pt"),
        ({"LC_ALL": "de_DE.UTF-8"}, "en"),
        ({"LANG": "C"}, "en"),
        ({}, "en"),
    ],
)
def test_system_language(env: dict[str, str], expected: str) -> None:
    assert system_language(env) == expected


def test_brand_language_wins_over_the_system() -> None:
    assert resolve_language("pt", {"LANG": "fr_FR"}) == "pt"
    assert resolve_language("auto", {"LANG": "fr_FR"}) == "fr"
