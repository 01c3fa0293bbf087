"""The Attention page in a real Chromium with every request that leaves this machine blocked:
bertviz's views must still draw (their scripts are inline), and nothing may try to go out."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest

from storage import jobs as store
from tests.conftest import ROOT

CHROMIUM = Path("/usr/bin/chromium")
LOCAL = {"127.0.0.1", "localhost", "::1", "[::1]"}

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="needs Debian's chromium at /usr/bin/chromium "
                              "(apt-get install chromium)"),
]


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


def test_attention_views_render_offline(tiny_model_dir, tiny_csv, lab_home, tmp_path) -> None:
    from playwright.sync_api import sync_playwright

    store.register_model("job:1", str(tiny_model_dir), "job", alias="default",
                         method="finetune", info={"dataset": f"csv:{tiny_csv}"})
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "LAB_HOME": str(lab_home), "LAB_WORKER_AUTOSTART": "0",
           "LAB_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    log = (tmp_path / "streamlit.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true",
         "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    outside: list[str] = []
    try:
        wait_healthy(url, server)
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=str(CHROMIUM),
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                      "--disable-component-update", "--disable-sync"])
            try:
                context = browser.new_context(viewport={"width": 1400, "height": 1000})

                def guard(route) -> None:
                    if urlparse(route.request.url).hostname in LOCAL:
                        route.continue_()
                    else:
                        outside.append(route.request.url)
                        route.abort()

                context.route("**/*", guard)
                page = context.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                # In through the front door, as a user: app.py's navigation, then the page.
                # Until app.py has run, Streamlit lists the files in pages/ (a link there, or a
                # deep link to /attention, runs the page without app.py): wait for Home first.
                page.goto(url, wait_until="domcontentloaded")
                page.get_by_role("heading", name="Compression Lab").wait_for(timeout=60_000)
                page.locator("[data-testid='stSidebarNav'] a", has_text="Attention").click()
                view = page.frame_locator("iframe[title^='bertviz head view']").first
                view.locator("svg line").first.wait_for(state="attached", timeout=90_000)
                lines = view.locator("svg line").count()
                tokens = view.locator("svg text").all_text_contents()
                page.get_by_text("Model view").click()
                model = page.frame_locator("iframe[title^='bertviz model view']").first
                model.locator("rect.attn_background").first.wait_for(state="attached",
                                                                     timeout=60_000)
                cells = model.locator("rect.attn_background").count()
                # Let the run finish (Streamlit shows its navigation and wide layout by then).
                page.locator("[data-testid='stStatusWidget']").wait_for(state="detached",
                                                                        timeout=60_000)
                nav = page.locator("[data-testid='stSidebarNav'] a").all_text_contents()
                page.wait_for_timeout(500)
                page.screenshot(path=str(tmp_path / "attention.png"), full_page=True)
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
    assert not outside, f"requests left this machine: {outside}"
    assert lines > 0, "the head view drew no attention lines"
    assert "[CLS]" in tokens and "gorgeous" in tokens
    assert cells == 2 * 4, "the model view draws one cell per layer and head"
    assert not errors, errors
    assert any(t.endswith("Home") for t in nav), f"not app.py's navigation: {nav}"
    assert (tmp_path / "attention.png").stat().st_size > 10_000
