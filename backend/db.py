"""Database engine and transactions.

SQLite (the default) runs in WAL mode with a busy timeout, and write transactions take the
write lock up front (``BEGIN IMMEDIATE``) so two writers never deadlock on a lock upgrade.
PostgreSQL is used as is; engine options apply only to the server kind. On both, reads run
in autocommit: each statement sees what was committed when it began.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    Engine,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    literal,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, make_transient_to_detached, sessionmaker

from backend.prepared import Prepared

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: processes meet at SQLite's busy timeout
    fcntl = None  # type: ignore[assignment]

T = TypeVar("T")
log = logging.getLogger(__name__)
WRITE_OPTION = "sos_write"
READ_OPTION = "sos_read"
EVENT_LOCK_ID = 0x505F5345  # pg advisory lock that keeps event ids committing in order
NOTIFY_CHANNEL = "sos_events"


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        # A pool as large as the server's threads: connections are reused, not reopened.
        kwargs.setdefault("pool_size", 20)
        kwargs.setdefault("max_overflow", 60)
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
            options = conn.get_execution_options()
            # Straight on the driver: SQLAlchemy's statement execution would cost more than the
            # statement (see backend/prepared.py).
            if options.get(WRITE_OPTION):
                conn.connection.driver_connection.execute("BEGIN IMMEDIATE")
            elif not options.get(READ_OPTION):  # reads run in autocommit (see Store)
                conn.connection.driver_connection.execute("BEGIN")

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    kwargs.setdefault("pool_size", 20)
    kwargs.setdefault("max_overflow", 40)
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


@functools.cache
def insert_unless_conflict(postgres: bool, table: Any) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` into ``table``, for PostgreSQL or SQLite.

    A row that would break a unique constraint is skipped, not an error: with ``RETURNING``
    the statement then returns no row, and no savepoint is needed to carry on. Built once per
    table: constructing a statement costs more than executing its cached compiled form.
    """
    insert = postgresql.insert if postgres else sqlite.insert
    return insert(table).on_conflict_do_nothing()


def attach_inserted(session: Session, model: type[T], values: dict[str, Any], row_id: int) -> T:
    """The ``model`` object of a row just inserted with ``values``, persistent in the session.

    Built from the values and the columns' defaults, without reading the row back.
    """
    table = model.__table__  # type: ignore[attr-defined]
    # Filled the way the ORM fills an object it loads: straight into its state's dictionary,
    # without the attribute events a constructor sets off (which cost more than the insert).
    obj = model.__mapper__.class_manager.new_instance()  # type: ignore[attr-defined]
    obj.__dict__.update(_defaults(table), **values, id=row_id)
    make_transient_to_detached(obj)  # as though just loaded: no pending changes
    session.add(obj)
    return obj


@functools.cache
def _defaults(table: Any) -> dict[str, Any]:
    """Each column's value when an insert does not give one: its scalar default, or None."""
    defaults = {}
    for column in table.columns:
        assert column.default is None or column.default.is_scalar, f"{column} needs a value"
        defaults[column.key] = None if column.default is None else column.default.arg
    return defaults


EVENT_KEYS = (
    "case_id",
    "case_code",
    "group_id",
    "type",
    "status",
    "actor_kind",
    "actor_id",
    "actor_name",
    "data",
    "created_at",
)


@functools.cache
def _event_insert(postgres: bool) -> Prepared:
    """The insert of one event row; on PostgreSQL it first takes the event-order lock and
    queues the notification (see ``Store._append_events``), in the same round trip."""
    from backend.models import Event

    events = Event.__table__
    if not postgres:
        return Prepared(insert(events), keys=EVENT_KEYS)
    lock = select(
        func.pg_advisory_xact_lock(literal(EVENT_LOCK_ID, BigInteger)).label("locked"),
        func.pg_notify(literal(NOTIFY_CHANNEL), literal("")).label("notified"),
    ).cte("event_lock")
    row = select(*(bindparam(key, type_=events.c[key].type) for key in EVENT_KEYS))
    return Prepared(insert(events).from_select(EVENT_KEYS, row.select_from(lock)), keys=EVENT_KEYS)


