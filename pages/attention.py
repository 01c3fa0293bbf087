"""Attention: what a model's heads attend to on a sentence, and how compression changed that.

Model work goes through engine.attention (one cached model per path in this process, as
DESIGN.md allows for interactive views); this page picks models and a sentence and draws what
comes back. Every user text reaches the browser as text: the views escape it, Streamlit too.
"""

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from engine import attention as A
from engine.toolkit.data import load_dataset
from pages.ui import show_error
from storage import jobs as store

NONE = "(none)"
DEFAULT_SENTENCE = "A gorgeous, witty and surprisingly moving film, if a little too long."


def grid_figure(z: np.ndarray, kept: np.ndarray, text: list[list[str]] | None = None,
                zmax: float | None = None, colorscale: str = "Blues",
                colorbar: str = "") -> go.Figure:
    """A layers x heads heatmap; heads a model no longer has are grey and say "removed"."""
    z = np.where(kept, z, np.nan).astype(float)
    layers, heads = z.shape
    text = text or [["" if np.isnan(v) else f"{v:.2f}" for v in row] for row in z]
    fig = go.Figure(go.Heatmap(
        z=z, x=[f"h{h}" for h in range(heads)], y=[f"L{i}" for i in range(layers)],
        text=text, texttemplate="%{text}", colorscale=colorscale, zmin=0, zmax=zmax,
        hoverongaps=False, xgap=2, ygap=2, colorbar={"title": {"text": colorbar}}))
    for i, h in zip(*np.nonzero(~kept)):
        fig.add_annotation(x=f"h{h}", y=f"L{i}", text="removed", showarrow=False,
                           font={"size": 9, "color": "#495057"})
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(plot_bgcolor="#ced4da", height=90 + 30 * layers,
                      margin={"l": 0, "r": 0, "t": 10, "b": 0})
    return fig


st.title("Attention")
st.caption("Type a sentence and see what each head attends to, in a model and its parent side "
           "by side: how compression changed the heads, which heads matter, and what switching "
           "heads off does to accuracy.")

rows = {m.name: m for m in store.list_models()}
if not rows:
    st.info("No models yet. The default teacher's job adds the first one (see Home); "
            "compressed models appear here when their jobs finish.")
    st.stop()
names = list(rows)[::-1]  # newest first
label = {n: (f"{rows[n].alias} ({n})" if rows[n].alias else n)
         + (f", {rows[n].method}" if rows[n].method else "") for n in names}


@st.cache_resource(max_entries=32, show_spinner=False)
def attention_of(model_id: str, path: str, sentence: str, max_tokens: int) -> A.SentenceAttention:
    """One forward pass per (model files, sentence, limit): the page reruns on every widget
    change (view, ablation form, second model) without reading the sentence again. `path`
    is in the key so a deleted and rebuilt job id is not served stale maps."""
    return A.sentence_attention(model_id, sentence, max_tokens)


@st.cache_resource(max_entries=32, show_spinner=False)
def view_of(model_id: str, path: str, sentence: str, max_tokens: int, view: str) -> str:
    """bertviz's HTML for the cached maps (built once per view)."""
    return A.views_html(attention_of(model_id, path, sentence, max_tokens), view)


def stored(model_id: str | None) -> str | None:
    """The stored model row's name for an id or alias (`default` -> `job:1`), if stored."""
    row = store.find_model(model_id) if model_id else None
    return row.name if row is not None and row.name in rows else None


def parent_choice() -> None:
    st.session_state["attn_model_b"] = stored(A.parent_of(st.session_state["attn_model_a"])) \
        or NONE


# Hand-off from the Results page: a sentence and 1-2 models, read once.
handoff = st.session_state.pop("attention_models", None)
if handoff:
    picked = [stored(m) for m in handoff[:2]]
    if None in picked:
        st.warning(f"Not stored models: {', '.join(m for m, p in zip(handoff, picked) if not p)}")
    picked = [p for p in picked if p]
    if picked:
        st.session_state["attn_model_a"] = picked[0]
        parent_choice()
        if len(picked) > 1:
            st.session_state["attn_model_b"] = picked[1]
if isinstance(st.session_state.get("attention_sentence"), str):
    st.session_state["attn_sentence"] = st.session_state.pop("attention_sentence")
