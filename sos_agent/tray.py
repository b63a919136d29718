"""The tray icon (pystray). It only builds a menu whose items call injected callbacks.

On Linux without a desktop environment's StatusNotifier host, pystray uses its plain-X backend:
an XEmbed icon in the system tray (e.g. ``trayer``), which has no menu. That backend also never
asks X for button events, so a click would be lost; :class:`_XorgIcon` asks for them, runs the
default action ("Get help") on a left click and shows the menu through ``popup_menu`` (a Tk menu
given by the app) on a right click. Importing this module needs a display (pystray's rule).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass

import pystray
from PIL import Image

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrayActions:
    get_help: Callable[[], None]
    open_window: Callable[[], None]
    quit: Callable[[], None]
    # Shows the same menu at screen position (x, y), for backends without a native menu.
    popup_menu: Callable[[int, int], None] | None = None


def _icon_class() -> type[pystray.Icon]:
    if not sys.platform.startswith("linux") or pystray.Icon.__module__ != "pystray._xorg":
        return pystray.Icon
    import Xlib.X

    class _XorgIcon(pystray.Icon):  # type: ignore[misc, valid-type]
        popup: Callable[[int, int], None] | None = None

        def _create_window(self):  # noqa: ANN202 - pystray's private hook
            window = super()._create_window()
            window.change_attributes(
                event_mask=Xlib.X.ExposureMask | Xlib.X.StructureNotifyMask
                | Xlib.X.ButtonPressMask
            )
            return window

        def _assert_docked(self) -> None:
            # pystray asks the tray to dock the icon again on every image change, and trayer
            # then shrinks the icon's socket to 1 px: dock only when not docked yet.
            if self._systray_manager is None:
                self._dock_window()
            assert self._systray_manager

        def _on_button_press(self, event) -> None:  # noqa: ANN001
            if event.detail == 1:
                self()
            elif event.detail == 3 and self.popup is not None:
                self.popup(event.root_x, event.root_y)

    return _XorgIcon


class TrayIcon:
    """The agent's icon: title, image and menu come from the app; actions are callbacks."""

    def __init__(self, name: str, image: Image.Image, title: str, actions: TrayActions) -> None:
        self.actions = actions
        self._labels = {"help": "Get help", "open": "Open", "quit": "Quit"}
        self._case_line = ""
        self._pixels = image.tobytes()
        self._latest = (image, title)
        self._ready = threading.Event()
        cls = _icon_class()
        self.icon = cls(name, image, title, menu=self._menu())
        if hasattr(self.icon, "popup"):
            self.icon.popup = actions.popup_menu
        self.has_native_menu = bool(getattr(self.icon, "HAS_MENU", True))

    def _menu(self) -> pystray.Menu:
        return pystray.Menu(
            pystray.MenuItem(
                self._labels["help"], lambda: self.actions.get_help(), default=True
            ),
            pystray.MenuItem(lambda item: self._case_line, None, enabled=False),
            pystray.MenuItem(self._labels["open"], lambda: self.actions.open_window()),
            pystray.Menu.SEPARATOR,
            pystray.MenuItem(self._labels["quit"], lambda: self.actions.quit()),
        )

    def update(
        self, image: Image.Image, title: str, case_line: str, labels: dict[str, str]
    ) -> None:
        """Show a new state (callable from any thread)."""
        self._case_line = case_line
        if labels != self._labels:
            self._labels = dict(labels)
            self.icon.menu = self._menu()
        self._latest = (image, title)
        if not self._ready.is_set():
            return  # pystray drops changes made before the icon is shown: applied in _setup
        pixels = image.tobytes()
        if pixels != self._pixels:
            self._pixels = pixels
            self.icon.icon = image
        if title != self.icon.title:
            self.icon.title = title
        try:
            self.icon.update_menu()
        except Exception:  # some backends cannot update a menu they do not have
            log.debug("menu update not supported", exc_info=True)

    def run_detached(self) -> None:
        if hasattr(self.icon, "popup"):
            # pystray's X backend runs run() in a thread without passing our setup on.
            threading.Thread(
                target=self.icon.run, kwargs={"setup": self._setup}, name="tray", daemon=True
            ).start()
        else:
            self.icon.run_detached(setup=self._setup)

    def _setup(self, icon: pystray.Icon) -> None:
        icon.visible = True
        self._ready.set()
        image, title = self._latest
        self._pixels = image.tobytes()
        icon.icon = image
        icon.title = title

    def stop(self) -> None:
        self.icon.stop()
