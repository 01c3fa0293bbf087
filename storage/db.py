"""Database connection: one SQLAlchemy engine per URL, Alembic migrations.

Two backends behave the same for the lab: SQLite (the default; WAL mode) and PostgreSQL
(`postgresql+psycopg://user:password@host:port/db`; the sessions run in UTC, a dropped
connection is replaced before use, migrations hold an advisory lock so that workers starting
together migrate once). JSON columns hold standard JSON on both: a non-finite float (NaN, inf)
is stored as null. A database that cannot be reached (server down, wrong password, unknown
driver) raises `DatabaseUnavailable`, a LabError whose message names the URL without its
password and says what to check; nothing is written.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc, inspect, make_url, text
from sqlalchemy.orm import Session, sessionmaker

from storage import settings
from storage.errors import LabError

_lock = threading.Lock()
_engines: dict[str, Engine] = {}
_migrated: set[str] = set()
MIGRATIONS = Path(__file__).parent / "migrations"
CONNECT_TIMEOUT_S = 10  # a server that does not answer is reported after this long
MIGRATION_LOCK = 0x1AB0DB  # PostgreSQL advisory lock key held while migrating


class DatabaseUnavailable(LabError):
    """The database at LAB_DATABASE_URL cannot be reached or refuses the lab's login."""


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # a numpy scalar
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def json_dumps(value: Any) -> str:
    """Standard JSON for every backend (PostgreSQL's json type refuses NaN): non-finite floats
    become null, numpy scalars plain numbers."""
    return json.dumps(_finite(value), default=_json_default, allow_nan=False)


def safe_url(url: str) -> str:
    """`url` with its password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except exc.ArgumentError:
        return "(not a database URL)"


def _unavailable(url: str, error: BaseException) -> DatabaseUnavailable:
    """A user-facing error for a failed connection, from the driver's own words."""
    reason = str(getattr(error, "orig", None) or error).strip().splitlines()
    reason = reason[0] if reason else type(error).__name__
    if "password authentication failed" in reason or "no password supplied" in reason:
        hint = "the user name or password in LAB_DATABASE_URL is wrong"
    elif "does not exist" in reason and "database" in reason:
        hint = "create that database first (createdb) or fix its name in LAB_DATABASE_URL"
    else:
        hint = "check LAB_DATABASE_URL and that the database server is running and reachable"
    return DatabaseUnavailable(f"cannot use the database at {safe_url(url)}: {reason}; {hint}")


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # WAL lets the dashboard read while a worker writes; busy_timeout makes writers wait for
    # each other instead of failing with "database is locked".
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _create(url: str) -> Engine:
    """A new engine with the options of its backend; DatabaseUnavailable for a bad URL."""
    try:
        parsed = make_url(url)
        backend = parsed.get_backend_name()
        kwargs: dict[str, Any] = {"json_serializer": json_dumps}
        if backend == "sqlite":
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        elif backend == "postgresql":
            # UTC sessions: timestamps are stored as UTC without a zone on both backends
            kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S,
                                      "options": "-c timezone=UTC"}
            kwargs.update(pool_pre_ping=True, pool_size=5, max_overflow=10, pool_recycle=1800)
        engine = create_engine(url, **kwargs)
    except (exc.ArgumentError, exc.NoSuchModuleError, ImportError) as error:
        raise DatabaseUnavailable(
            f"LAB_DATABASE_URL {safe_url(url)} is not a database URL the lab can use ({error}); "
            "use sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB") from None
    if backend == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def get_engine(url: str | None = None) -> Engine:
    """The engine for `url` (default: LAB_DATABASE_URL), migrated to the newest schema.

    Raises DatabaseUnavailable when the database cannot be reached (nothing is cached then:
    the next call tries again)."""
    url = url or settings.database_url()
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = _create(url)
        if url not in _migrated:
            try:
                migrate(engine)
            except (exc.OperationalError, exc.InterfaceError) as error:
                _engines.pop(url, None)
                engine.dispose()
                raise _unavailable(url, error) from None
            _migrated.add(url)
    return engine


def migrate(engine: Engine) -> None:
    """Bring the database to the newest Alembic revision (a no-op when it is there already)."""
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    with engine.connect() as conn:
        if MigrationContext.configure(conn).get_current_revision() == head:
            return
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # workers starting together: one migrates, the others wait and find it done
            # (PostgreSQL's DDL is transactional; the lock ends with this transaction)
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            if MigrationContext.configure(conn).get_current_revision() == head:
                return
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on any exception."""
    url = url or settings.database_url()
    factory = sessionmaker(get_engine(url), expire_on_commit=False)
    session = factory()
    try:
        try:
            session.connection()  # connect now: a lost server is a clear error, not a traceback
        except (exc.OperationalError, exc.InterfaceError) as error:
            raise _unavailable(url, error) from None
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def lock_for_write(s: Session, *names: str) -> None:
    """Make the rest of `s`'s transaction exclusive for each of `names`, so that what it reads
    and what it then writes are one atomic step (e.g. count an owner's queue, then insert).

    SQLite: BEGIN IMMEDIATE, the database's one write lock taken now (waited for up to the
    busy timeout): every writer serialises, and a read-then-write can never fail half-way with
    "database is locked". PostgreSQL: one transaction-scoped advisory lock per name
    (pg_advisory_xact_lock on a 64-bit hash), taken in sorted order so that two transactions
    never wait on each other in a cycle; only transactions naming the same thing wait. Both
    end with the transaction. Call it first in the session, before any other statement."""
    dialect = s.get_bind().dialect.name
    if dialect == "sqlite":
        # pysqlite opens its own (deferred) transaction only before DML: this one comes first
        s.execute(text("BEGIN IMMEDIATE"))
    elif dialect == "postgresql":
        for name in sorted(set(names)):
            key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
            s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def check(url: str | None = None) -> None:
    """Connect and migrate now; raise DatabaseUnavailable with what to fix (the dashboard calls
    this first, so a bad LAB_DATABASE_URL is one message instead of a failing page)."""
    with session_scope(url) as s:
        s.execute(text("SELECT 1"))


def table_names(url: str | None = None) -> list[str]:
    return inspect(get_engine(url)).get_table_names()


def dispose_all() -> None:
    """Forget every engine (tests switch LAB_HOME between cases)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _migrated.clear()
