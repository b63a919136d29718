"""What every service call needs besides its arguments: the time and the queue's rules."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Context:
    now: datetime
    case_ttl: float = 24 * 3600.0
    presence_timeout: float = 60.0
    fast_password_hash: bool = False