if st.session_state.get("attn_model_a") not in names:
    compressed = [n for n in names if rows[n].method not in (None, "finetune", "evaluate")]
    st.session_state["attn_model_a"] = (compressed or [stored("default") or names[0]])[0]
    parent_choice()
st.session_state.setdefault("attn_sentence", DEFAULT_SENTENCE)

left, right = st.columns(2)
model_a = left.selectbox("Model", names, key="attn_model_a", format_func=label.get,
                         on_change=parent_choice)
model_b = right.selectbox("Compare with", [NONE] + [n for n in names if n != model_a],
                          key="attn_model_b", format_func=lambda n: label.get(n, n),
                          help="By default the model's parent: the model it was made from.")
dataset_id = (rows[model_a].info or {}).get("dataset") or "rotten-tomatoes"


def pick_sentence() -> None:
    st.session_state["attn_sentence"] = st.session_state["attn_pick"]


sentence = st.text_area("Sentence", key="attn_sentence", height=80, max_chars=20_000)
with st.expander(f"…or pick a sentence from the {dataset_id} test split"):
    try:
        st.selectbox("Test sentence", load_dataset(dataset_id).test.texts[:100], index=None,
                     key="attn_pick", on_change=pick_sentence)
    except Exception as exc:  # noqa: BLE001 (shown to the user, never raised)
        show_error(exc)
opts, view_col = st.columns([1, 2])
max_tokens = opts.number_input("Token limit", min_value=8, max_value=512, value=128, step=8,
                               key="attn_max_tokens",
                               help="Longer inputs are cut here (and at the model's maximum); "
                                    "the views grow with tokens squared.")
view = view_col.segmented_control("View", ["head", "model"], default="head", key="attn_view",
                                  format_func=lambda v: f"{v.capitalize()} view",
                                  required=True)

if not sentence.strip():
    st.info("Type a sentence above, or pick one from the test split, to see what the heads "
            "attend to.", icon=":material/edit:")
    st.stop()

chosen = [model_a] + ([model_b] if model_b and model_b != NONE else [])
results: dict[str, A.SentenceAttention] = {}
for col, mid in zip(st.columns(len(chosen)), chosen):
    with col:
        st.subheader(label.get(mid, mid))
        try:
            with st.spinner("Reading the sentence (the first time, loading the model)…"):
                path = rows[mid].path if mid in rows else mid
                att = attention_of(mid, path, sentence, int(max_tokens))
                doc = view_of(mid, path, sentence, int(max_tokens), view)
        except Exception as exc:  # noqa: BLE001 (shown to the user, never raised)
            show_error(exc)
            continue
        results[mid] = att
        c1, c2 = st.columns(2)
        c1.metric("Prediction", att.label)
        c2.metric("Confidence", f"{att.confidence:.1%}")
        removed = att.removed()
        st.caption("Removed heads: " + "; ".join(
            f"layer {layer}: {'all' if len(h) == att.kept.shape[1] else ', '.join(map(str, h))}"
            for layer, h in removed.items()) if removed else "All heads present.")
        st.iframe(doc, height=int(110 + 23 * len(att.tokens)) if view == "head" else "content",
                  alt=f"bertviz {view} view of {mid}")
if results:
    first = next(iter(results.values()))
    if first.truncated:
        st.warning(f"The sentence makes {first.total_tokens} tokens; the models read the first "
                   f"{len(first.tokens)} ({first.truncated} cut off). The limit is "
                   f"min(token limit, the model's maximum).", icon=":material/content_cut:")

if len(results) == 2:
    st.subheader("How the heads changed")
    a, b = results.values()
    try:
        div = A.divergence(a, b)
        both = ~np.isnan(div)
        text = [["" if np.isnan(v) else f"{v:.3f}" for v in row] for row in div]
        st.plotly_chart(grid_figure(div, both, text=text, colorscale="Reds",
                                    zmax=max(0.05, float(np.nanmax(div, initial=0))),
                                    colorbar="JS (bits)"), key="attn_divergence")
        st.caption("Jensen-Shannon divergence between matching heads' attention rows for this "
                   "sentence, averaged over tokens: 0 = the same attention, 1 = disjoint. Grey: "
                   "a head one of the models no longer has.")
        if a.kept.shape != b.kept.shape:
            st.caption(f"The models have {a.kept.shape[0]} and {b.kept.shape[0]} layers and no "
                       f"record maps one onto the other (as a layer-pruning job keeps): layers "
                       f"are compared by position.")
    except Exception as exc:  # noqa: BLE001 (shown to the user, never raised)
        show_error(exc)