class WriterLock:
    """One SQLite writer at a time: this process's threads in turn, and processes in turn.

    Threads queue on a lock, in order. Processes (``sos-backend serve --workers``, a second
    server, the CLI) queue on ``flock`` of a file next to the database: the kernel wakes the
    next writer when one is done, where SQLite's busy timeout would have each poll with growing
    sleeps, long and random under load, while holding up the rest of its process. Re-entrant.
    Each process opens its own file, also after ``fork``: a lock taken through a description
    shared with the parent would not keep the two apart.
    """

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._depth = 0
        self._held = False
        self._fd = -1
        self._pid = 0

    def __enter__(self) -> None:
        self._lock.acquire()
        self._depth += 1
        if self._depth > 1 or self.path is None:
            return
        try:
            fcntl.flock(self._file(), fcntl.LOCK_EX)
            self._held = True
        except OSError as exc:  # a read-only folder, a file system without locks
            log.warning(
                "cannot lock %s (%s); writers of other processes will wait at SQLite's busy "
                "timeout instead",
                self.path,
                exc,
            )
            self.path = None
        except BaseException:
            self._depth -= 1
            self._lock.release()
            raise

    def __exit__(self, *_exc: object) -> None:
        try:
            if self._depth == 1 and self._held:
                self._held = False
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._depth -= 1
            self._lock.release()

    def _file(self) -> int:
        if self._pid != os.getpid():
            assert self.path is not None
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._pid = os.getpid()
        return self._fd


def sqlite_file(engine: Engine) -> str | None:
    """The absolute path of the engine's SQLite database file; None for other databases."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    return None if database.startswith("file:") else os.path.abspath(database)


class Store:
    """Hands out sessions: ``read()`` for queries, ``write()`` for one unit of work."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.is_postgres = engine.dialect.name == "postgresql"
        # Reads never flush, and run in autocommit: each statement sees the latest commits,
        # as it would in a READ COMMITTED transaction, without BEGIN and ROLLBACK (two round
        # trips per read on PostgreSQL).
        reader = engine.execution_options(
            **({"isolation_level": "AUTOCOMMIT"} if self.is_postgres else {READ_OPTION: True})
        )
        self._read = sessionmaker(reader, expire_on_commit=False, autoflush=False)
        self._write = sessionmaker(
            engine.execution_options(**{WRITE_OPTION: True}), expire_on_commit=False
        )
        # Called after a unit of work commits, when it added what the key names to the
        # session's info ("events_added", "notifications_added").
        self.after_commit: list[tuple[str, Callable[[], None]]] = []
        database = sqlite_file(engine)
        self._writer = (
            nullcontext()
            if self.is_postgres
            else WriterLock(database + "-writer" if database and fcntl else None)
        )
        for maker in (self._read, self._write):
            event.listen(maker, "before_commit", self._append_events)

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._read() as session:  # closing it hands the connection back, rolled back
            session.info["store"] = self
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        # SQLite has one writer at a time: writers queue for it here (see WriterLock). Writers
        # outside the product (a sqlite3 shell) still meet at BEGIN IMMEDIATE.
        with self._writer:
            with self._write() as session:
                session.info["store"] = self
                try:
                    yield session
                    session.commit()
                except BaseException:
                    session.rollback()
                    raise
        for added, callback in self.after_commit:
            if session.info.get(added):
                callback()

    @staticmethod
    def add_event(session: Session, row: dict[str, Any]) -> None:
        """Keep an event row for the end of the unit of work (see :meth:`_append_events`)."""
        session.info.setdefault("pending_events", []).append(row)
        session.info["events_added"] = True

    def _append_events(self, session: Session) -> None:
        """Insert the unit of work's events last, just before it commits.

        On PostgreSQL event appends are serialised by a transaction-level advisory lock, so
        that ids become visible in order: without it a feed reader could see event 12
        committed before event 11 and skip 11. Taking it here, after everything else the
        unit of work writes, keeps that serialised part to the event insert and the commit.
        The same statement queues a notification, delivered at commit to every process
        listening, whose long-polls then wake up. SQLite has a single writer, so order is
        already guaranteed there.
        """
        rows = session.info.pop("pending_events", None)
        if not rows:
            return
        session.flush()  # everything else first
        # In order, one statement per row (on PostgreSQL sent together, in one pipeline): ids
        # follow the list. Taking the lock again in the same transaction costs nothing, and
        # PostgreSQL delivers identical notifications of one transaction once.
        _event_insert(self.is_postgres).many(session.connection(), rows)

    def ping(self) -> bool:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
