"""Attention page, first section: which models, which sentence, which view.

The base encoder (minilm-l6) is always offered: its attention is a real model's, so the page
is useful before any job has run (the default teacher may still be building)."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from engine import attention as A
from pages.ui import show_error
from storage import jobs as store

NONE = "(none)"
DEFAULT_SENTENCE = "A gorgeous, witty and surprisingly moving film, if a little too long."


@dataclass
class Choice:
    """What the user picked; `paths` maps each model offered to its files (cache keys)."""

    label: dict[str, str]
    paths: dict[str, str]
    model_a: str
    chosen: list[str]  # model_a, then the model to compare with when one is picked
    dataset_id: str
    sentence: str
    max_tokens: int
    view: str


def _offered() -> tuple[dict, list[str], dict[str, str], dict[str, str]]:
    """(stored rows, names newest first with the base encoder last, labels, paths)."""
    rows = {m.name: m for m in store.list_models()}
    names = list(rows)[::-1] + ([] if A.BASE_ENCODER in rows else [A.BASE_ENCODER])
    label = {n: (f"{rows[n].alias} ({n})" if rows[n].alias else n)
             + (f", {rows[n].method}" if rows[n].method else "") for n in rows}
    label.setdefault(A.BASE_ENCODER, f"{A.BASE_ENCODER} (base encoder, no classifier)")
    paths = {n: rows[n].path for n in rows} | {A.BASE_ENCODER: A.BASE_ENCODER}
    return rows, names, label, paths


def _stored(model_id: str | None, names: list[str]) -> str | None:
    """The offered name for an id or alias (`default` -> `job:1`), if offered."""
    if model_id in names:
        return model_id
    row = store.find_model(model_id) if model_id else None
    return row.name if row is not None and row.name in names else None


def choose() -> Choice:
    """Draw the pickers; stop the page when there is no sentence yet."""
    rows, names, label, paths = _offered()
    if names == [A.BASE_ENCODER]:
        st.info(f"No trained models yet (the default teacher's job adds the first one; see "
                f"Home). Meanwhile {A.BASE_ENCODER}, the base encoder every model here starts "
                f"from, shows real attention; a prediction needs a classifier.",
                icon=":material/hourglass_top:")

    def parent_choice() -> None:
        st.session_state["attn_model_b"] = _stored(
            A.parent_of(st.session_state["attn_model_a"]), names) or NONE

    handoff = st.session_state.pop("attention_models", None)  # from Results, read once
    if handoff:
        picked = [_stored(m, names) for m in handoff[:2]]
        if None in picked:
            st.warning("Not stored models: "
                       + ", ".join(m for m, p in zip(handoff, picked) if not p))
        picked = [p for p in picked if p]
        if picked:
            st.session_state["attn_model_a"] = picked[0]
            parent_choice()
            if len(picked) > 1:
                st.session_state["attn_model_b"] = picked[1]
    if isinstance(st.session_state.get("attention_sentence"), str):
        st.session_state["attn_sentence"] = st.session_state.pop("attention_sentence")
    if st.session_state.get("attn_model_a") not in names:
        compressed = [n for n in rows if rows[n].method not in (None, "finetune", "evaluate")]
        st.session_state["attn_model_a"] = (compressed[::-1] or [_stored("default", names)
                                                                 or names[0]])[0]
        parent_choice()
    st.session_state.setdefault("attn_sentence", DEFAULT_SENTENCE)

    left, right = st.columns(2)
    model_a = left.selectbox("Model", names, key="attn_model_a", format_func=label.get,
                             on_change=parent_choice)
    model_b = right.selectbox("Compare with", [NONE] + [n for n in names if n != model_a],
                              key="attn_model_b", format_func=lambda n: label.get(n, n),
                              help="By default the model's parent: the model it was made from.")
    dataset_id = ((rows[model_a].info or {}) if model_a in rows else {}).get("dataset") \
        or "rotten-tomatoes"

    def pick_sentence() -> None:
        st.session_state["attn_sentence"] = st.session_state["attn_pick"]

    sentence = st.text_area("Sentence", key="attn_sentence", height=80, max_chars=20_000)
    with st.expander(f"…or pick a sentence from the {dataset_id} test split"):
        try:
            st.selectbox("Test sentence", A.sample_sentences(dataset_id), index=None,
                         key="attn_pick", on_change=pick_sentence)
        except Exception as exc:  # noqa: BLE001 (shown to the user, never raised)
            show_error(exc)
    opts, view_col = st.columns([1, 2])
    max_tokens = opts.number_input(
        "Token limit", min_value=8, max_value=512, value=128, step=8, key="attn_max_tokens",
        help=f"Longer inputs are cut here (and at the model's maximum). The views show a "
             f"window of at most {A.VIEW_TOKENS} tokens; the maps below use every token.")
    view = view_col.segmented_control("View", ["head", "model"], default="head",
                                      key="attn_view", required=True,
                                      format_func=lambda v: f"{v.capitalize()} view")
    if not sentence.strip():
        st.info("Type a sentence above, or pick one from the test split, to see what the heads "
                "attend to.", icon=":material/edit:")
        st.stop()
    chosen = [model_a] + ([model_b] if model_b and model_b != NONE else [])
    return Choice(label=label, paths=paths, model_a=model_a, chosen=chosen,
                  dataset_id=dataset_id, sentence=sentence, max_tokens=int(max_tokens),
                  view=view)
