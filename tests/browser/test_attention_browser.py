"""The Attention page in a real Chromium with every request that leaves this machine blocked:
bertviz's views must still draw (their scripts are inline), and nothing may try to go out."""

from __future__ import annotations

import pytest

from storage import jobs as store
from tests.browser.server import CHROMIUM, dashboard

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="needs Debian's chromium at /usr/bin/chromium "
                              "(apt-get install chromium)"),
]


def test_attention_views_render_offline(tiny_model_dir, tiny_csv, lab_home, tmp_path) -> None:
    store.register_model("job:1", str(tiny_model_dir), "job", alias="default",
                         method="finetune", info={"dataset": f"csv:{tiny_csv}"})
    with dashboard(lab_home, tmp_path / "streamlit.log") as s:
        page = s.page
        # In through the front door, as a user: app.py's navigation, then the page
        # (a deep link to /attention would run the page without app.py).
        page.goto(s.url, wait_until="domcontentloaded")
        page.get_by_role("link", name="Attention").click()
        view = page.frame_locator("iframe[title^='bertviz head view']").first
        view.locator("svg line").first.wait_for(state="attached", timeout=90_000)
        lines = view.locator("svg line").count()
        tokens = view.locator("svg text").all_text_contents()
        page.get_by_text("Model view").click()
        model = page.frame_locator("iframe[title^='bertviz model view']").first
        model.locator("rect.attn_background").first.wait_for(state="attached", timeout=60_000)
        cells = model.locator("rect.attn_background").count()
        # Let the run finish (Streamlit shows its navigation and wide layout by then).
        page.locator("[data-testid='stStatusWidget']").wait_for(state="detached",
                                                                timeout=60_000)
        nav = page.get_by_role("link", name="Home").count()
        page.wait_for_timeout(500)
        page.screenshot(path=str(tmp_path / "attention.png"), full_page=True)
        outside, errors = list(s.outside), list(s.errors)
    assert not outside, f"requests left this machine: {outside}"
    assert lines > 0, "the head view drew no attention lines"
    assert "[CLS]" in tokens and "gorgeous" in tokens
    assert cells == 2 * 4, "the model view draws one cell per layer and head"
    assert not errors, errors
    assert nav == 1, "the page ran inside app.py's navigation"
    assert (tmp_path / "attention.png").stat().st_size > 10_000
