"""Engines and sessions. The request (or job) owns the transaction; services only flush."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker

import app.db.epochs  # noqa: F401 - registers the listeners that keep cache tokens honest


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite opens transactions on its own terms, which breaks SAVEPOINTs and rollbacks of
    # whole units of work; hand transaction control to SQLAlchemy (the documented recipe).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL lets readers work while the ingest writes; NORMAL is durable at each checkpoint.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


READ_ONLY = "tollgate_read_only"  # execution option and session.info key of `read_only`


class ReadOnlyViolation(RuntimeError):
    """A write inside a unit of work opened with `read_only` (a bug in the caller)."""


def _sqlite_begin(connection: Any) -> None:
    # IMMEDIATE takes the write lock at BEGIN. A deferred transaction that reads and then writes
    # deadlocks against another one doing the same (SQLite answers "database is locked" at once
    # rather than wait), which is every request here: look up the user, then claim or decide.
    # With WAL, readers are never blocked; writers queue behind busy_timeout. A read-only unit
    # of work cannot deadlock that way, so it takes no lock and never waits.
    read_only = connection.get_execution_options().get(READ_ONLY, False)
    connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for the URL; SQLite gets WAL, foreign keys and a busy timeout."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory whose objects stay readable after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def _unit_of_work(session: Session) -> Iterator[Session]:
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextmanager
def read_only(factory: Callable[[], Session]) -> Iterator[Session]:
    """A unit of work that only reads (scoring, lookups); a write in it raises ReadOnlyViolation.

    On SQLite it begins deferred instead of taking the write lock, so concurrent score
    requests, and a bulk intake writing beside them, do not queue behind each other.
    """
    if not (isinstance(factory, sessionmaker) and factory.kw.get("bind") is not None):
        # Tests hand the app their one open session, which a refusal's audit row shares.
        with _unit_of_work(factory()) as session:
            yield session
        return
    session = factory(bind=factory.kw["bind"].execution_options(**{READ_ONLY: True}))
    session.info[READ_ONLY] = True
    with _unit_of_work(session):
        yield session


@event.listens_for(Session, "before_flush")
def _refuse_flush(session: Session, _flush: Any, _instances: Any) -> None:
    if session.info.get(READ_ONLY) and (session.new or session.dirty or session.deleted):
        raise ReadOnlyViolation("a read-only unit of work tried to write")


@event.listens_for(Session, "do_orm_execute")
def _refuse_dml(state: ORMExecuteState) -> None:
    writes = state.is_insert or state.is_update or state.is_delete
    if writes and state.session.info.get(READ_ONLY):
        raise ReadOnlyViolation("a read-only unit of work tried to write")


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with _unit_of_work(factory()) as session:
        yield session
