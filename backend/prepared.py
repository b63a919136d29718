"""Statements that run on every busy request, compiled once and run on the driver's cursor.

SQLAlchemy's execution of a Core statement (an execution context, a result object, the
parameter and type processing) costs several times what the database itself spends on a small
statement: an insert into ``case_tokens`` on SQLite takes about 60 µs through
``Connection.execute`` and 8 µs on the ``sqlite3`` cursor. :class:`Prepared` keeps the
statement defined with SQLAlchemy (the same tables, compiled by SQLAlchemy for each dialect,
the columns' types converting values both ways) and skips only that machinery at run time.

Only plain statements qualify: named parameters, no "expanding" ``IN`` lists, no defaults
computed at run time. A prepared statement runs on the caller's connection, inside its
transaction, so it mixes freely with ORM and Core work in the same unit of work. Errors from
the driver are raised as SQLAlchemy's (``IntegrityError`` ...), and listeners of the engine's
``before_cursor_execute`` event (statement counters) see these statements too.
"""

from __future__ import annotations

import functools
from collections import namedtuple
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, exc
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.dml import Insert

Processor = Callable[[Any], Any]


@dataclass(frozen=True)
class _Compiled:
    sql: str
    order: tuple[str, ...] | None  # a positional driver's parameters, in order
    fixed: dict[str, Any]  # values the statement supplies itself: literals, column defaults
    binds: tuple[tuple[str, Processor], ...]  # parameters whose type converts the value
    row: Callable[..., Any] | None  # a named tuple of the columns returned, if any
    results: tuple[tuple[int, Processor], ...]  # returned columns whose type converts them


class Prepared:
    """One statement, compiled on first use for each dialect it runs on.

    ``keys`` name the columns an ``INSERT`` is given; the others take their defaults, which
    must be plain values.
    """

    def __init__(self, statement: ClauseElement, keys: Iterable[str] | None = None) -> None:
        self.statement = statement
        self.keys = tuple(keys) if keys is not None else None
        if isinstance(statement, Insert) and self.keys is None:
            raise ValueError("a prepared INSERT needs the keys of the columns it is given")
        self._by_dialect: dict[str, _Compiled] = {}

    def run(self, connection: Connection, params: Mapping[str, Any]) -> None:
        """Run it once; what it returns, if anything, is not read."""
        compiled = self.compiled(connection.dialect)
        _execute(connection, compiled, _parameters(compiled, params), many=False).close()

    def all(self, connection: Connection, params: Mapping[str, Any]) -> list[Any]:
        """Run it once; the rows it returns, as named tuples."""
        compiled = self.compiled(connection.dialect)
        if compiled.row is None:
            raise TypeError("this statement returns no rows")
        cursor = _execute(connection, compiled, _parameters(compiled, params), many=False)
        try:
            rows = cursor.fetchall()
        finally:
            cursor.close()
        return [_convert(compiled, row) for row in rows]

    def first(self, connection: Connection, params: Mapping[str, Any]) -> Any:
        """Run it once; its first row, or None."""
        rows = self.all(connection, params)
        return rows[0] if rows else None

    def many(self, connection: Connection, params: Sequence[Mapping[str, Any]]) -> None:
        """Run it once for each set of parameters, in order (``executemany``)."""
        compiled = self.compiled(connection.dialect)
        each = [_parameters(compiled, p) for p in params]
        _execute(connection, compiled, each, many=True).close()

    def compiled(self, dialect: Dialect) -> _Compiled:
        compiled = self._by_dialect.get(dialect.name)
        if compiled is None:
            compiled = self._by_dialect[dialect.name] = _compile(self.statement, self.keys, dialect)
        return compiled


def _execute(connection: Connection, compiled: _Compiled, parameters: Any, many: bool) -> Any:
    cursor = connection.connection.cursor()  # the pooled DB-API connection, in its transaction
    if connection._has_events or connection.engine._has_events:
        for listener in connection.dispatch.before_cursor_execute:
            listener(connection, cursor, compiled.sql, parameters, None, many)
    try:
        if many:
            cursor.executemany(compiled.sql, parameters)
        else:
            cursor.execute(compiled.sql, parameters)
    except Exception as error:
        cursor.close()
        dbapi_error = connection.dialect.loaded_dbapi.Error
        if isinstance(error, dbapi_error):
            raise exc.DBAPIError.instance(
                compiled.sql, parameters, error, dbapi_error, dialect=connection.dialect
            ) from error
        raise
    return cursor


def _compile(statement: ClauseElement, keys: tuple[str, ...] | None, dialect: Dialect) -> _Compiled:
    compiled = statement.compile(dialect=dialect, column_keys=list(keys) if keys else None)
    binds = {name: bind for bind, name in compiled.bind_names.items()}  # as the SQL names them
    if any(bind.expanding for bind in binds.values()) or compiled.escaped_bind_names:
        raise ValueError("a prepared statement takes plain named parameters only")
    table = getattr(statement, "table", None)
    defaults = _scalar_defaults(table) if keys is not None and table is not None else {}
    fixed, processors = {}, []
    for name, bind in binds.items():
        if keys is not None and name not in keys and name in defaults:
            if defaults[name] is _COMPUTED:
                raise ValueError(f"give {name}: its default is computed at run time")
            fixed[name] = defaults[name]
        elif bind.callable is not None:
            raise ValueError(f"parameter {name} has a value computed at run time")
        elif not bind.required:
            fixed[name] = bind.value  # a literal of the statement
        processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if processor is not None:
            processors.append((name, processor))
    columns = list(getattr(statement, "exported_columns", ()))
    row, results = None, []
    if columns:
        row = namedtuple("Row", [c.key for c in columns])  # type: ignore[misc]
        for index, column in enumerate(columns):
            processor = column.type.dialect_impl(dialect).result_processor(dialect, None)
            if processor is not None:
                results.append((index, processor))
    return _Compiled(
        sql=compiled.string,
        order=tuple(compiled.positiontup or ()) if compiled.positional else None,
        fixed=fixed,
        binds=tuple(processors),
        row=row,
        results=tuple(results),
    )


_COMPUTED = object()


@functools.cache
def _scalar_defaults(table: Table) -> dict[str, Any]:
    return {
        column.key: column.default.arg if column.default.is_scalar else _COMPUTED
        for column in table.columns
        if column.default is not None
    }


def _parameters(compiled: _Compiled, params: Mapping[str, Any]) -> Any:
    values = {**compiled.fixed, **params}
    for name, process in compiled.binds:
        values[name] = process(values.get(name))
    if compiled.order is None:
        return values
    try:
        return tuple([values[name] for name in compiled.order])
    except KeyError as missing:
        raise ValueError(f"missing a value for the parameter {missing}") from None


def _convert(compiled: _Compiled, row: Sequence[Any]) -> Any:
    if compiled.results:
        row = list(row)
        for index, process in compiled.results:
            row[index] = process(row[index])
    assert compiled.row is not None
    return compiled.row(*row)
