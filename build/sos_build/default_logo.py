"""Draws the neutral SOS logo of ``branding/default/`` (run once; the PNG is committed).

Usage: ``python -m sos_build.default_logo branding/default/logo.png``
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

SIZE = 512


def draw_logo(size: int = SIZE, fill: str = "#1f6feb", ink: str = "#ffffff") -> Image.Image:
    """A round badge with a white lifebuoy ring and "SOS", on a transparent background."""
    scale = 4  # draw large, then downsample: smooth edges without antialiasing support
    big = size * scale
    image = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    margin = big // 32
    draw.ellipse((margin, margin, big - margin, big - margin), fill=fill)
    ring = big // 7
    inset = margin + big // 14
    draw.ellipse((inset, inset, big - inset, big - inset), outline=ink, width=ring // 3)
    font = ImageFont.load_default(size=big // 4)
    left, top, right, bottom = draw.textbbox((0, 0), "SOS", font=font)
    draw.text(
        ((big - (right - left)) / 2 - left, (big - (bottom - top)) / 2 - top),
        "SOS",
        font=font,
        fill=ink,
    )
    return image.resize((size, size), Image.Resampling.LANCZOS)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0]) if args else Path("branding/default/logo.png")
    draw_logo().save(target, optimize=True)
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