if model_a in results:
    att = results[model_a]
    st.subheader("What each head attends to")
    summary = pd.DataFrame(A.head_summary(att))
    grid = np.full(att.kept.shape, np.nan)
    text = [["" for _ in range(att.kept.shape[1])] for _ in range(att.kept.shape[0])]
    for r in summary.itertuples():
        grid[r.layer, r.head] = r.entropy_norm
        text[r.layer][r.head] = r.pattern
    st.plotly_chart(grid_figure(grid, att.kept, text=text, zmax=1.0, colorscale="Greens",
                                colorbar="entropy"), key="attn_patterns")
    st.caption(f"{label.get(model_a, model_a)}: where each head sends most of its attention "
               f"(at least half of it), else 'broad'; colour: attention entropy, 1 = spread "
               f"evenly over all tokens.")
    with st.expander("Per-head table"):
        st.dataframe(summary, hide_index=True, key="attn_summary")

st.subheader("Head importance")
found = A.head_importance(chosen + [A.parent_of(m) for m in chosen])
if found:
    job_id, scored, scores = found
    st.plotly_chart(grid_figure(scores, ~np.isnan(scores), colorscale="Purples",
                                colorbar="importance"), key="attn_importance")
    st.caption(f"From prune job {job_id}, scored on {scored}; higher = the loss grows more "
               f"when the head is masked. Grey: heads that were already removed.")
else:
    st.info(f"No head importance yet for these models. A prune job scores every head: on the "
            f"Compress page choose prune with kind=heads, or run `python -m engine submit prune "
            f"--model {model_a} --set kind=heads`.", icon=":material/info:")

if model_a in results:
    att = results[model_a]
    st.subheader("Switch heads off")
    st.caption(f"Untick heads of {label.get(model_a, model_a)} and re-score: no training, the "
               f"heads' outputs are zeroed. Removed heads stay off whatever the grid says.")
    layers, heads = att.kept.shape
    with st.form("attn_ablation"):
        on = st.data_editor(pd.DataFrame(att.kept, index=[f"layer {i}" for i in range(layers)],
                                         columns=[f"h{h}" for h in range(heads)]),
                            key=f"attn_grid_{model_a}", width="stretch")
        examples = st.number_input(f"Test examples ({dataset_id})", min_value=10,
                                   max_value=2000, value=200, step=50, key="attn_examples")
        go_score = st.form_submit_button("Re-score with these heads", key="attn_rescore",
                                         type="primary")
    if go_score:
        off = [(i, h) for i in range(layers) for h in range(heads)
               if att.kept[i, h] and not bool(on.iloc[i, h])]
        try:
            with st.spinner(f"Scoring {examples} test examples…"):
                st.session_state["attn_ablation_result"] = A.ablate(
                    model_a, off, int(examples), dataset_id, sentence, max_tokens)
        except Exception as exc:  # noqa: BLE001 (shown to the user, never raised)
            show_error(exc)
    res = st.session_state.get("attn_ablation_result")
    if res is not None and res.model_id == model_a:
        c1, c2, c3 = st.columns(3)
        c1.metric(f"Accuracy, {res.heads_off} heads off", f"{res.accuracy:.1%}",
                  delta=f"{(res.accuracy - res.baseline_accuracy) * 100:+.1f} points")
        c2.metric("Predictions changed", f"{res.flipped} of {res.examples}")
        if res.sentence_before and res.sentence_after:
            (lb, pb), (la, pa) = res.sentence_before, res.sentence_after
            c3.metric("This sentence", f"{la} {pa:.0%}",
                      delta=f"was {lb} {pb:.0%}" if la != lb else f"{(pa - pb) * 100:+.1f} "
                                                                   f"points", delta_color="off")
        st.caption(f"{res.examples} examples of {res.dataset}, re-scored in {res.seconds:.1f} s; "
                   f"accuracy with every head: {res.baseline_accuracy:.1%}.")
