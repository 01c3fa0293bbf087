"""A fresh PostgreSQL database per test, when LAB_TEST_DATABASE_URL names a server.

`.ci/run` starts a throwaway cluster (.ci/postgres) and reruns the storage, queue, reliability
and concurrency test modules with LAB_TEST_DATABASE_URL set to its admin URL; the `lab_home`
fixture then points LAB_DATABASE_URL at a database made for that test alone and drops it after.
"""

from __future__ import annotations

import os
import uuid

from sqlalchemy import Engine, create_engine, make_url, text

_admin: dict[str, Engine] = {}


def server_url() -> str | None:
    """The admin URL of the test server (a superuser on its `postgres` database), or None."""
    return os.environ.get("LAB_TEST_DATABASE_URL", "").strip() or None


def _admin_engine(url: str) -> Engine:
    if url not in _admin:
        _admin[url] = create_engine(url, isolation_level="AUTOCOMMIT", pool_size=1)
    return _admin[url]


def create_database(url: str) -> str:
    """Create an empty database on the server of `url`; return its URL (same user and host)."""
    name = f"lab_test_{uuid.uuid4().hex[:12]}"
    with _admin_engine(url).connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str, database_url: str) -> None:
    """Drop a database made by `create_database`, ending any connection left to it."""
    name = make_url(database_url).database
    with _admin_engine(url).connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
