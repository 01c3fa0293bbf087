"""Worker processes: registered with a name, alive while their heartbeat is recent."""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

from sqlalchemy import select, update

from storage.db import session_scope
from storage.models import Worker, utcnow


def register_worker(device: str = "cpu", now: datetime | None = None, name: str | None = None,
                    executor: str = "local") -> int:
    """Add a worker row for this process; return its id (what Job.worker_id points at).
    `name` defaults to "HOST:PID"; `executor` is local or ray."""
    host = socket.gethostname()
    with session_scope() as s:
        w = Worker(pid=os.getpid(), hostname=host, device=device,
                   name=(name or f"{host}:{os.getpid()}")[:100], executor=executor,
                   started_at=now or utcnow(), heartbeat_at=now or utcnow())
        s.add(w)
        s.flush()
        return w.id


def worker_heartbeat(worker_id: int, now: datetime | None = None) -> None:
    with session_scope() as s:
        s.execute(update(Worker).where(Worker.id == worker_id).values(heartbeat_at=now or utcnow()))


def worker_stopped(worker_id: int, now: datetime | None = None) -> None:
    with session_scope() as s:
        s.execute(update(Worker).where(Worker.id == worker_id).values(stopped_at=now or utcnow()))


def alive_workers(now: datetime, timeout_s: float, hostname: str | None = None) -> list[Worker]:
    """Workers that have not stopped and whose heartbeat is younger than `timeout_s`
    (only those on `hostname` when given)."""
    cutoff = now - timedelta(seconds=timeout_s)
    with session_scope() as s:
        q = select(Worker).where(Worker.stopped_at.is_(None), Worker.heartbeat_at >= cutoff)
        if hostname is not None:
            q = q.where(Worker.hostname == hostname)
        return list(s.scalars(q.order_by(Worker.id)))


def worker_names(ids: list[int | None] | None = None) -> dict[int, str]:
    """{worker id: name} for the given ids (all workers when None): who runs what."""
    with session_scope() as s:
        q = select(Worker.id, Worker.name, Worker.hostname, Worker.pid)
        if ids is not None:
            q = q.where(Worker.id.in_([i for i in ids if i is not None]))
        return {wid: name or f"{host}:{pid}" for wid, name, host, pid in s.execute(q)}
