"""The declarative base with its naming convention, and engine and session factories."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    DateTime,
    Engine,
    Executable,
    Integer,
    MetaData,
    Row,
    create_engine,
    event,
    func,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from tenacity import AsyncRetrying, Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

T = TypeVar("T")
Run = Callable[[Callable[[Session], Any]], Awaitable[Any]]  # work(session), on the caller's session (run_on)
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# InnoDB with full Unicode on MySQL/MariaDB; ignored by SQLite.
MYSQL_TABLE_ARGS: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_unicode_ci",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class CreatedAtMixin:
    created_at: Mapped[datetime] = mapped_column(
        DateTime, server_default=func.current_timestamp(), nullable=False
    )


def utcnow() -> datetime:
    """Return the current UTC time as a naive datetime, as the database stores it."""
    return datetime.now(UTC).replace(tzinfo=None)


def from_epoch(seconds: int) -> datetime:
    """Return a naive UTC datetime for seconds since the epoch."""
    return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)


class epoch_seconds(FunctionElement[int]):  # reads as the SQL function it is
    """A naive UTC datetime's seconds since the epoch, computed by the database (no driver parsing)."""

    type = Integer()
    inherit_cache = True


@compiles(epoch_seconds, "mysql")
def _epoch_seconds_mysql(element: epoch_seconds, compiler: SQLCompiler, **kw: Any) -> str:
    # TIMESTAMPDIFF counts from a literal: no session time zone is involved, unlike UNIX_TIMESTAMP.
    return f"TIMESTAMPDIFF(SECOND, '1970-01-01 00:00:00', {compiler.process(element.clauses, **kw)})"


