"""Runtime state kept in the per-user data folder: device id, first launch, cases and tokens."""

from __future__ import annotations

import threading
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sos_agent.storage import atomic_write_json, read_json

STATE_FILE = "state.json"
FINAL_STATUSES = frozenset({"closed", "expired"})


@dataclass
class CaseRecord:
    """One case this device asked for. ``code``/``token`` are empty until the backend answered."""

    local_id: str
    source: str
    code: str | None = None
    token: str | None = None
    status: str = "queued"
    failed: str | None = None
    topic: str | None = None  # the topic the customer chose when asking for help
    # A join: the case that was current before it, current again if the join is refused.
    previous: str | None = None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES or self.failed is not None


@dataclass
class StateData:
    device_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    first_launch_done: bool = False
    current_case: str | None = None
    cases: dict[str, CaseRecord] = field(default_factory=dict)
    deployment: dict[str, Any] | None = None


class RuntimeState:
    """The state file with a lock; every change is written at once (atomically)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / STATE_FILE
        self._lock = threading.RLock()
        self.data = self._load()
        if not self.path.exists():
            self.save()

    def _load(self) -> StateData:
        raw = read_json(self.path, default=None)
        if not isinstance(raw, dict):
            return StateData()
        data = StateData()
        if isinstance(raw.get("device_id"), str):
            data.device_id = raw["device_id"]
        data.first_launch_done = bool(raw.get("first_launch_done"))
        data.current_case = raw.get("current_case")
        for local_id, rec in (raw.get("cases") or {}).items():
            try:
                data.cases[local_id] = CaseRecord(**rec)
            except TypeError:
                continue
        if isinstance(raw.get("deployment"), dict):
            data.deployment = raw["deployment"]
        return data

    def save(self) -> None:
        with self._lock:
            payload = asdict(self.data)
            atomic_write_json(self.path, payload, private=True)

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    @property
    def device_id(self) -> str:
        return self.data.device_id

    def current(self) -> CaseRecord | None:
        with self._lock:
            if self.data.current_case is None:
                return None
            return self.data.cases.get(self.data.current_case)

    def case(self, local_id: str) -> CaseRecord | None:
        with self._lock:
            return self.data.cases.get(local_id)

    def add_case(self, record: CaseRecord, *, make_current: bool = True) -> None:
        with self._lock:
            self.data.cases[record.local_id] = record
            if make_current:
                self.data.current_case = record.local_id
            self._forget_old_cases()
            self.save()

    def set_current(self, local_id: str | None) -> None:
        with self._lock:
            if local_id is None or local_id in self.data.cases:
                self.data.current_case = local_id
                self.save()

    def update_case(self, local_id: str, **changes: Any) -> CaseRecord | None:
        with self._lock:
            record = self.data.cases.get(local_id)
            if record is None:
                return None
            for name, value in changes.items():
                setattr(record, name, value)
            self.save()
            return record

    def mark_first_launch_done(self) -> None:
        with self._lock:
            self.data.first_launch_done = True
            self.save()

    def set_deployment(self, deployment: dict[str, Any]) -> None:
        with self._lock:
            self.data.deployment = deployment
            self.save()

    def _forget_old_cases(self, keep: int = 20) -> None:
        # Tokens of long-finished cases are of no use; keep the file small.
        if len(self.data.cases) <= keep:
            return
        for local_id in list(self.data.cases)[: len(self.data.cases) - keep]:
            if local_id != self.data.current_case and self.data.cases[local_id].is_final:
                del self.data.cases[local_id]
