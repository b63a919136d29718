"""The tray image per state: drawn with Pillow only, no display needed."""

from __future__ import annotations

import itertools

import pytest
from PIL import Image

from sos_agent.icons import STATE_BADGES, tray_image
from sos_agent.viewmodel import TrayState

PRIMARY, ON_PRIMARY = "#0b5cad", "#ffffff"


def _rgba(color: str) -> tuple[int, int, int, int]:
    return (*(int(color[i:i + 2], 16) for i in (1, 3, 5)), 255)


def _close(pixel: tuple[int, ...], color: str, tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, _rgba(color), strict=True))


@pytest.mark.parametrize("state", list(TrayState))
def test_each_state_draws_a_square_rgba_icon_of_the_asked_size(state: TrayState) -> None:
    image = tray_image(PRIMARY, ON_PRIMARY, state, size=48)
    assert image.mode == "RGBA" and image.size == (48, 48)
    assert image.getpixel((0, 0))[3] == 0  # a round button: the corners are transparent


def test_idle_waiting_in_session_and_offline_look_different() -> None:
    images = {s: tray_image(PRIMARY, ON_PRIMARY, s).tobytes() for s in TrayState}
    for a, b in itertools.combinations(TrayState, 2):
        assert images[a] != images[b], f"{a} and {b} look the same"


def test_the_badge_and_the_button_colour_tell_the_state() -> None:
    size = 64
    badge_spot = (int(size * 0.8), int(size * 0.8))  # inside the badge, bottom right
    button_spot = (size // 2, int(size * 0.08))  # the button's rim, top middle
    idle = tray_image(PRIMARY, ON_PRIMARY, TrayState.IDLE, size)
    assert _close(idle.getpixel(badge_spot), PRIMARY)  # no badge: the button colour
    for state in (TrayState.WAITING, TrayState.IN_SESSION):
        image = tray_image(PRIMARY, ON_PRIMARY, state, size)
        assert _close(image.getpixel(badge_spot), STATE_BADGES[state]), state
        assert _close(image.getpixel(button_spot), PRIMARY)
    offline = tray_image(PRIMARY, ON_PRIMARY, TrayState.OFFLINE, size)
    assert _close(offline.getpixel(button_spot), STATE_BADGES[TrayState.OFFLINE])  # all grey


def test_the_brand_colour_is_used() -> None:
    red = tray_image("#cc0000", ON_PRIMARY, TrayState.IDLE)
    blue = tray_image(PRIMARY, ON_PRIMARY, TrayState.IDLE)
    assert red.tobytes() != blue.tobytes()
    assert isinstance(red, Image.Image)
