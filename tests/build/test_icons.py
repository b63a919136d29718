"""Icons rendered from a logo: every size present, transparency kept, never stretched."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from sos_build.icons import ICNS_SIZES, ICO_SIZES, PNG_SIZES, render_icons

REPO = Path(__file__).resolve().parents[2]


def transparent_corner_logo(path: Path, size: tuple[int, int] = (300, 300)) -> Path:
    """A solid red disc on a fully transparent background."""
    image = Image.new("RGBA", size, (0, 0, 0, 0))
    w, h = size
    ImageDraw.Draw(image).ellipse((w * 0.1, h * 0.1, w * 0.9, h * 0.9), fill=(220, 0, 0, 255))
    image.save(path)
    return path


@pytest.fixture
def icons(tmp_path: Path):
    return render_icons(transparent_corner_logo(tmp_path / "logo.png"), tmp_path / "icons")


def assert_transparent_corner_opaque_centre(image: Image.Image) -> None:
    assert image.mode == "RGBA"
    assert image.getpixel((0, 0))[3] == 0, "corner must stay transparent"
    centre = image.getpixel((image.width // 2, image.height // 2))
    assert centre[3] == 255 and centre[0] > 200, "centre must stay the opaque logo colour"


def test_ico_holds_every_size_from_16_to_256(icons) -> None:
    with Image.open(icons.ico) as ico:
        assert ico.format == "ICO"
        assert sorted(ico.info["sizes"]) == [(s, s) for s in ICO_SIZES]
        assert min(ICO_SIZES) == 16 and max(ICO_SIZES) == 256


@pytest.mark.parametrize("size", ICO_SIZES)
def test_ico_frames_keep_transparency(icons, size: int) -> None:
    with Image.open(icons.ico) as ico:
        ico.size = (size, size)
        ico.load()
        assert ico.size == (size, size)
        assert_transparent_corner_opaque_centre(ico)


def test_icns_holds_every_size_with_transparency(icons) -> None:
    with Image.open(icons.icns) as probe:
        assert probe.format == "ICNS"
        slots = probe.info["sizes"]
    pixel_sizes = set()
    for width, height, scale in slots:
        with Image.open(icons.icns) as icns:
            icns.size = (width, height)
            icns.load(scale=scale)
            pixel_sizes.add(icns.size[0])
            assert_transparent_corner_opaque_centre(icns)
    assert pixel_sizes == set(ICNS_SIZES)


@pytest.mark.parametrize("size", PNG_SIZES)
def test_pngs_at_every_size_keep_transparency(icons, size: int) -> None:
    with Image.open(icons.pngs[size]) as png:
        assert png.format == "PNG"
        assert png.size == (size, size)
        assert_transparent_corner_opaque_centre(png)


def test_wide_logo_is_padded_not_stretched(tmp_path: Path) -> None:
    logo = tmp_path / "wide.png"
    Image.new("RGBA", (600, 300), (0, 0, 255, 255)).save(logo)
    icons = render_icons(logo, tmp_path / "icons")
    with Image.open(icons.pngs[64]) as png:
        assert png.size == (64, 64)
        assert png.getpixel((32, 2))[3] == 0, "band above a wide logo is transparent"
        assert png.getpixel((32, 32)) == (0, 0, 255, 255)


def test_rgb_logo_becomes_rgba(tmp_path: Path) -> None:
    logo = tmp_path / "rgb.png"
    Image.new("RGB", (256, 256), (0, 128, 0)).save(logo)
    icons = render_icons(logo, tmp_path / "icons")
    with Image.open(icons.pngs[16]) as png:
        assert png.mode == "RGBA"


@pytest.mark.parametrize(
    ("platform", "suffix"), [("win32", ".ico"), ("darwin", ".icns"), ("linux", None)]
)
def test_platform_icon(icons, platform: str, suffix: str | None) -> None:
    chosen = icons.for_platform(platform)
    assert (chosen.suffix if chosen else None) == suffix


def test_default_brand_logo_renders(tmp_path: Path) -> None:
    icons = render_icons(REPO / "branding" / "default" / "logo.png", tmp_path)
    with Image.open(icons.pngs[32]) as png:
        assert png.getpixel((0, 0))[3] == 0
