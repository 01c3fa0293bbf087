"""bertviz's head view and model view of one sentence's attention, as standalone HTML documents
that render with no network (every script inline); removed heads and layers are marked."""

from __future__ import annotations

import functools
import html
import importlib.util
import json
import re
from pathlib import Path

import numpy as np

from engine.attention.maps import SentenceAttention
from engine.toolkit.config import LabError


@functools.lru_cache(maxsize=1)
def _offline_scripts() -> str:
    """jQuery and d3 inlined from pip packages, plus a three-line stand-in for require.js.

    bertviz's JS only calls require.config(...) and requirejs(['jquery', 'd3'], fn) and
    expects require.js, d3 5.7.0 and jQuery from a CDN. d3 5.7.0 comes from the mpld3 wheel
    (BSD-3), jQuery 3.7.1 from XStatic-jQuery (MIT); both are loaded as plain globals and
    the stand-in hands them to bertviz, so no module loader ever fetches anything."""
    def package_file(package: str, relative: str) -> str:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise LabError(f"the package providing {relative} ({package}) is not installed; "
                           f"run the README's set-up command (pip install -r requirements.txt)")
        return (Path(next(iter(spec.submodule_search_locations))) / relative).read_text()

    jquery = package_file("xstatic.pkg.jquery", "data/jquery.min.js")
    d3 = package_file("mpld3", "js/d3.v5.min.js")
    shim = ("window.require = {config: function () {}};\n"
            "window.requirejs = function (deps, fn) {\n"
            "  var mods = {jquery: window.jQuery, d3: window.d3};\n"
            "  fn.apply(null, deps.map(function (d) { return mods[d]; }));\n};")
    return "".join(f"<script>{_script_safe(js)}</script>\n" for js in (jquery, d3, shim))


def _script_safe(js: str) -> str:
    """Inline-script text that cannot close its <script> element early: a token such as
    "</script>" in the attention data stays a string (`<\\/` is `</` inside JS strings)."""
    return js.replace("</", "<\\/").replace("<!--", "<\\!--")


def views_html(att: SentenceAttention, view: str = "head") -> str:
    """A standalone HTML document with bertviz's head view or model view of `att`, rendering
    with no network at all (every script inline). Removed heads and layers are marked."""
    import torch
    from bertviz import head_view, model_view

    if view not in ("head", "model"):
        raise ValueError(f"view must be head or model, got {view!r}")
    removed = att.removed()
    # bertviz wants [1, heads, T, T] per layer; a removed head draws no lines (all zeros).
    # Rounded float64 keeps the embedded JSON short (0.123, not 0.12300000339746475).
    grid = np.nan_to_num(att.maps, nan=0.0).astype(np.float64).round(3)
    attention = [torch.from_numpy(layer)[None] for layer in grid]
    whole = [layer for layer, heads in removed.items() if len(heads) == att.kept.shape[1]]
    if view == "head":
        present = [i for i in range(len(attention)) if i not in whole]
        doc = head_view(attention, att.tokens, include_layers=present or None,
                        html_action="return").data
    else:
        doc = model_view(attention, att.tokens, display_mode="light",
                         html_action="return").data
    doc = re.sub(r"<script src=\"https://[^\"]*\"></script>", "", doc)
    doc = re.sub(r"require\.config\(\{.*?\}\);", "", doc, count=1, flags=re.S)
    doc = re.sub(r"(<script type=\"text/javascript\">)(.*?)(</script>)",
                 lambda m: m.group(1) + _script_safe(m.group(2)) + m.group(3), doc, flags=re.S)
    assert "cdnjs" not in doc and "<script src" not in doc, "a view still loads a remote script"
    note = _removed_note(removed, whole, view)
    marks = ""
    if view == "model":
        cells = [[layer, head] for layer, heads in removed.items() for head in heads]
        marks = f"<script>{_MODEL_VIEW_MARKS.replace('REMOVED', json.dumps(cells))}</script>"
    return ("<!doctype html><html><head><meta charset=\"utf-8\">"
            "<style>body{margin:0;font-family:'Helvetica Neue',Helvetica,Arial,sans-serif;"
            "font-size:13px} .removed-note{color:#6b5200;background:#fff3bf;padding:4px 8px;"
            "margin-bottom:6px;border-radius:4px}</style>\n"
            f"{_offline_scripts()}</head><body>{note}{doc}{marks}</body></html>")


def _removed_note(removed: dict[int, list[int]], whole: list[int], view: str) -> str:
    if not removed:
        return ""
    parts = [f"layer {layer}: whole layer" if layer in whole else
             f"layer {layer}: heads {', '.join(map(str, heads))}"
             for layer, heads in sorted(removed.items())]
    where = ("greyed out below" if view == "model" else
             "they draw no lines" + ("; removed layers are left out of the list"
                                     if whole else ""))
    return (f"<div class=\"removed-note\">Removed by compression ({where}): "
            f"{html.escape('; '.join(parts))}</div>")


# Runs after bertviz has drawn the model view (synchronously, through the require stand-in):
# grey out removed cells and scale the fixed 970-px drawing to the frame's width.
_MODEL_VIEW_MARKS = """
(function () {
  var svg = d3.select('#vis svg');
  if (svg.empty()) { return; }
  REMOVED.forEach(function (c) {
    var bg = svg.select('#attn_background_' + c[0] + '_' + c[1]);
    if (bg.empty()) { return; }
    var x = +bg.attr('x'), y = +bg.attr('y'), w = +bg.attr('width'), h = +bg.attr('height');
    svg.append('rect').attr('class', 'removed-cell').attr('x', x).attr('y', y)
      .attr('width', w).attr('height', h).attr('fill', '#ced4da').attr('opacity', 0.85)
      .attr('pointer-events', 'none');
    svg.append('text').attr('x', x + w / 2).attr('y', y + h / 2).attr('text-anchor', 'middle')
      .attr('font-size', Math.max(7, Math.min(11, w / 5)) + 'px').attr('fill', '#495057')
      .attr('pointer-events', 'none').text('removed');
  });
  var width = +svg.attr('width'), height = +svg.attr('height');
  svg.attr('viewBox', '0 0 ' + width + ' ' + height).attr('width', '100%')
    .attr('height', null).style('max-width', width + 'px');
})();
"""
