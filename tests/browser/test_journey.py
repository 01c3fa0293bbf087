"""The whole journey in a real Chromium, offline: open the app, pick a model, launch a fast
job, watch it finish, find it on the Results chart, open the Attention views. Every request
that leaves this machine fails the test; each page is saved as a screenshot."""

from __future__ import annotations

import re
import time

import pytest

from storage import jobs as store
from tests.browser.server import CHROMIUM, dashboard

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="needs Debian's chromium at /usr/bin/chromium "
                              "(apt-get install chromium)"),
]


def settle(page) -> None:
    """Wait for Streamlit's current run to finish (its status widget goes away)."""
    page.wait_for_timeout(300)
    page.locator("[data-testid='stStatusWidget']").wait_for(state="detached", timeout=60_000)


# Every button whose text does not fit it, or that reaches past its column's right edge.
CLIPPED = """() => [...document.querySelectorAll('button')].filter(b => b.offsetParent)
.filter(b => {
  const r = b.getBoundingClientRect();
  const col = b.closest('[data-testid="stColumn"]') || document.querySelector('section.main')
    || document.body;
  const c = col.getBoundingClientRect();
  return r.right > c.right + 1 || b.scrollWidth > b.clientWidth + 1;
}).map(b => b.textContent.trim())"""


def test_journey(tiny_model_dir, tiny_csv, lab_home, tmp_path) -> None:
    from engine.methods.registry import methods

    # The tiny model stands in for the default teacher, so no 10-minute build starts.
    store.register_model("job:0", str(tiny_model_dir), "job", alias="default",
                         method="finetune", layers=2, heads=8, params=1_000_000)
    method = "quantize" if "quantize" in methods() else "finetune"
    shots = tmp_path / "screens"
    shots.mkdir()
    # The dashboard starts its own worker (LAB_WORKER_AUTOSTART=1), as for a user.
    with dashboard(lab_home, tmp_path / "streamlit.log", LAB_WORKER_AUTOSTART="1") as s:
        page = s.page
        page.goto(s.url, wait_until="domcontentloaded")
        page.get_by_text("What to do first").wait_for(timeout=60_000)
        # The session's name, asked once in the sidebar; every page after this one uses it.
        page.get_by_placeholder("name or nickname").fill("Ada")
        page.get_by_placeholder("name or nickname").press("Enter")
        page.get_by_text("You: Ada").wait_for(timeout=60_000)
        page.screenshot(path=str(shots / "1-home.png"), full_page=True)

        page.get_by_role("link", name="Models").click()
        page.get_by_text("Model card").wait_for(timeout=60_000)
        page.get_by_text("Parameters").first.wait_for(timeout=60_000)
        page.screenshot(path=str(shots / "2-models.png"), full_page=True)

        page.get_by_role("link", name="Compress").click()
        page.get_by_text(f"Recent {method} runs" if method == "quantize" else "Recent").first \
            .wait_for(timeout=60_000)
        settle(page)
        if method != "quantize":  # quantize is preselected; a second click would unselect it
            page.get_by_text(method, exact=True).first.click()
            settle(page)
        if method == "finetune":
            page.get_by_label("max steps").fill("3")
            page.get_by_label("max steps").press("Enter")
        launch = page.get_by_role("button", name=f"Launch {method}")
        launch.wait_for(timeout=60_000)
        page.wait_for_timeout(1000)  # let the form's last rerun settle
        launch.click()
        page.get_by_text(re.compile(r"Queued job \d+")).wait_for(timeout=60_000)
        page.screenshot(path=str(shots / "3-compress.png"), full_page=True)
        job_id = store.list_jobs(limit=1)[0].id
        assert store.get_job(job_id).owner == "Ada"

        page.get_by_role("link", name="Jobs").click()
        card = page.get_by_text(re.compile(rf"Job {job_id} · {method} .*"))
        card.first.wait_for(timeout=60_000)
        saw_progress = False
        deadline = time.time() + 240
        while time.time() < deadline:
            saw_progress |= page.locator("[data-testid='stProgress']").count() > 0
            if re.search(r"· done", card.first.inner_text()):
                break
            page.wait_for_timeout(500)
        job = store.get_job(job_id)
        assert job.status == "done", (job.status, job.error)
        page.screenshot(path=str(shots / "4-jobs.png"), full_page=True)

        page.get_by_role("link", name="Results").click()
        plot = page.locator(".js-plotly-plot").first
        plot.wait_for(timeout=60_000)
        points = page.locator(".js-plotly-plot .scatterlayer .point")
        points.first.wait_for(state="attached", timeout=60_000)
        n_points = points.count()
        settle(page)
        clipped = page.evaluate(CLIPPED)
        page.screenshot(path=str(shots / "5-results.png"), full_page=True)

        page.get_by_role("link", name="Attention").click()
        view = page.frame_locator("iframe[title^='bertviz head view']").first \
            .frame_locator("iframe#view")  # the bertviz document's sandboxed frame
        view.locator("svg line").first.wait_for(state="attached", timeout=90_000)
        page.wait_for_timeout(500)
        page.screenshot(path=str(shots / "6-attention.png"), full_page=True)
        outside, errors = list(s.outside), list(s.errors)

    assert not outside, f"requests left this machine: {outside}"
    assert not errors, errors
    assert saw_progress or job.status == "done"
    assert n_points >= 1
    assert not clipped, f"buttons cut off at their column's edge (13.8): {clipped}"
    assert all((shots / f).stat().st_size > 10_000 for f in
               ("1-home.png", "2-models.png", "3-compress.png", "4-jobs.png", "5-results.png",
                "6-attention.png"))
