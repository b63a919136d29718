"""Brand folders: each bad field gives a message naming the field and the fix."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from sos_agent.brand import (
    Brand,
    BrandError,
    bundled_brand_dir,
    load_brand,
    load_bundled_brand,
    write_bundled_brand,
)

REPO = Path(__file__).resolve().parents[2]
DEFAULT_BRAND = REPO / "branding" / "default"
EXAMPLE_BRAND = REPO / "branding" / "example-acme"

GOOD_TOML = """
product_name = "Test Help"
company = "Test Co"
language = "en"
shortcut_name = "Test SOS"
start_at_login = true
backend_url = "https://support.test.example"

[colors]
primary = "#112233"
on_primary = "#ffffff"
background = "#fafafa"
text = "#000000"

[texts]
welcome = "Hello"
waiting = "Please wait"
consent = "You agree"

[support]
email = "help@test.example"
phone = "+1 555 0100"
url = "https://test.example/help"
"""


def make_brand(tmp_path: Path, toml: str = GOOD_TOML, logo_size: tuple[int, int] = (256, 256)):
    folder = tmp_path / "brand"
    folder.mkdir()
    (folder / "brand.toml").write_text(toml, encoding="utf-8")
    Image.new("RGBA", logo_size, (10, 20, 30, 0)).save(folder / "logo.png")
    return folder


def problems_of(folder: Path) -> list[str]:
    with pytest.raises(BrandError) as info:
        load_brand(folder)
    assert str(folder) in str(info.value)
    return info.value.problems


def only_problem(folder: Path) -> str:
    problems = problems_of(folder)
    assert len(problems) == 1, problems
    return problems[0]


@pytest.mark.parametrize("folder", [DEFAULT_BRAND, EXAMPLE_BRAND], ids=["default", "example"])
def test_shipped_brands_are_valid(folder: Path) -> None:
    brand = load_brand(folder)
    assert brand.product_name
    assert brand.logo_path.is_file()
    assert brand.deployment_key is None


def test_good_brand_loads_every_field(tmp_path: Path) -> None:
    brand = load_brand(make_brand(tmp_path))
    assert brand.product_name == "Test Help"
    assert brand.company == "Test Co"
    assert brand.language == "en"
    assert brand.shortcut_name == "Test SOS"
    assert brand.start_at_login is True
    assert brand.backend_url == "https://support.test.example"
    assert brand.colors.primary == "#112233"
    assert brand.texts == {"welcome": "Hello", "waiting": "Please wait", "consent": "You agree"}
    assert brand.support.email == "help@test.example"
    assert brand.support.url == "https://test.example/help"


def test_minimal_brand_gets_defaults(tmp_path: Path) -> None:
    brand = load_brand(make_brand(tmp_path, 'product_name = "Mini"\ncompany = "Co"\n'))
    assert brand.language == "auto"
    assert brand.shortcut_name == "Mini"
    assert brand.start_at_login is False
    assert brand.backend_url is None
    assert brand.texts == {"welcome": "", "waiting": "", "consent": ""}
    assert brand.support.email is None and brand.support.phone is None


def test_missing_logo_is_named_with_the_fix(tmp_path: Path) -> None:
    folder = make_brand(tmp_path)
    (folder / "logo.png").unlink()
    message = only_problem(folder)
    assert message.startswith("logo:") and "not found" in message and "256x256" in message


def test_logo_that_is_not_png_is_refused(tmp_path: Path) -> None:
    folder = make_brand(tmp_path)
    Image.new("RGB", (300, 300)).save(folder / "logo.png", format="JPEG")
    assert only_problem(folder) == "logo: logo.png is not a PNG file; save it as PNG"


def test_small_logo_is_refused_with_its_size(tmp_path: Path) -> None:
    folder = make_brand(tmp_path, logo_size=(128, 300))
    message = only_problem(folder)
    assert "128x300 px" in message and "at least 256x256 px" in message


@pytest.mark.parametrize("field", ["primary", "on_primary", "background", "text"])
@pytest.mark.parametrize("bad", ["red", "#12345", "#gggggg", "112233"])
def test_colour_not_rrggbb_is_refused(tmp_path: Path, field: str, bad: str) -> None:
    toml = GOOD_TOML.replace(f'{field} = "', f'{field} = "{bad}" #', 1)
    message = only_problem(make_brand(tmp_path, toml))
    assert message.startswith(f"colors.{field}: '{bad}' is not a colour of the form #rrggbb")
    assert "six hex digits" in message


@pytest.mark.parametrize(
    "bad", ["ftp://x.example", "support.example.com", "https://", "javascript:x"]
)
def test_backend_url_not_http_is_refused(tmp_path: Path, bad: str) -> None:
    toml = GOOD_TOML.replace('"https://support.test.example"', f'"{bad}"')
    message = only_problem(make_brand(tmp_path, toml))
    assert message.startswith(f"backend_url: '{bad}' is not an http(s) URL")


def test_support_url_not_http_is_refused(tmp_path: Path) -> None:
    toml = GOOD_TOML.replace('"https://test.example/help"', '"mailto:help@test.example"')
    assert only_problem(make_brand(tmp_path, toml)).startswith("support.url:")


def test_support_email_must_be_an_address(tmp_path: Path) -> None:
    toml = GOOD_TOML.replace('"help@test.example"', '"help desk"')
    assert only_problem(make_brand(tmp_path, toml)).startswith("support.email:")


@pytest.mark.parametrize(
    ("field", "limit"),
    [
        ("product_name", 40),
        ("company", 80),
        ("shortcut_name", 40),
        ("welcome", 500),
        ("waiting", 500),
        ("consent", 2000),
    ],
)
def test_text_too_long_is_refused_with_its_limit(tmp_path: Path, field: str, limit: int) -> None:
    long_text = "x" * (limit + 1)
    toml = "\n".join(
        f'{field} = "{long_text}"' if line.startswith(f"{field} =") else line
        for line in GOOD_TOML.splitlines()
    )
    message = only_problem(make_brand(tmp_path, toml))
    label = field if field in ("product_name", "company", "shortcut_name") else f"texts.{field}"
    assert message == f"{label}: too long ({limit + 1} characters); shorten it to at most {limit}"


def test_unknown_key_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    toml = GOOD_TOML.replace("[colors]", 'colour = "blue"\n\n[colors]').replace(
        'text = "#000000"', 'text = "#000000"\nprimry = "#000000"'
    )
    problems = problems_of(make_brand(tmp_path, toml))
    assert any(p.startswith("colour: unknown key in brand.toml; remove it") for p in problems)
    assert any(
        p.startswith("colors.primry: unknown key in [colors]") and "'primary'" in p
        for p in problems
    )


def test_missing_required_key_is_named(tmp_path: Path) -> None:
    toml = GOOD_TOML.replace('company = "Test Co"\n', "")
    assert only_problem(make_brand(tmp_path, toml)) == (
        'company: missing; add company = "..." to brand.toml'
    )


def test_bad_language_lists_choices(tmp_path: Path) -> None:
    toml = GOOD_TOML.replace('language = "en"', 'language = "de"')
    assert only_problem(make_brand(tmp_path, toml)) == (
        "language: 'de' is not supported; use one of auto, en, fr, pt"
    )


def test_start_at_login_must_be_boolean(tmp_path: Path) -> None:
    toml = GOOD_TOML.replace("start_at_login = true", 'start_at_login = "yes"')
    assert only_problem(make_brand(tmp_path, toml)).startswith("start_at_login:")


def test_product_name_must_be_a_file_name(tmp_path: Path) -> None:
    toml = GOOD_TOML.replace('"Test Help"', '"Test/Help"')
    assert only_problem(make_brand(tmp_path, toml)).startswith("product_name: contains")


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    toml = 'product_name = "A"\ncompany = "B"\nwat = 1\n[colors]\nprimary = "blue"\n'
    folder = make_brand(tmp_path, toml, logo_size=(10, 10))
    problems = problems_of(folder)
    assert [p.split(":")[0] for p in problems] == ["wat", "colors.primary", "logo"]
    assert "3 problems" in str(BrandError(folder, problems))


def test_invalid_toml_is_reported(tmp_path: Path) -> None:
    assert "not valid TOML" in only_problem(make_brand(tmp_path, "product_name = \n"))


def test_missing_brand_toml_is_reported(tmp_path: Path) -> None:
    assert "brand.toml: not found" in only_problem(tmp_path)


def test_bundled_brand_round_trips_with_key(tmp_path: Path) -> None:
    brand = load_brand(make_brand(tmp_path)).with_backend("http://127.0.0.1:5000/", "sosd_secret")
    bundle = tmp_path / "sos_brand"
    write_bundled_brand(brand, bundle)
    assert (bundle / "logo.png").is_file()
    loaded = load_bundled_brand(bundle)
    assert isinstance(loaded, Brand)
    assert loaded.backend_url == "http://127.0.0.1:5000"
    assert loaded.deployment_key == "sosd_secret"
    assert loaded.logo_path == bundle / "logo.png"
    assert {k: v for k, v in vars(loaded).items() if k != "logo_path"} == {
        k: v for k, v in vars(brand).items() if k != "logo_path"
    }
    assert "deployment_key" not in brand.to_resolved_dict(include_key=False)


def test_bundled_brand_refuses_a_broken_file(tmp_path: Path) -> None:
    bundle = tmp_path / "sos_brand"
    write_bundled_brand(load_brand(DEFAULT_BRAND).with_backend("http://h", "sosd_k"), bundle)
    data = json.loads((bundle / "brand.json").read_text())
    data["colors"]["primary"] = "nope"
    (bundle / "brand.json").write_text(json.dumps(data))
    with pytest.raises(BrandError, match="colors.primary"):
        load_bundled_brand(bundle)


def test_with_backend_refuses_bad_url(tmp_path: Path) -> None:
    brand = load_brand(DEFAULT_BRAND)
    with pytest.raises(BrandError, match="backend_url: 'localhost:5000' is not an http"):
        brand.with_backend("localhost:5000", "sosd_k")


def test_bundled_brand_dir_only_when_frozen(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert bundled_brand_dir() is None
    monkeypatch.setattr("sys.frozen", True, raising=False)
    monkeypatch.setattr("sys._MEIPASS", str(tmp_path), raising=False)
    assert bundled_brand_dir() == tmp_path / "sos_brand"


def test_shipped_logo_is_copied_not_moved(tmp_path: Path) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(DEFAULT_BRAND, folder)
    write_bundled_brand(load_brand(folder).with_backend("http://h", None), tmp_path / "out")
    assert (folder / "logo.png").read_bytes() == (tmp_path / "out" / "logo.png").read_bytes()
