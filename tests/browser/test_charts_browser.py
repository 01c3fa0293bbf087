"""The dashboard's charts in a real Chromium: text drawn on a chart lies inside its plot
area (Results' published markers: "oBERT (sparse + int8)" was cut off at the right edge)."""

from __future__ import annotations

import pandas as pd
import pytest

from engine.reports.figures import PLOTLY_CONFIG, REFERENCES, gains_figure
from tests.browser.server import CHROMIUM, CHROMIUM_ARGS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="needs Debian's chromium at /usr/bin/chromium "
                              "(apt-get install chromium)"),
]

# The plot area's box, and the box of every text label drawn on a scatter trace.
MEASURE = """() => {
  const area = document.querySelector('.nsewdrag').getBoundingClientRect();
  const labels = [...document.querySelectorAll('.scatterlayer .textpoint text')].map(t => {
    const r = t.getBoundingClientRect();
    return {text: t.textContent, left: r.left, right: r.right, top: r.top, bottom: r.bottom};
  });
  return {area: {left: area.left, right: area.right, top: area.top, bottom: area.bottom},
          labels};
}"""


def frame(speedups: list[float]) -> pd.DataFrame:
    n = len(speedups)
    return pd.DataFrame({
        "job": range(2, n + 2), "label": [f"job {i}" for i in range(2, n + 2)],
        "method": ["prune"] * n, "config": [""] * n, "device": ["cpu"] * n,
        "speedup": [f"{s:.2f}x" for s in speedups], "speedup_vs_parent": speedups,
        "speedup_ci_low": [None] * n, "speedup_ci_high": [None] * n,
        "accuracy_retained": [0.99] * n})


@pytest.mark.parametrize("speedups", [[1.12], [1.3, 2.4], [0.9, 14.0]])
def test_published_labels_lie_inside_the_gains_chart(tmp_path, speedups) -> None:
    from playwright.sync_api import sync_playwright

    path = tmp_path / "gains.html"
    fig = gains_figure(frame(speedups), references=True)
    path.write_text(fig.to_html(include_plotlyjs=True, config=PLOTLY_CONFIG,
                                default_width=700, default_height=400))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 760, "height": 480})
            page.goto(path.as_uri())
            page.wait_for_selector(".scatterlayer .textpoint text")
            page.wait_for_timeout(300)
            drawn = page.evaluate(MEASURE)
            page.screenshot(path=str(tmp_path / "gains.png"))
        finally:
            browser.close()
    area = drawn["area"]
    assert sorted(t["text"] for t in drawn["labels"]) == sorted(r.name for r in REFERENCES)
    for t in drawn["labels"]:
        assert area["left"] - 1 <= t["left"] and t["right"] <= area["right"] + 1, t
        assert area["top"] - 1 <= t["top"] and t["bottom"] <= area["bottom"] + 1, t
