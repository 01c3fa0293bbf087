"""The offline HTML report in a real Chromium: every chart's axis numbers lie inside the
chart (not cut off by the page or the plot's edge), every run is named on the bar charts, and
the file loads nothing from the network."""

from __future__ import annotations

import pytest

from engine.reports.report import html_report
from storage import queries
from tests.browser.server import CHROMIUM, CHROMIUM_ARGS
from tests.test_results_page import seed_runs

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="needs Debian's chromium at /usr/bin/chromium "
                              "(apt-get install chromium)"),
]

# For each chart: its box, and the box and text of every tick label and axis title.
MEASURE = """() => [...document.querySelectorAll('.plotly-graph-div')].map(div => {
  const box = div.getBoundingClientRect();
  const labels = sel => [...div.querySelectorAll(sel)].map(t => {
    const r = t.getBoundingClientRect();
    return {text: t.textContent, left: r.left, right: r.right, top: r.top, bottom: r.bottom};
  });
  return {box: {left: box.left, right: box.right, top: box.top, bottom: box.bottom},
          xticks: labels('.xtick text'), yticks: labels('.ytick text'),
          titles: labels('.g-xtitle text, .g-ytitle text')};
})"""


def test_report_charts_are_readable(tmp_path, tiny_csv) -> None:
    from playwright.sync_api import sync_playwright

    ids = seed_runs(5, dataset=f"csv:{tiny_csv}", n_examples=16)
    by_id = {r["id"]: r for r in queries.runs_table()}
    chosen = [by_id[j] for j in ids[:4]]
    names = [f"job {r['id']} · {r['method']} · {r['output_model'] or r['model']}"
             for r in chosen]
    path = tmp_path / "report.html"
    path.write_text(html_report(chosen, queries.prediction_arrays(ids[:4]), 32, 1.0,
                                everything=list(by_id.values())))
    outside: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})

            def guard(route) -> None:
                if route.request.url.startswith("file:"):
                    route.continue_()
                else:
                    outside.append(route.request.url)
                    route.abort()

            page.route("**/*", guard)
            page.goto(path.as_uri())
            page.wait_for_selector(".plotly-graph-div .main-svg")
            page.wait_for_timeout(500)
            charts = page.evaluate(MEASURE)
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()
    assert outside == [], "the report fetches nothing"
    assert len(charts) == 3, "frontier, latency bars, accuracy bars"
    for i, chart in enumerate(charts):
        box = chart["box"]
        ticks = chart["xticks"] + chart["yticks"]
        assert chart["xticks"] and chart["yticks"], f"chart {i} shows axis numbers"
        for t in ticks + chart["titles"]:
            assert t["left"] >= box["left"] - 1 and t["right"] <= box["right"] + 1, (i, t)
            assert t["top"] >= box["top"] - 1 and t["bottom"] <= box["bottom"] + 1, (i, t)
            assert t["left"] >= 0, f"chart {i}: {t['text']!r} is cut off at the page's edge"
        assert len(chart["titles"]) >= 1, f"chart {i} names its axis"
    for bars in charts[1:]:
        shown = [t["text"] for t in bars["yticks"]]
        assert sorted(shown) == sorted(names), "every run named on the bar chart"
