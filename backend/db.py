"""Database engine and transactions.

SQLite (the default) runs in WAL mode with a busy timeout, and write transactions take the
write lock up front (``BEGIN IMMEDIATE``) so two writers never deadlock on a lock upgrade.
PostgreSQL is used as is; engine options apply only to the server kind.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

WRITE_OPTION = "sos_write"
EVENT_LOCK_ID = 0x505F5345  # pg advisory lock that keeps event ids committing in order
NOTIFY_CHANNEL = "sos_events"


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs
        )

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy's "begin" event decide how transactions start.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            if conn.get_execution_options().get(WRITE_OPTION):
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.exec_driver_sql("BEGIN")

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    kwargs.setdefault("pool_size", 20)
    kwargs.setdefault("max_overflow", 40)
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


class Store:
    """Hands out sessions: ``read()`` for queries, ``write()`` for one unit of work."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.is_postgres = engine.dialect.name == "postgresql"
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write = sessionmaker(
            engine.execution_options(**{WRITE_OPTION: True}), expire_on_commit=False
        )
        self.after_commit: list[Callable[[], None]] = []
        self._local_writer = threading.RLock() if not self.is_postgres else nullcontext()

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._read() as session:
            session.info["store"] = self
            yield session
            session.rollback()

    @contextmanager
    def write(self) -> Iterator[Session]:
        # SQLite has one writer at a time. Threads of this process queue for it here, in
        # order, instead of each polling the busy timeout (which makes long, random waits);
        # other processes still meet at BEGIN IMMEDIATE.
        with self._local_writer:
            with self._write() as session:
                session.info["store"] = self
                try:
                    yield session
                    session.commit()
                except BaseException:
                    session.rollback()
                    raise
        if session.info.get("events_added"):
            for callback in self.after_commit:
                callback()

    def lock_event_order(self, session: Session) -> None:
        """On PostgreSQL, serialise event appends so ids become visible in order.

        Without it a feed reader could see event 12 committed before event 11 and skip 11.
        SQLite has a single writer, so order is already guaranteed there.
        """
        if self.is_postgres and not session.info.get("event_lock"):
            session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": EVENT_LOCK_ID})
            session.info["event_lock"] = True
        if self.is_postgres and not session.info.get("events_added"):
            # Delivered at commit to every process listening: their long-polls wake up.
            session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})
        session.info["events_added"] = True

    def ping(self) -> bool:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
