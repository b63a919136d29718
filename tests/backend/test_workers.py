"""Several processes on one SQLite database: writers in turn, wake-ups, ``serve --workers``."""

from __future__ import annotations

import fcntl
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from backend.db import WriterLock, make_engine, sqlite_file
from backend.wakeups import ChangeSignal, PeerWakeups
from tests.support.live import running, start_backend

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="fork, flock and abstract sockets: Linux"
)


def wait_until(condition, timeout: float = 10.0, message: str = "timed out"):
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, message
        time.sleep(0.02)
    return result


def locked_elsewhere(path: str) -> bool:
    """Whether another open description of ``path`` holds its flock."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing also drops a lock this check took
    return False


# ---- writers take turns -----------------------------------------------------------------------


def test_the_sqlite_file_and_its_writer_lock_are_found_only_for_files(tmp_path):
    assert sqlite_file(make_engine(f"sqlite:///{tmp_path}/sos.db")) == f"{tmp_path}/sos.db"
    assert sqlite_file(create_engine("sqlite://")) is None
    assert sqlite_file(create_engine("sqlite:///:memory:")) is None
    assert sqlite_file(create_engine("postgresql+psycopg://u@localhost/db")) is None


def test_the_writer_lock_holds_off_other_processes_and_is_reentrant(tmp_path):
    lock = WriterLock(str(tmp_path / "db-writer"))
    with lock:
        assert locked_elsewhere(lock.path)
        with lock:  # the same thread again: no deadlock
            assert locked_elsewhere(lock.path)
        assert locked_elsewhere(lock.path), "the inner exit released the outer hold"
    assert not locked_elsewhere(lock.path)


def test_a_writer_lock_that_cannot_be_taken_falls_back_to_the_busy_timeout(tmp_path, caplog):
    from sqlalchemy import text

    from backend.db import Store

    store = Store(make_engine(f"sqlite:///{tmp_path}/sos.db"))
    store._writer.path = str(tmp_path / "no-such-folder" / "sos.db-writer")
    with store.write() as s:  # the write goes ahead, and says why it could not lock
        s.execute(text("CREATE TABLE t (n INTEGER)"))
    with store.write() as s:
        s.execute(text("INSERT INTO t VALUES (1)"))
    assert "cannot lock" in caplog.text and store._writer.path is None
    with store.read() as s:
        assert s.execute(text("SELECT n FROM t")).scalar_one() == 1
    store.engine.dispose()


def test_the_writer_lock_queues_this_process_threads_in_turn(tmp_path):
    lock = WriterLock(str(tmp_path / "db-writer"))
    inside, overlaps = [0], []

    def write() -> None:
        for _ in range(200):
            with lock:
                inside[0] += 1
                overlaps.append(inside[0])
                inside[0] -= 1

    threads = [threading.Thread(target=write) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(overlaps) == 800 and set(overlaps) == {1}


def test_a_forked_child_does_not_share_the_parents_hold(tmp_path):
    # A lock taken through a description inherited from the parent would be the parent's own
    # lock, and let the child in: the child must open the file for itself.
    lock = WriterLock(str(tmp_path / "db-writer"))
    with lock:
        pid = os.fork()
        if pid == 0:  # the child: try the same WriterLock object without blocking
            code = 3
            try:
                fcntl.flock(lock._file(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                code = 1  # it got in while the parent holds the lock
            except BlockingIOError:
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_writers_in_several_processes_lose_nothing(tmp_path):
    """Four processes increment one counter 100 times each through Store.write."""
    from sqlalchemy import text

    from backend.db import Store

    url = f"sqlite:///{tmp_path}/count.db"
    store = Store(make_engine(url))
    with store.write() as s:
        s.execute(text("CREATE TABLE counter (n INTEGER)"))
        s.execute(text("INSERT INTO counter VALUES (0)"))
    store.engine.dispose()
    children = []
    for _ in range(4):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                mine = Store(make_engine(url))
                for _ in range(100):
                    with mine.write() as s:
                        n = s.execute(text("SELECT n FROM counter")).scalar_one()
                        s.execute(text("UPDATE counter SET n = :n"), {"n": n + 1})
                code = 0
            finally:
                os._exit(code)
        children.append(pid)
    for pid in children:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    with store.read() as s:
        assert s.execute(text("SELECT n FROM counter")).scalar_one() == 400


# ---- wake-ups between processes ---------------------------------------------------------------


def test_a_change_in_one_process_wakes_the_listeners_of_the_others(tmp_path):
    database = str(tmp_path / "sos.db")
    listening, other = ChangeSignal(), ChangeSignal()
    listener, sender, bystander = (
        PeerWakeups(database, listening),
        PeerWakeups(database, other),
        PeerWakeups(database, ChangeSignal()),
    )
    listener.listen()
    bystander.listen()
    try:
        assert len(os.listdir(listener.folder)) == 2
        sender.notify()
        wait_until(lambda: listening.version >= 1, message="the listener was not woken")
        # The sender's own signal is not its business (the store notifies it directly), and a
        # listener does not send to itself.
        before = listening.version
        listener.notify()
        time.sleep(0.2)
        assert listening.version == before and other.version == 0
    finally:
        for peer in (listener, sender, bystander):
            peer.close()
    assert os.listdir(listener.folder) == []


def test_a_listener_that_cannot_register_says_so_and_carries_on(tmp_path, caplog):
    database = str(tmp_path / "sos.db")
    Path(database + "-wake").write_text("a file where the folder should be")
    signal_ = ChangeSignal()
    listener = PeerWakeups(database, signal_)
    assert listener.listen() is False
    assert "no wake-ups from other processes" in caplog.text
    listener.notify()  # and sending finds nobody, without an error
    listener.close()
    assert signal_.version == 0


def test_a_dead_listener_is_forgotten_by_the_first_sender(tmp_path):
    database = str(tmp_path / "sos.db")
    alive, signal_ = PeerWakeups(database, ChangeSignal()), ChangeSignal()
    listener = PeerWakeups(database, signal_)
    listener.listen()
    # What a killed process leaves: its registration, with nobody holding the name.
    Path(listener.folder, "999999-deadbeef").touch()
    try:
        alive.notify()
        wait_until(lambda: signal_.version >= 1)
        assert sorted(os.listdir(listener.folder)) == [listener._name]
    finally:
        listener.close()
        alive.close()


def test_a_registration_that_leaves_the_folder_time_unchanged_is_found(tmp_path, monkeypatch):
    import backend.wakeups

    monkeypatch.setattr(backend.wakeups, "RELIST_AFTER", 0.1)
    database = str(tmp_path / "sos.db")
    first_signal, late_signal = ChangeSignal(), ChangeSignal()
    first, late = PeerWakeups(database, first_signal), PeerWakeups(database, late_signal)
    sender = PeerWakeups(database, ChangeSignal())
    first.listen()
    try:
        sender.notify()  # lists the folder: only the first listener
        wait_until(lambda: first_signal.version >= 1)
        stamp = os.stat(first.folder)
        late.listen()  # registered within the same tick of the folder's clock, as it were
        os.utime(first.folder, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
        time.sleep(0.15)
        sender.notify()
        wait_until(lambda: late_signal.version >= 1, message="the late listener was missed")
    finally:
        for peer in (first, late, sender):
            peer.close()


def test_the_registrations_of_a_dead_process_can_be_forgotten(tmp_path):
    database = str(tmp_path / "sos.db")
    listener = PeerWakeups(database, ChangeSignal())
    listener.listen()
    Path(listener.folder, "4242-0badc0de").touch()
    Path(listener.folder, "42420-0badc0de").touch()  # another pid with the same digits
    try:
        PeerWakeups.forget(listener.folder, 4242)
        assert sorted(os.listdir(listener.folder)) == sorted([listener._name, "42420-0badc0de"])
    finally:
        listener.close()


def test_a_burst_of_changes_wakes_a_listener_and_fills_no_queue(tmp_path):
    database = str(tmp_path / "sos.db")
    signal_ = ChangeSignal()
    listener, sender = PeerWakeups(database, signal_), PeerWakeups(database, ChangeSignal())
    listener.listen()
    try:
        for _ in range(5000):  # more than a datagram queue holds: the excess is dropped
            sender.notify()
        wait_until(lambda: signal_.version >= 1)
        settled = wait_until(lambda: _settled(signal_))
        sender.notify()  # still heard after the burst
        wait_until(lambda: signal_.version > settled)
    finally:
        listener.close()
        sender.close()


def _settled(signal_: ChangeSignal) -> int | None:
    before = signal_.version
    time.sleep(0.3)
    return before if signal_.version == before else None


# ---- sos-backend serve --workers --------------------------------------------------------------


@pytest.fixture
def workers(tmp_path):
    live = start_backend(tmp_path, serve_args=("--workers", "2", "--threads", "8"))
    yield live
    live.stop()


@pytest.mark.slow
def test_workers_serve_one_port_and_one_database(workers):
    pids = wait_until(lambda: len(workers.worker_pids()) == 2 and workers.worker_pids())

    def open_case(n: int, expected: int = 201) -> str:
        response = workers.api(
            "POST",
            "/agent/cases",
            workers.deployment_key,
            json={"source": "api", "device": {"device_id": f"device-{n}"}},
            headers={"Idempotency-Key": f"key-{n}"},
        )
        assert response.status_code == expected, response.text
        return response.json()["case"]["code"]

    with ThreadPoolExecutor(8) as pool:
        codes = set(pool.map(open_case, range(40)))
        again = set(pool.map(open_case, range(40), [200] * 40))  # retries: nothing new
    assert len(codes) == 40 and again == codes
    listed = workers.api("GET", "/cases", params={"limit": 100}).json()
    assert {c["code"] for c in listed["cases"]} == codes
    # Every worker registered for wake-ups under its own pid.
    folder = Path(sqlite_file(make_engine(workers.database_url)) + "-wake")
    wait_until(
        lambda: sorted(int(name.split("-")[0]) for name in os.listdir(folder)) == sorted(pids)
    )


@pytest.mark.slow
def test_a_worker_that_dies_is_replaced_and_a_stop_ends_them_all(workers):
    first, second = wait_until(lambda: len(workers.worker_pids()) == 2 and workers.worker_pids())
    os.kill(first, signal.SIGKILL)
    replaced = wait_until(
        lambda: (pids := workers.worker_pids()) and len(pids) == 2 and first not in pids and pids
    )
    assert second in replaced
    # The killed worker could not deregister itself: its supervisor did.
    folder = Path(sqlite_file(make_engine(workers.database_url)) + "-wake")
    assert not [name for name in os.listdir(folder) if name.startswith(f"{first}-")]
    assert workers.api("GET", "/cases").status_code == 200
    opened = workers.api("POST", "/agent/cases", workers.deployment_key, json={"source": "api"})
    assert opened.status_code == 201
    assert "exited (signal SIGKILL)" in workers.log_path.read_text()
    process = workers.process
    assert process is not None
    process.send_signal(signal.SIGTERM)
    assert process.wait(15) == 0
    assert not any(running(pid) for pid in replaced)
    left = os.listdir(folder)
    assert left == [], f"registrations outlived their workers: {left} (killed {first}, {replaced})"


@pytest.mark.slow
def test_workers_end_with_a_killed_parent(workers):
    pids = wait_until(lambda: len(workers.worker_pids()) == 2 and workers.worker_pids())
    workers.kill()
    wait_until(lambda: not any(running(pid) for pid in pids), message="an orphan kept serving")


def test_workers_that_keep_dying_at_start_stop_the_pool(caplog, monkeypatch):
    import backend.serving
    from backend.serving import WorkerPool, listen_socket

    monkeypatch.setattr(backend.serving, "MAX_QUICK_DEATHS", 3)

    def work(number: int, sock) -> None:
        raise RuntimeError("the database is gone")

    with listen_socket("127.0.0.1", 0) as sock:
        assert WorkerPool(2, sock, work).run() == 1
    assert "workers keep exiting at start" in caplog.text
    assert caplog.text.count("exited (status 1)") >= 3
