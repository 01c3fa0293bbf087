"""A live dashboard for real-browser tests: `streamlit run app.py` on a free port, a Chromium
that blocks (and records) every request leaving this machine, and a clean shutdown."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from tests.conftest import ROOT

CHROMIUM = Path("/usr/bin/chromium")
LOCAL = {"127.0.0.1", "localhost", "::1", "[::1]"}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic",
                 "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, server: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"streamlit exited with {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"streamlit did not answer on {url} within {timeout_s} s")


@dataclass
class Session:
    url: str
    page: object  # playwright.sync_api.Page
    outside: list[str] = field(default_factory=list)  # requests that tried to leave
    errors: list[str] = field(default_factory=list)  # uncaught page errors


@contextmanager
def dashboard(lab_home: Path, log_path: Path, **env: str) -> Iterator[Session]:
    """Start the dashboard and a browser page on it; stop both (and any worker the dashboard
    spawned) afterwards."""
    from playwright.sync_api import sync_playwright

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    full_env = {**os.environ, "LAB_HOME": str(lab_home), "LAB_WORKER_AUTOSTART": "0",
                "LAB_THREADS": "1", "HF_HUB_OFFLINE": "1", **env}
    log = log_path.open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true",
         "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_healthy(url, server)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                session = Session(url, None)

                def guard(route) -> None:
                    if urlparse(route.request.url).hostname in LOCAL:
                        route.continue_()
                    else:
                        session.outside.append(route.request.url)
                        route.abort()

                context.route("**/*", guard)
                session.page = context.new_page()
                session.page.on("pageerror", lambda e: session.errors.append(str(e)))
                yield session
            finally:
                browser.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        _stop_spawned_workers()


def _stop_spawned_workers() -> None:
    """Workers the dashboard started run in their own session: stop them by pid."""
    from storage import jobs as store
    from storage.models import utcnow

    for worker in store.alive_workers(utcnow(), 3600):
        try:
            os.kill(worker.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
