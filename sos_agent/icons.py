"""The tray image, drawn with Pillow from the brand colour and the agent's state."""

from __future__ import annotations

from PIL import Image, ImageDraw

from sos_agent.viewmodel import TrayState

STATE_BADGES = {
    TrayState.IDLE: None,
    TrayState.WAITING: "#f5a623",  # amber: someone will come
    TrayState.IN_SESSION: "#2ea043",  # green: connected
    TrayState.OFFLINE: "#8c959f",  # grey: no network
}


def tray_image(primary: str, on_primary: str, state: TrayState, size: int = 64) -> Image.Image:
    """A round button in the brand colour with a life-buoy mark and a badge for the state."""
    scale = 4  # draw large, then shrink: smooth edges without antialiasing support in ImageDraw
    big = size * scale
    image = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    fill = STATE_BADGES[TrayState.OFFLINE] if state is TrayState.OFFLINE else primary
    draw.ellipse((0, 0, big - 1, big - 1), fill=fill)
    ring = big // 2
    inner = big * 0.22
    draw.ellipse(
        (ring - big * 0.3, ring - big * 0.3, ring + big * 0.3, ring + big * 0.3),
        outline=on_primary,
        width=int(big * 0.1),
    )
    draw.ellipse((ring - inner / 2, ring - inner / 2, ring + inner / 2, ring + inner / 2),
                 fill=on_primary)
    badge = STATE_BADGES[state]
    if badge is not None and state is not TrayState.OFFLINE:
        r = big * 0.2
        draw.ellipse((big - 2 * r, big - 2 * r, big - 1, big - 1), fill=badge,
                     outline=on_primary, width=int(big * 0.03))
    return image.resize((size, size), Image.LANCZOS)
