"""Icons rendered from a brand's logo: Windows ``.ico``, macOS ``.icns`` and plain PNGs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image

ICO_SIZES = (16, 20, 24, 32, 40, 48, 64, 128, 256)
ICNS_SIZES = (32, 64, 128, 256, 512, 1024)  # pixel sizes of the slots Pillow writes
PNG_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


@dataclass(frozen=True)
class IconSet:
    """The files ``render_icons`` wrote."""

    ico: Path
    icns: Path
    pngs: dict[int, Path]

    def for_platform(self, platform: str) -> Path | None:
        """The icon PyInstaller wants on ``platform`` (``sys.platform``); Linux takes none."""
        if platform.startswith("win"):
            return self.ico
        if platform == "darwin":
            return self.icns
        return None


def square_logo(logo_path: Path) -> Image.Image:
    """The logo as RGBA, centred on a transparent square so that icons are never stretched."""
    with Image.open(logo_path) as source:
        image = source.convert("RGBA")
    side = max(image.size)
    if image.width == image.height:
        return image
    canvas = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    canvas.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    return canvas


def render_icons(logo_path: Path, out_dir: Path, *, basename: str = "icon") -> IconSet:
    """Render ``basename.ico``, ``basename.icns`` and ``basename-<size>.png`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    logo = square_logo(logo_path)

    def at(size: int) -> Image.Image:
        return logo.resize((size, size), Image.Resampling.LANCZOS)

    pngs: dict[int, Path] = {}
    for size in PNG_SIZES:
        target = out_dir / f"{basename}-{size}.png"
        at(size).save(target, format="PNG", optimize=True)
        pngs[size] = target

    ico = out_dir / f"{basename}.ico"
    # Pillow builds every listed size from the largest frame; giving it 256 px keeps them sharp.
    at(256).save(ico, format="ICO", sizes=[(s, s) for s in ICO_SIZES])

    icns = out_dir / f"{basename}.icns"
    # The ICNS writer takes the 1024 px image and extra frames for the smaller slots.
    largest = at(ICNS_SIZES[-1])
    largest.save(icns, format="ICNS", append_images=[at(s) for s in ICNS_SIZES[:-1]])
    return IconSet(ico=ico, icns=icns, pngs=pngs)
