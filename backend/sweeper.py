"""The background sweep: records expiries and lost connections, and escalates cases.

Statuses are right without it (they are derived when read); the sweep makes those changes
visible as events in the case history and the feed. Every server process may run one: the
sweep locks and re-checks rows, so each change is recorded once.
"""

from __future__ import annotations

import logging
import threading
import time

from backend.app import Runtime
from backend.migrate import ANALYZE_INTERVAL, refresh_statistics
from backend.services.presence import sweep
from backend.services.routing import escalate

log = logging.getLogger(__name__)


def start_sweeper(runtime: Runtime) -> threading.Thread:
    """Run the sweep every ``SOS_SWEEP_INTERVAL`` seconds in a daemon thread."""

    def loop() -> None:
        stop = threading.Event()
        analysed_at = time.monotonic()
        while not stop.wait(runtime.settings.sweep_interval):
            try:
                with runtime.store.write() as s:
                    sweep(s, runtime.context())
                with runtime.store.write() as s:
                    escalate(s, runtime.context())
                if time.monotonic() - analysed_at >= ANALYZE_INTERVAL:
                    analysed_at = time.monotonic()
                    refresh_statistics(runtime.store.engine)
            except Exception:  # noqa: BLE001 - the next round retries
                log.exception("sweep failed")

    thread = threading.Thread(target=loop, name="sos-sweeper", daemon=True)
    thread.start()
    runtime.sweeper = thread
    return thread
