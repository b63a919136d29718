"""The agent with its UI: tray icon + customer window on Tk's main loop, the core underneath.

Threads: Tk runs on the main thread; pystray, the outbox, the feed, presence and hand-overs run
on their own. Anything that touches Tk is queued with :meth:`AgentApp.call_soon` and run by the
Tk loop; anything that may wait for the network runs off the Tk thread.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from sos_agent.commands import handle
from sos_agent.config import AgentConfig
from sos_agent.core import AgentCore, InvalidCode
from sos_agent.i18n import resolve_language, translation
from sos_agent.icons import tray_image
from sos_agent.live import CaseFollower, Presence
from sos_agent.viewmodel import ViewModel

log = logging.getLogger(__name__)


class AgentApp:
    def __init__(self, config: AgentConfig, core: AgentCore) -> None:
        self.config = config
        self.core = core
        brand = config.brand
        self.language = resolve_language(brand.language)
        self.vm = ViewModel(translation(self.language), brand.product_name, dict(brand.texts))
        self.labels = self.vm.labels()
        self._calls: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self.presence = Presence(core)
        self.follower = CaseFollower(core)
        self.tray = None
        self.window = None
        self.root = None
        self._quitting = threading.Event()

    # --- threads -------------------------------------------------------------------------------

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the Tk thread (callable from any thread)."""
        self._calls.put(fn)

    def _drain(self) -> None:
        while True:
            try:
                fn = self._calls.get_nowait()
            except queue.Empty:
                break
            try:
                fn()
            except Exception:
                log.exception("UI update failed")
        if not self._quitting.is_set():
            self.root.after(50, self._drain)

    def _background(self, fn: Callable[[], Any]) -> None:
        threading.Thread(target=fn, daemon=True).start()

    # --- running ---------------------------------------------------------------------------

    def run(
        self,
        command: str,
        args: dict[str, Any],
        on_ready: Callable[[], None] | None = None,
    ) -> int:
        """Show the agent until the customer quits; ``on_ready()`` once it can take commands."""
        import tkinter as tk

        from sos_agent.window import CustomerWindow, WindowActions

        self.root = tk.Tk(className="sos-agent")
        self.root.withdraw()
        self.window = CustomerWindow(
            self.root,
            self.config.brand,
            self.labels,
            WindowActions(
                save_fields=self._save_fields,
                send_message=lambda text: self._background(lambda: self.core.send_message(text)),
                close_case=lambda: self._background(self.core.close_case),
                join=self._join,
                get_help=self.get_help,
                hidden=self.presence.stop,
                quit=self.quit,
            ),
        )
        self.menu = self._build_popup_menu(tk)
        self._start_tray()
        self.core.subscribe(lambda: self.call_soon(self.refresh))
        self.core.start()
        self.follower.start()
        self.refresh()
        self._background(lambda: self._startup(command, args, on_ready))
        self.root.after(50, self._drain)
        try:
            self.root.mainloop()
        finally:
            self._shutdown()
        return 0

    def _startup(
        self, command: str, args: dict[str, Any], on_ready: Callable[[], None] | None
    ) -> None:
        try:
            self.core.refresh_deployment()
            first_launch = not self.core.state.data.first_launch_done
            handle(self.core, command, args, timeout=0)
            if command in ("sos", "join") or first_launch or self.tray is None:
                self.call_soon(self.open_window)
        finally:
            # Commands handed over meanwhile ran after this one (a first launch opens one case).
            if on_ready is not None:
                on_ready()

    def _start_tray(self) -> None:
        try:
            from sos_agent.tray import TrayActions, TrayIcon

            state = self.vm.tray_state(self.core.current(), self.core.online)
            self.tray = TrayIcon(
                "sos-agent",
                self._tray_image(state),
                self.config.brand.product_name,
                TrayActions(
                    get_help=self.get_help,
                    open_window=lambda: self.call_soon(self.open_window),
                    quit=lambda: self.call_soon(self.quit),
                    popup_menu=lambda x, y: self.call_soon(lambda: self._popup(x, y)),
                ),
            )
            self.tray.run_detached()
        except Exception:
            # No tray on this desktop: the window is then the whole agent.
            log.exception("no tray icon")
            self.tray = None

    def _tray_image(self, state):
        colors = self.config.brand.colors
        return tray_image(colors.primary, colors.on_primary, state)

    def _build_popup_menu(self, tk):
        menu = tk.Menu(self.root, tearoff=False)
        labels = self.vm.menu_labels()
        menu.add_command(label=labels["help"], command=self.get_help)
        menu.add_command(label="", state="disabled")
        menu.add_command(label=labels["open"], command=self.open_window)
        menu.add_separator()
        menu.add_command(label=labels["quit"], command=self.quit)
        return menu

    def _popup(self, x: int, y: int) -> None:
        log.debug("tray menu at %d,%d", x, y)
        try:
            self.menu.tk_popup(x, y)
        finally:
            self.menu.grab_release()

    # --- actions (from the tray, the window, hand-overs) -------------------------------------

    def get_help(self, topic: str | None = None) -> None:
        """"Get help": bring back the open case or open one (about ``topic``), show the window."""

        def work() -> None:
            self.core.request_help("sos_button", topic=topic)
            self.call_soon(self.open_window)

        self._background(work)

    def open_window(self) -> None:
        self.window.show()
        self.presence.start()
        self.refresh()

    def quit(self) -> None:
        log.info("quitting at the customer's request")
        self._quitting.set()
        self.root.quit()

    def handle_command(self, command: str, args: dict[str, Any]) -> dict[str, Any]:
        """A command handed over by a second process (the SOS shortcut, --join...)."""
        self.call_soon(self.open_window)
        return handle(self.core, command, args, timeout=float(args.get("timeout", 0)))

    def _save_fields(self, values: dict[str, str]) -> None:
        customer = {k: v for k, v in values.items() if k in ("name", "email")}
        description = values.get("description")
        self._background(lambda: self.core.update_fields(customer, description))

    def _join(self, code: str) -> str | None:
        try:
            self.core.join(code)
        except InvalidCode:
            return self.labels["bad_code"]
        self.presence.start()
        return None

    # --- state → UI ------------------------------------------------------------------------

    def refresh(self) -> None:
        """Show the core's current state in the window and the tray (Tk thread)."""
        if self.window is None:
            return
        core = self.core
        record, case, online = core.current(), core.case_view, core.online
        view = self.vm.window(
            record, case, online, list(core.messages), core.config.deployment.customer_fields,
            error=self.vm.error_text(core.last_error_code, core.last_error),
            topics=core.config.deployment.topics,
        )
        self.window.render(view)
        case_line = self.vm.case_line(record, case, online)
        self.menu.entryconfigure(1, label=case_line)
        if self.tray is not None:
            self.tray.update(
                self._tray_image(view.tray_state),
                self.vm.tray_title(record, case, online),
                case_line,
                self.vm.menu_labels(),
            )

    def _shutdown(self) -> None:
        log.info("shutting down")
        self._quitting.set()
        self.presence.stop()
        self.follower.stop()
        if self.tray is not None:
            try:
                self.tray.stop()
            except Exception:
                log.debug("tray stop failed", exc_info=True)
        self.core.stop()
        if self.presence._thread is not None:
            self.presence._thread.join(5)  # let the disconnect reach the backend
        try:
            self.root.destroy()
        except Exception:
            pass
        log.info("stopped")
