from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sos_agent import instance


def test_second_process_hands_over_to_the_first(tmp_path: Path) -> None:
    received = []
    server = instance.acquire(tmp_path, lambda c, a: received.append((c, a)) or {"code": "x"})
    assert server is not None
    try:
        assert instance.acquire(tmp_path, lambda c, a: {}) is None  # the lock is taken
        answer = instance.hand_over(tmp_path, "sos", {"name": "Bob"}, wait=True)
        assert answer == {"code": "x"}
        assert received == [("sos", {"name": "Bob"})]
    finally:
        server.close()
    again = instance.acquire(tmp_path, lambda c, a: {})
    assert again is not None
    again.close()


def test_address_file_is_private_and_a_wrong_secret_is_refused(tmp_path: Path) -> None:
    calls = []
    server = instance.acquire(tmp_path, lambda c, a: calls.append(c) or {})
    try:
        address = tmp_path / instance.ADDRESS_FILE
        if os.name == "posix":
            assert address.stat().st_mode & 0o077 == 0
        data = json.loads(address.read_text())
        data["secret"] = "guess"
        address.write_text(json.dumps(data))
        with pytest.raises(instance.HandOverFailed, match="bad secret"):
            instance.hand_over(tmp_path, "sos")
        assert calls == []
    finally:
        server.close()


@pytest.mark.slow
def test_a_second_process_hands_over_and_exits_in_a_fraction_of_a_second(tmp_path: Path) -> None:
    received = []
    server = instance.acquire(tmp_path, lambda c, a: received.append(c) or {})
    try:
        script = (
            "import sys, time; t = time.monotonic(); from sos_agent import instance; "
            f"instance.hand_over({str(tmp_path)!r}, 'sos'); print(time.monotonic() - t)"
        )
        started = time.monotonic()
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=10
        )
        assert float(out.stdout) < 0.3  # the hand-over itself, after Python started
        assert time.monotonic() - started < 3
        deadline = time.monotonic() + 2
        while not received and time.monotonic() < deadline:
            time.sleep(0.01)
        assert received == ["sos"]
    finally:
        server.close()
