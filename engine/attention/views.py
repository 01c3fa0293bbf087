"""bertviz's head view and model view of one sentence's attention, as standalone HTML documents
that render with no network (every script inline); removed heads and layers are marked.

What a view carries is bounded: bertviz draws every token pair of every head, and a 512-token
sentence on 6 x 12 heads is 19 M weights (233 MB of HTML, a browser that stalls). A view gets
a window of at most VIEW_TOKENS tokens, fewer on models with more heads, so that it never holds
more than VIEW_WEIGHTS weights (about 2 MB of HTML); `view_window` says which. The head view
draws one layer at a time; the model view draws a line per token pair in every head at once
(6 x 12 heads on 64 tokens would be 295 k SVG lines), so its window is bounded by the lines it
draws, MODEL_VIEW_LINES.

The bertviz document runs in a nested iframe sandboxed with allow-scripts only (an opaque
origin: no access to the app, its cookies or its storage). st.iframe has no sandbox option
and gives its own frame allow-same-origin; that outer frame holds only a fixed wrapper.
"""

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

VIEW_TOKENS = 64  # the most tokens a view shows (a window of the sentence)
VIEW_WEIGHTS = 6 * 12 * 64 * 64  # the most attention weights one view carries (~2 MB of JSON)
# The most lines the model view draws at once: 6 x 12 heads get 32 tokens (74 k SVG lines).
MODEL_VIEW_LINES = 6 * 12 * 32 * 32


def view_window(att: SentenceAttention, start: int = 0, view: str = "head") -> tuple[int, int]:
    """[start, end) of the tokens a `view` of `att` shows: at most VIEW_TOKENS, and at most
    sqrt(budget / heads drawn) so that a model with more layers or heads gets fewer (budget:
    VIEW_WEIGHTS for the head view, MODEL_VIEW_LINES for the model view, which draws every
    head at once); `start` is clamped so the window lies inside the sentence."""
    n = len(att.tokens)
    drawn = max(1, int(att.kept.any(1).sum()) * att.kept.shape[1])
    budget = MODEL_VIEW_LINES if view == "model" else VIEW_WEIGHTS
    size = min(n, VIEW_TOKENS, max(8, int(np.sqrt(budget / drawn))))
    start = max(0, min(int(start), n - size))
    return start, start + size


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


def views_html(att: SentenceAttention, view: str = "head", start: int = 0,
               title: str = "bertviz view") -> str:
    """An HTML document for st.iframe: bertviz's head view or model view of the tokens
    `view_window(att, start)`, rendering with no network at all (every script inline), in a
    nested frame sandboxed with allow-scripts only. Removed heads and layers are marked."""
    return sandboxed(view_document(att, view, start), title)


def view_document(att: SentenceAttention, view: str = "head", start: int = 0) -> str:
    """The standalone bertviz document itself (see `views_html`)."""
    import torch
    from bertviz import head_view, model_view

    if view not in ("head", "model"):
        raise ValueError(f"view must be head or model, got {view!r}")
    removed = att.removed()
    lo, hi = view_window(att, start, view)
    # bertviz wants [1, heads, T, T] per layer; a removed head draws no lines (all zeros).
    # Rounded float64 keeps the embedded JSON short (0.123, not 0.12300000339746475).
    grid = np.nan_to_num(att.maps[:, :, lo:hi, lo:hi], nan=0.0).astype(np.float64).round(3)
    attention = [torch.from_numpy(layer)[None] for layer in grid]
    tokens = att.tokens[lo:hi]
    whole = [layer for layer, heads in removed.items() if len(heads) == att.kept.shape[1]]
    if view == "head":
        present = [i for i in range(len(attention)) if i not in whole]
        doc = head_view(attention, tokens, include_layers=present or None,
                        html_action="return").data
    else:
        doc = model_view(attention, tokens, display_mode="light",
                         html_action="return").data
    doc = _drop_params_comment(doc)
    doc = re.sub(r"<script src=\"https://[^\"]*\"></script>", "", doc)
    doc = re.sub(r"require\.config\(\{.*?\}\);", "", doc, count=1, flags=re.S)
    doc = re.sub(r"(<script type=\"text/javascript\">)(.*?)(</script>)",
                 lambda m: m.group(1) + _script_safe(m.group(2)) + m.group(3), doc, flags=re.S)
    assert "cdnjs" not in doc and "<script src" not in doc, "a view still loads a remote script"
    note = _removed_note(removed, whole, view) + _window_note(len(att.tokens), lo, hi)
    marks = ""
    if view == "model":
        cells = [[layer, head] for layer, heads in removed.items() for head in heads]
        marks = f"<script>{_MODEL_VIEW_MARKS.replace('REMOVED', json.dumps(cells))}</script>"
    return ("<!doctype html><html><head><meta charset=\"utf-8\">"
            "<style>body{margin:0;font-family:'Helvetica Neue',Helvetica,Arial,sans-serif;"
            "font-size:13px} .removed-note{color:#6b5200;background:#fff3bf;padding:4px 8px;"
            "margin-bottom:6px;border-radius:4px}</style>\n"
            f"{_offline_scripts()}</head><body>{note}{doc}{marks}"
            f"<script>{_REPORT_SIZE}</script></body></html>")


