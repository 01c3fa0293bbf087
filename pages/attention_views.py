"""Attention page, second section: each chosen model's prediction and bertviz view.

A view shows a window of the sentence's tokens (engine.attention.view_window bounds what the
browser is sent); the page says which tokens and what was left out, and lets the user move
the window. The maps of every token stay in the cached SentenceAttention for the sections
below."""

from __future__ import annotations

import streamlit as st

from engine import attention as A
from pages.attention_pick import Choice
from pages.ui import show_error

# A 512-token map of 6 x 12 heads is 75 MB: a few sentences per process, not dozens.
CACHED_SENTENCES = 6


@st.cache_resource(max_entries=CACHED_SENTENCES, show_spinner=False)
def attention_of(model_id: str, path: str, sentence: str, max_tokens: int
                 ) -> A.SentenceAttention:
    """One forward pass per (model files, sentence, limit): the page reruns on every widget
    change without reading the sentence again. `path` is in the key so a deleted and rebuilt
    job id is not served stale maps."""
    return A.sentence_attention(model_id, sentence, max_tokens)


@st.cache_resource(max_entries=16, show_spinner=False)
def view_of(model_id: str, path: str, sentence: str, max_tokens: int, view: str,
            start: int) -> str:
    """The iframe document for the cached maps (built once per view and window)."""
    att = attention_of(model_id, path, sentence, max_tokens)
    return A.views_html(att, view, start, title=f"bertviz {view} view of {model_id}")


def _window_start(results: dict[str, A.SentenceAttention], view: str) -> int:
    """The first token the views show: a control appears when the sentence is longer than
    the view's window (the model view draws every head at once, so its window is shorter)."""
    att = next(iter(results.values()))
    lo, hi = A.view_window(att, 0, view)
    n = len(att.tokens)
    if hi - lo >= n:
        return 0
    last = n - (hi - lo)
    if st.session_state.get("attn_window", 0) > last:  # a longer window than before
        st.session_state["attn_window"] = last
    step = max(1, (hi - lo) // 2)
    start = st.columns([1, 2])[0].number_input(
        "Views start at token", min_value=0, max_value=last, value=0, step=step,
        key="attn_window")
    lo, hi = A.view_window(att, int(start), view)
    st.caption(f"The {view} view shows tokens {lo}-{hi - 1} of the {n} read ({hi - lo} at a "
               f"time: a view draws every token pair of every head, and more would stall the "
               f"browser). Attention to tokens outside the window is left out of the views; "
               f"the maps below use all {n} tokens.", help=None)
    return lo


def draw(choice: Choice) -> dict[str, A.SentenceAttention]:
    """Read the sentence with each chosen model, then draw the views side by side."""
    results: dict[str, A.SentenceAttention] = {}
    errors: dict[str, Exception] = {}
    with st.spinner("Reading the sentence (the first time, loading the model)…"):
        for mid in choice.chosen:
            try:
                results[mid] = attention_of(mid, choice.paths.get(mid, mid), choice.sentence,
                                            choice.max_tokens)
            except Exception as exc:  # noqa: BLE001 (shown to the user, never raised)
                errors[mid] = exc
    start = _window_start(results, choice.view) if results else 0
    for col, mid in zip(st.columns(len(choice.chosen)), choice.chosen):
        with col:
            st.subheader(choice.label.get(mid, mid))
            if mid in errors:
                show_error(errors[mid])
                continue
            att = results[mid]
            _prediction(att)
            try:
                doc = view_of(mid, choice.paths.get(mid, mid), choice.sentence,
                              choice.max_tokens, choice.view, start)
            except Exception as exc:  # noqa: BLE001 (shown to the user, never raised)
                show_error(exc)
                continue
            st.iframe(doc, height="content", alt=f"bertviz {choice.view} view of {mid}")
    if results:
        first = next(iter(results.values()))
        if first.truncated:
            st.warning(f"The sentence makes {first.total_tokens} tokens; the models read the "
                       f"first {len(first.tokens)} ({first.truncated} cut off). The limit is "
                       f"min(token limit, the model's maximum).", icon=":material/content_cut:")
    return results


def _prediction(att: A.SentenceAttention) -> None:
    if att.classifier:
        c1, c2 = st.columns(2)
        c1.metric("Prediction", att.label)
        c2.metric("Confidence", f"{att.confidence:.1%}")
    else:
        st.caption("A base encoder: its attention is a real model's, but a prediction needs a "
                   "classifier (fine-tune it, or pick a trained model).")
    removed = att.removed()
    layers = "" if att.present_layers == att.kept.shape[0] else \
        f"Has {A.layer_note(att)}. "
    st.caption(layers + ("Removed heads: " + "; ".join(
        f"layer {layer}: {'all' if len(h) == att.kept.shape[1] else ', '.join(map(str, h))}"
        for layer, h in removed.items()) if removed else "All heads present."))