@compiles(epoch_seconds, "sqlite")
def _epoch_seconds_sqlite(element: epoch_seconds, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(strftime('%s', {compiler.process(element.clauses, **kw)}) AS INTEGER)"


def make_async_engine(url: str, *, mysql_driver: str = "asyncmy", **kwargs: Any) -> AsyncEngine:
    """Return the app's asyncio engine (asyncmy, whose protocol is compiled; aiosqlite) in autocommit:
    each read sees what was committed before it, and returns its connection to the pool without a
    ROLLBACK; a write runs in a transaction it begins and ends itself (run_on)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    kwargs.update(isolation_level="AUTOCOMMIT", skip_autocommit_rollback=True)
    if backend == "sqlite":
        engine = create_async_engine(parsed.set(drivername="sqlite+aiosqlite"), **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
        return engine
    if backend != "mysql":
        raise ValueError(f"no asyncio driver is set up for {backend}")
    return create_async_engine(
        _server_defaults(parsed.set(drivername=f"mysql+{mysql_driver}"), kwargs), **kwargs
    )


# What a database that is down or out of reach raises (TimeoutError: run_on's); its other errors are
# bugs, answered as INTERNAL_SERVER_ERROR.
DATABASE_ERRORS = (OperationalError, InterfaceError, PoolTimeout, TimeoutError)
DATABASE_DOWN = "the database is unavailable; try again shortly"
READ_TIMEOUT_S = 30  # a statement on the event loop, bounded as make_engine bounds a thread's
# A write's transaction on an autocommit connection, which stays in autocommit: nothing about it is
# reset when it returns to the pool (a reset on a connection that died failed outside any handler).
# SQLite takes the write lock at BEGIN, as _sqlite_on_begin says why.
BEGIN_WRITE = {"sqlite": "BEGIN IMMEDIATE", "mysql": "START TRANSACTION"}


async def read(
    engine: AsyncEngine,
    statement: Executable,
    parameters: dict[str, Any] | None = None,
    *,
    timeout: float = READ_TIMEOUT_S,
) -> Sequence[Row[Any]]:
    """Return the rows of a statement, read on a session of its own (run_on)."""
    rows = partial(all_rows, statement, parameters)
    return await run_on(AsyncSession(engine, expire_on_commit=False), rows, timeout=timeout)


def all_rows(
    statement: Executable, parameters: dict[str, Any] | None, session: Session
) -> Sequence[Row[Any]]:
    """Return the rows of a Core statement, run on the session's connection: the ORM's execute adds
    work such a statement needs not."""
    return session.connection().execute(statement, parameters).all()


async def run_on(
    session: AsyncSession,
    work: Callable[[Session], T],
    *,
    write: bool = False,
    timeout: float = READ_TIMEOUT_S,
) -> T:
    """Return work(session) run on the event loop (SQLAlchemy's run_sync: its statements await; work
    itself must not block), within `timeout` s; with `write`, in one transaction, run again after a
    short random pause when it loses a lock conflict (LOCK_RETRY). The connection goes back to the
    pool after the call; on a timeout or cancellation it leaves the pool, its protocol state unknown."""
    try:
        async with asyncio.timeout(timeout):
            if not write:
                return await session.run_sync(work)
            async for attempt in AsyncRetrying(**LOCK_RETRY):
                with attempt:
                    return await _in_transaction(session, work)
            raise AssertionError("unreachable")
    except (TimeoutError, asyncio.CancelledError):
        with contextlib.suppress(Exception):  # a connection already gone
            await session.invalidate()
        raise
    finally:
        await session.close()


async def _in_transaction(session: AsyncSession, work: Callable[[Session], T]) -> T:
    """Return work(session) run in one transaction, begun and ended by statements: in autocommit,
    SQLAlchemy sends no ROLLBACK of its own. A failed one leaves the session as it was before."""
    connection = await session.connection()
    await connection.exec_driver_sql(BEGIN_WRITE[connection.dialect.name])
    try:
        result = await session.run_sync(work)
        await session.flush()
        await connection.exec_driver_sql("COMMIT")
        return result
    except Exception:
        try:  # a connection found dead is invalidated already: the server ends its transaction
            if not connection.invalidated:
                await connection.exec_driver_sql("ROLLBACK")
        except DBAPIError:  # the transaction's state is unknown: the connection must not be reused
            await session.invalidate()
        await session.rollback()  # the objects the work added or changed
        raise


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Return an engine for url: SQLite with foreign keys on, MySQL in utf8mb4 with pre-ping."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, **kwargs)
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    parsed = _server_defaults(parsed, kwargs)
    connect_args = kwargs["connect_args"]
    connect_args.setdefault("read_timeout", 30)
    connect_args.setdefault("write_timeout", 30)
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(parsed, **kwargs)


BATCH_TIMEOUT_S = 3600  # a statement of the command line's long jobs, on MySQL (make_batch_engine)


def make_batch_engine(url: str) -> Engine:
    """Return make_engine's engine for the command line's long jobs (MySQL statements of minutes)."""
    if make_url(url).get_backend_name() != "mysql":
        return make_engine(url)
    # local_infile: the import's first load of the ratings table is a LOAD DATA LOCAL (api/ratings/writes.py)
    connect_args = {"read_timeout": BATCH_TIMEOUT_S, "write_timeout": BATCH_TIMEOUT_S, "local_infile": True}
    return make_engine(url, connect_args=connect_args)


def _server_defaults(parsed: URL, kwargs: dict[str, Any]) -> URL:
    """Return a MySQL URL in utf8mb4, and set the pool and connect options both engines share."""
    if parsed.get_backend_name() == "mysql" and "charset" not in parsed.query:
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    connect_args = kwargs.setdefault("connect_args", {})
    # Fail fast when the server is gone: a request errs within seconds instead of hanging.
    connect_args.setdefault("connect_timeout", 3)
    # A request reads a user's ratings as GROUP_CONCAT strings (api.recommend.pipeline.USER_SELECT),
    # which MySQL 8 cuts short by default: room for any user's ratings, on both engines.
    connect_args.setdefault("init_command", "SET SESSION group_concat_max_len = 67108864")
    kwargs.setdefault("pool_timeout", 5)
    kwargs.setdefault("pool_recycle", 3600)
    # Sessions and connections here always end their transaction (commit, or rollback on close), so
    # the pool's own ROLLBACK on return would be a second round trip per request for nothing.
    kwargs.setdefault("pool_reset_on_return", None)
    return parsed


def _sqlite_on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    # pysqlite's own transaction handling skips BEGIN before DDL and breaks SAVEPOINT; let
    # SQLAlchemy emit BEGIN itself (the recipe in SQLAlchemy's SQLite dialect notes).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def _sqlite_on_begin(connection: Connection) -> None:
    # IMMEDIATE takes the write lock at BEGIN, waiting for it: a deferred transaction that read, then
    # wrote, failed at once with "database is locked" when another wrote in between. A connection
    # that only reads says so (execution option `deferred_begin`) and then never waits for a writer.
    deferred = connection.get_execution_options().get("deferred_begin", False)
    connection.exec_driver_sql("BEGIN DEFERRED" if deferred else "BEGIN IMMEDIATE")


LOCK_ERRORS = (1205, 1213)  # MySQL/MariaDB: lock wait timeout, deadlock (the transaction was rolled back)


def is_lock_conflict(error: BaseException) -> bool:
    """Return whether a failed transaction lost a lock conflict, so that running it again can succeed."""
    original = getattr(error, "orig", None)
    if isinstance(original, sqlite3.OperationalError):
        return "locked" in str(original)
    args: tuple[object, ...] = getattr(original, "args", ())
    return bool(args) and args[0] in LOCK_ERRORS


# A transaction that lost a lock conflict was rolled back whole: run it again, 4 times at most.
LOCK_RETRY: dict[str, Any] = {
    "retry": retry_if_exception(lambda e: isinstance(e, OperationalError) and is_lock_conflict(e)),
    "stop": stop_after_attempt(4),
    "wait": wait_random_exponential(multiplier=0.02, max=0.4),
    "reraise": True,
}


def in_transaction(sessions: sessionmaker[Session], work: Callable[[Session], T]) -> T:
    """Return work(session) run in one transaction of a session of its own, committed, and run again
    as LOCK_RETRY says (a worker thread's run_on)."""
    for attempt in Retrying(**LOCK_RETRY):
        with attempt, sessions.begin() as session:
            return work(session)
    raise AssertionError("unreachable")


def make_session_factory(engine: Engine) -> sessionmaker:
    """Return the session factory that the edges (requests, commands) open sessions from."""
    return sessionmaker(engine, expire_on_commit=False)
