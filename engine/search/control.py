"""The search's verbs: `search` (check, plan, run, report: the CLI's), `launch` (start one in
a background process: the Search page's) and `cancel`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from engine.reports import search_plan as P
from engine.search import records
from engine.search.checks import METHODS, check_request
from engine.search.planning import Prepared
from engine.search.run import Run
from engine.toolkit.config import LabError
from storage import settings
from storage.models import CANCELLED


def new_record(model: str, dataset: str, cons: P.Constraints, owner: str | None,
               methods: tuple[str, ...], train_steps: int, max_candidates: int | None,
               status: str = "running") -> int:
    from engine.submit import check_owner
    from storage.models import utcnow

    return records.create({
        "status": status, "model": model, "dataset": dataset, "owner": check_owner(owner),
        "constraints": cons.__dict__, "methods": list(methods), "train_steps": train_steps,
        "max_candidates": max_candidates, "created_at": utcnow().isoformat(),
        "pid": os.getpid(), "host": socket.gethostname(), "candidates": [],
        "message": "planning"})


def search(model: str, dataset: str, cons: P.Constraints, owner: str | None = None,
           methods: tuple[str, ...] = METHODS, train_steps: int = 0,
           max_candidates: int | None = None, search_id: int | None = None,
           on_update=None) -> dict[str, Any]:
    """Check, plan, run and report one search; return its final record. Bad input raises
    LabError before any candidate is queued (with `search_id`, the record says so too)."""
    t0 = time.monotonic()  # the budget counts from here: planning and measuring too
    try:
        card = check_request(model, dataset, cons, owner, methods)
        prep = Prepared(model, dataset, cons, owner, methods, train_steps, card)
    except LabError as exc:
        if search_id is not None:
            rec = records.load(search_id)
            records.save({**rec, "status": "failed", "error": str(exc), "message": str(exc)})
        raise
    if search_id is None:
        search_id = new_record(model, dataset, cons, owner, methods, train_steps,
                               max_candidates)
    rec = records.load(search_id)
    if rec["cancel_requested"]:
        records.save({**rec, "status": CANCELLED, "message": "cancelled before it started"})
        return records.load(search_id)
    return Run(prep, rec, max_candidates, on_update, t0).go()


def launch(model: str, dataset: str, cons: P.Constraints, owner: str | None,
           methods: tuple[str, ...] = METHODS, train_steps: int = 0) -> int:
    """Start a search in a background process (`python -m engine search --search-id N`) and
    return its id at once: what the Search page calls. The checks that need no model run
    happen here (LabError, nothing written); the rest is recorded on the search."""
    check_request(model, dataset, cons, owner, methods)
    search_id = new_record(model, dataset, cons, owner, methods, train_steps, None,
                           status="starting")
    root = Path(__file__).resolve().parent.parent.parent
    log = open(settings.logs_dir() / f"search-{search_id}.log", "ab")
    # its own session: it outlives a page rerun; the record says how it goes
    subprocess.Popen([sys.executable, "-m", "engine", "search", "--search-id", str(search_id)],
                     cwd=root, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                     start_new_session=True)
    log.close()  # the child holds its own handle
    return search_id


def cancel(search_id: int, owner: str | None = None) -> str:
    """Ask a search to stop: its running candidate is cancelled, what it finished stays."""
    from engine.submit import default_owner

    rec = records.load(search_id)
    who = default_owner() if owner is None else " ".join(str(owner).split())
    if rec.get("owner") and rec["owner"] != who:
        raise LabError(f"search {search_id} belongs to {rec['owner']}; only they can cancel it")
    if rec["status"] not in records.RUNNING_STATES:
        raise LabError(f"search {search_id} already ended ({rec['status']}); it keeps its "
                       f"candidates: {rec.get('message') or ''}".rstrip(": "))
    records.request_cancel(search_id)
    return "cancel requested"
