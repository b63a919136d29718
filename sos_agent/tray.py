"""The tray icon (pystray). It only builds a menu whose items call injected callbacks.

On Linux without a desktop environment's StatusNotifier host, pystray uses its plain-X backend:
an XEmbed icon in the system tray (e.g. ``trayer``), which has no menu. That backend also never
asks X for button events, so a click would be lost; :class:`_XorgIcon` asks for them, runs the
default action ("Get help") on a left click and shows the menu through ``popup_menu`` (a Tk menu
given by the app) on a right click. It also shows the icon from its own event loop, never
sleeps long in that loop (python-xlib can miss a wake-up, which left changes and the stop unrun),
and writes titles X can carry (pystray writes them as Latin-1 only, and fails on "…"). Importing
this module needs a display (pystray's rule).
"""

from __future__ import annotations

import logging
import select
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass

import pystray
from PIL import Image

log = logging.getLogger(__name__)

EVENT_POLL = 0.5  # seconds; the longest the X loop sleeps without looking at its queue


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
        _stopped = False

        def _events(self):  # noqa: ANN202 - pystray's private hook
            # pystray blocks in python-xlib's next_event(). In python-xlib's threaded mode an
            # event another thread happened to read off the socket can sit in the queue while
            # this thread sleeps in select(): a change (or the stop) handed to this loop was
            # then never run, and the thread that handed it over waited for ever. So never
            # sleep for long: look at the queue at least every EVENT_POLL seconds.
            display = self._display
            while not self._stopped:
                if display.pending_events():
                    yield display.next_event()
                else:
                    select.select([display.fileno()], [], [], EVENT_POLL)

        def _stop(self) -> None:
            self._stopped = True  # the loop ends after this, even if DestroyNotify is lost
            super()._stop()

        def _run(self) -> None:
            # pystray records its loop thread only after letting the setup thread go, and the
            # setup thread's first change asks which thread it is on: record it first. Then
            # show the icon here, on the loop thread itself, rather than from the setup thread
            # through pystray's cross-thread hand-off (our setup finds it visible already).
            self._thread = threading.current_thread()
            try:
                self.visible = True
            except Exception:
                log.exception("could not show the tray icon")
            self._mark_ready()
            self._mainloop()

        def _create_window(self):  # noqa: ANN202 - pystray's private hook
            title, self._title = self._title, ""  # pystray's WM_NAME write fails beyond Latin-1
            try:
                window = super()._create_window()
            finally:
                self._title = title
            window.change_attributes(
                event_mask=Xlib.X.ExposureMask | Xlib.X.StructureNotifyMask
                | Xlib.X.ButtonPressMask
            )
            _set_window_title(self._display, window, title)
            return window

        def _update_title(self) -> None:
            _set_window_title(self._display, self._window, self.title)
            self._display.flush()  # now, not whenever the next request happens to go out

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


def _set_window_title(display, window, title: str) -> None:  # noqa: ANN001 - python-xlib
    """``_NET_WM_NAME`` in UTF-8 (read by current tools), ``WM_NAME`` in Latin-1 (the old way)."""
    title = title or ""
    window.change_property(
        display.intern_atom("_NET_WM_NAME"), display.intern_atom("UTF8_STRING"), 8,
        title.encode("utf-8"),
    )
    window.set_wm_name(title.replace("…", "...").encode("latin-1", "replace"))


@dataclass(frozen=True)
class _Look:
    """What the icon should show."""

    image: Image.Image
    title: str
    case_line: str
    labels: dict[str, str]


class TrayIcon:
    """The agent's icon: title, image and menu come from the app; actions are callbacks.

    :meth:`update` only records the wanted look (any thread may call it). One thread, started
    once the icon is shown, applies it: pystray's backends are not safe to change from several
    threads at once, and pystray drops a title set before the icon is shown. That thread sends
    the title every time rather than trusting pystray's cached copy, which may be a value that
    never reached the tray.
    """

    def __init__(self, name: str, image: Image.Image, title: str, actions: TrayActions) -> None:
        self.actions = actions
        self._labels = {"help": "Get help", "open": "Open", "quit": "Quit"}
        self._case_line = ""
        self._wanted = _Look(image, title, "", dict(self._labels))
        self._wanted_lock = threading.Lock()
        self._changed = threading.Event()
        self._stopping = threading.Event()
        self._applier: threading.Thread | None = None
        self._loop: threading.Thread | None = None  # the X backend's event loop, if ours
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
        """Show a new state (callable from any thread; applied by the tray's own thread)."""
        with self._wanted_lock:
            self._wanted = _Look(image, title, case_line, dict(labels))
        self._changed.set()

    def run_detached(self) -> None:
        if hasattr(self.icon, "popup"):
            # pystray's X backend runs run() in a thread without passing our setup on.
            self._loop = threading.Thread(
                target=self.icon.run, kwargs={"setup": self._setup}, name="tray", daemon=True
            )
            self._loop.start()
        else:
            self.icon.run_detached(setup=self._setup)

    def _setup(self, icon: pystray.Icon) -> None:
        icon.visible = True  # already done by the X backend's loop (see _XorgIcon._run)
        self._applier = threading.Thread(
            target=self._apply_changes, args=(icon,), name="tray-updates", daemon=True
        )
        self._applier.start()

    def _apply_changes(self, icon: pystray.Icon) -> None:
        shown: _Look | None = None
        shown_pixels = b""
        while not self._stopping.is_set():
            self._changed.clear()
            with self._wanted_lock:
                wanted = self._wanted
            try:
                pixels = wanted.image.tobytes()
                if shown is None or pixels != shown_pixels:
                    icon.icon = wanted.image
                    shown_pixels = pixels
                _show_title(icon, wanted.title)
                if shown is None or wanted.labels != shown.labels:
                    self._labels = dict(wanted.labels)
                    self._case_line = wanted.case_line
                    _update_menu(icon, self._menu())
                elif wanted.case_line != shown.case_line:
                    self._case_line = wanted.case_line
                    _update_menu(icon)
                shown = wanted
            except Exception:
                log.exception("tray update failed; trying again at the next change")
            self._changed.wait()

    def stop(self, timeout: float = 3.0) -> None:
        """Remove the icon; never blocks the caller (the app quitting) for more than ~3×timeout.

        The applying thread finishes first, so no change is in flight when the icon goes:
        pystray's X backend waits, without a time-out, for its loop to answer each change, and
        a change queued behind the stop would never be answered.
        """
        self._stopping.set()
        self._changed.set()
        if self._applier is not None:
            self._applier.join(timeout)
        stopper = threading.Thread(target=self.icon.stop, name="tray-stop", daemon=True)
        stopper.start()
        stopper.join(timeout)
        if self._loop is not None:
            self._loop.join(timeout)
        if stopper.is_alive() or (self._loop is not None and self._loop.is_alive()):
            log.warning("the tray icon did not stop within %.0f s; quitting anyway", timeout)


def _update_menu(icon: pystray.Icon, menu: pystray.Menu | None = None) -> None:
    try:
        if menu is not None:
            icon.menu = menu  # pystray keeps it, then updates the shown menu
        else:
            icon.update_menu()
    except Exception:  # some backends cannot update a menu they do not have
        log.debug("menu update not supported", exc_info=True)


def _show_title(icon: pystray.Icon, title: str) -> None:
    if icon.title != title:
        icon.title = title  # pystray sends a changed title to the tray itself
    elif hasattr(icon, "_update_title"):
        # pystray skips a title equal to its cached copy; send it anyway.
        icon._update_title()
