"""The database behind the lab: bad URLs are clear LabErrors that write nothing, and on a real
PostgreSQL server (LAB_TEST_DATABASE_URL, started by .ci/postgres) migrations, JSON columns and
timestamps behave as on SQLite. The storage, queue, reliability and concurrency modules are
rerun against PostgreSQL by .ci/run; this file holds what only a server can show."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import create_engine, make_url, text
from streamlit.testing.v1 import AppTest

from engine.cli import main
from storage import jobs as store
from storage.db import DatabaseUnavailable, get_engine, json_dumps, session_scope
from storage.errors import LabError
from tests import databases
from tests.conftest import ROOT

EVAL = {"type": "EvaluateConfig", "version": 1, "data": {}}
on_postgres = pytest.mark.skipif(databases.server_url() is None,
                                 reason="needs LAB_TEST_DATABASE_URL (a PostgreSQL server)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_unavailable(monkeypatch, url: str, *words: str) -> str:
    """Every verb refuses with one clear LabError naming the URL without its password."""
    monkeypatch.setenv("LAB_DATABASE_URL", url)
    with pytest.raises(DatabaseUnavailable) as err:
        store.enqueue("evaluate", EVAL, "default", "rotten-tomatoes")
    message = str(err.value)
    assert isinstance(err.value, LabError)
    for word in words:
        assert word in message, message
    assert "secret-pw" not in message and "Traceback" not in message
    with pytest.raises(DatabaseUnavailable):
        store.list_jobs()
    return message


def test_unreachable_database_is_a_clear_error(monkeypatch, capsys) -> None:
    url = f"postgresql+psycopg://lab:secret-pw@127.0.0.1:{free_port()}/lab"
    message = assert_unavailable(monkeypatch, url, "cannot use the database", "127.0.0.1", "***",
                                 "server is running")
    assert main(["jobs"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot use the database") and "Traceback" not in err
    assert message in err


def test_a_url_the_lab_cannot_use_is_a_clear_error(monkeypatch) -> None:
    assert_unavailable(monkeypatch, "nosuchdb://lab:secret-pw@host/x",
                       "not a database URL the lab can use", "postgresql+psycopg://")
    assert_unavailable(monkeypatch, "not a url at all", "not a database URL")


def test_dashboard_keeps_running_without_its_database(monkeypatch) -> None:
    monkeypatch.setenv("LAB_DATABASE_URL",
                       f"postgresql+psycopg://lab@127.0.0.1:{free_port()}/lab")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert any("cannot use the database" in e.value for e in at.error)


def test_json_is_standard_on_every_backend() -> None:
    assert json.loads(json_dumps({"a": math.nan, "b": [1.5, math.inf], "c": "x"})) == \
        {"a": None, "b": [1.5, None], "c": "x"}


def test_json_columns_and_timestamps_roundtrip() -> None:
    """Nested JSON, unicode and non-finite floats; timestamps come back UTC-aware and equal."""
    config = {"type": "EvaluateConfig", "version": 1,
              "data": {"batch_sizes": [1, 32], "note": "ünïcode ✓", "nested": {"x": [1, {}]}}}
    jid = store.enqueue("evaluate", config, "default", "rotten-tomatoes")
    t0 = datetime(2026, 12, 1, 20, 0, 0, 123456, tzinfo=UTC)
    store.claim(1, now=t0)
    store.add_curve_points(jid, {"loss": (1, 0.5)})
    store.save_results(jid, {"model": "default", "dataset": "rotten-tomatoes",
                             "accuracy": 0.5, "speedup_vs_parent": {"1": math.nan}}, [], [])
    job = store.load_job(jid)  # as stored: get_job would reap this old claim first
    assert job.config == config and job.curves == {"loss": [[1.0, 0.5]]}
    assert job.started_at == t0 and job.started_at.tzinfo is not None
    assert job.started_at.utcoffset() == timedelta(0)
    assert store.job_as_dict(job)["metrics"]["speedup_vs_parent"] == {"1": None}
    # an aware time in another zone compares as the same instant
    other = t0.astimezone(timezone(timedelta(hours=5)))
    assert store.reap_stale(other + timedelta(seconds=59), 60, 2) == []
    assert store.reap_stale(other + timedelta(seconds=61), 60, 2) == [jid]


@on_postgres
def test_postgres_sessions_are_in_utc() -> None:
    with session_scope() as s:
        assert s.execute(text("SHOW timezone")).scalar() == "UTC"
    assert get_engine().dialect.name == "postgresql"


@on_postgres
def test_wrong_password_is_a_clear_error(monkeypatch) -> None:
    """.ci/postgres makes the role lab_pw with password auth (password "lab-right")."""
    server = make_url(databases.server_url())
    good = server.set(username="lab_pw", password="lab-right").render_as_string(False)
    with create_engine(good).connect() as conn:  # the role exists and its password works
        assert conn.execute(text("SELECT current_user")).scalar() == "lab_pw"
    bad = server.set(username="lab_pw", password="secret-pw").render_as_string(False)
    assert_unavailable(monkeypatch, bad, "password authentication failed", "password", "wrong")


@on_postgres
def test_missing_database_is_a_clear_error(monkeypatch) -> None:
    url = make_url(databases.server_url()).set(database="no_such_lab_db")
    assert_unavailable(monkeypatch, url.render_as_string(False), "no_such_lab_db", "createdb")


MIGRATOR = """
from storage import jobs as store
from storage.db import get_engine
get_engine()
print(store.enqueue("evaluate", {"data": {}}, "default", "rotten-tomatoes"))
"""


@on_postgres
def test_workers_starting_together_migrate_once() -> None:
    """Four processes open a fresh, empty database at once: one migrates, none fails."""
    fresh = databases.create_database(databases.server_url())
    try:
        env = {**os.environ, "LAB_DATABASE_URL": fresh}
        procs = [subprocess.Popen([sys.executable, "-c", MIGRATOR], cwd=ROOT, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(4)]
        ids = []
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err[-2000:]
            ids.append(int(out.split()[-1]))
        assert sorted(ids) == [1, 2, 3, 4]
    finally:
        from storage.db import dispose_all

        dispose_all()
        databases.drop_database(databases.server_url(), fresh)
