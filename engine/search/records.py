"""Where a search is kept: one small JSON file per search, $LAB_HOME/searches/search-N.json.

The search's candidates are ordinary job rows; this file holds what ties them together (the
constraints, the plan with its predictions, each candidate's jobs and outcome, the winner),
so the Search page can show a search after a reload and while it runs. Only the process that
runs the search writes its file (atomically: a temporary file renamed over it), except the
cancel request, which is its own file beside it (`request_cancel`). No torch here.
"""

from __future__ import annotations

import json
import os
import socket
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.toolkit.config import LabError
from storage import settings

# search states: starting (the page launched it) -> running -> done | failed | cancelled
RUNNING_STATES = ("starting", "running")
START_GRACE_S = 300.0  # a launched search still "starting" after this never started


def folder() -> Path:
    out = settings.lab_home() / "searches"
    out.mkdir(parents=True, exist_ok=True)
    return out


def _path(search_id: int) -> Path:
    return folder() / f"search-{search_id}.json"


def create(record: dict[str, Any]) -> int:
    """Write a new search's record under the next free id (O_EXCL: two searches started at
    once get two ids); return the id."""
    ids = [int(p.stem.split("-")[1]) for p in folder().glob("search-*.json")
           if p.stem.split("-")[1].isdigit()]
    n = max(ids, default=0) + 1
    while True:
        try:
            fd = os.open(_path(n), os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            n += 1
            continue
        with os.fdopen(fd, "w") as f:
            json.dump({**record, "id": n}, f, default=str)
        return n


def save(record: dict[str, Any]) -> None:
    """Replace the record (atomically: readers never see half a file)."""
    path = _path(record["id"])
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, default=str))
    tmp.replace(path)


def load(search_id: int) -> dict[str, Any]:
    try:
        record = json.loads(_path(search_id).read_text())
    except FileNotFoundError as exc:
        raise LabError(f"there is no search {search_id} (the Search page lists them)") from exc
    record["cancel_requested"] = cancel_requested(search_id)
    if record.get("status") in RUNNING_STATES and not _alive(record):
        record.update(status="failed", message="the search's process ended unexpectedly "
                      "(see logs/search-N.log); the candidates it finished are kept as jobs")
        save({k: v for k, v in record.items() if k != "cancel_requested"})
    return record


def _alive(record: dict[str, Any]) -> bool:
    """Whether the process running the search lives (always True seen from another host)."""
    if record.get("status") == "starting":  # launched: its process takes over in seconds
        try:
            age = time.time() - datetime.fromisoformat(record["created_at"]).timestamp()
        except (KeyError, ValueError):
            return True
        return age < START_GRACE_S
    pid = record.get("pid")
    if not pid or record.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def list_searches() -> list[dict[str, Any]]:
    """Every search, newest first."""
    out = []
    for p in folder().glob("search-*.json"):
        try:
            out.append(load(int(p.stem.split("-")[1])))
        except (ValueError, LabError, json.JSONDecodeError):
            continue
    return sorted(out, key=lambda r: -r["id"])


def request_cancel(search_id: int) -> None:
    (folder() / f"search-{search_id}.cancel").touch()


def cancel_requested(search_id: int) -> bool:
    return (folder() / f"search-{search_id}.cancel").exists()