def sandboxed(doc: str, title: str) -> str:
    """A wrapper document holding `doc` in an iframe sandboxed with allow-scripts only; the
    inner document reports its height and the wrapper sizes the frame to it (st.iframe then
    sizes itself to the wrapper). `doc` travels escaped in the srcdoc attribute, so no text
    of it is markup of the wrapper."""
    return ("<!doctype html><html><head><meta charset=\"utf-8\"><style>html,body{margin:0}"
            "iframe{border:0;width:100%;display:block;height:120px}</style></head><body>"
            f"<iframe id=\"view\" sandbox=\"allow-scripts\" title=\"{html.escape(title)}\" "
            f"srcdoc=\"{html.escape(doc, quote=True)}\"></iframe>"
            f"<script>{_SIZE_FRAME}</script></body></html>")


def _drop_params_comment(doc: str) -> str:
    """bertviz's JS line `const params = PYTHON_PARAMS; // HACK: PYTHON_PARAMS is a template
    marker...` embeds every weight twice, once in a comment: keep `const params = X;` only.
    X is one line of JSON (no raw newlines) and both copies are equal, so the split point
    follows from the line's length, whatever the tokens' text."""
    head, tail = "const params = ", " is a template marker that is replaced by actual params."
    start = doc.find(head)
    end = doc.find("\n", start)
    if start < 0 or end < 0 or not doc[start:end].endswith(tail):
        return doc
    size = (end - start - len(head) - len("; // HACK: ") - len(tail)) // 2
    x = doc[start + len(head):start + len(head) + size]
    if doc[start:end] != f"{head}{x}; // HACK: {x}{tail}":
        return doc
    return doc[:start] + f"{head}{x};" + doc[end:]


def _window_note(n: int, lo: int, hi: int) -> str:
    if hi - lo >= n:
        return ""
    return (f"<div class=\"removed-note\">Tokens {lo}-{hi - 1} of {n} shown (a view draws "
            f"every token pair; more would stall the browser). Attention to tokens outside "
            f"the window is left out, so rows sum to less than 1.</div>")


# In the sandboxed view: tell the wrapper how tall the drawing is (numbers only).
_REPORT_SIZE = """
(function () {
  var last = 0;
  function send() {
    var h = Math.ceil(document.documentElement.scrollHeight);
    if (h !== last) { last = h; parent.postMessage({type: 'lab:view-height', height: h}, '*'); }
  }
  window.addEventListener('load', send);
  window.addEventListener('resize', send);
  new MutationObserver(send).observe(document.body, {childList: true, subtree: true});
  send();
})();
"""

# In the wrapper: size the sandboxed frame to the height its document reports.
_SIZE_FRAME = """
(function () {
  var frame = document.getElementById('view');
  window.addEventListener('message', function (e) {
    var d = e.data;
    if (e.source !== frame.contentWindow || !d || d.type !== 'lab:view-height') { return; }
    if (typeof d.height === 'number' && isFinite(d.height) && d.height > 0 && d.height < 20000) {
      frame.style.height = d.height + 'px';
    }
  });
})();
"""


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
