"""Attention page, last section: switch heads of the first model off and re-score a sample of
the test split (no training), with the accuracy change's interval and whether it is within
chance."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from engine import attention as A
from pages.attention_pick import Choice
from pages.ui import show_error


def switch_heads_off(choice: Choice, results: dict[str, A.SentenceAttention]) -> None:
    att = results.get(choice.model_a)
    if att is None:
        return
    name = choice.label.get(choice.model_a, choice.model_a)
    st.subheader("Switch heads off")
    if not att.classifier:
        st.info(f"{name} has no classifier, so there is no accuracy to re-score: pick a "
                f"trained model (a fine-tuned or compressed one).", icon=":material/info:")
        return
    st.caption(f"Untick heads of {name} and re-score: no training, the heads' outputs are "
               f"zeroed. Removed heads stay off whatever the grid says.")
    layers, heads = att.kept.shape
    with st.form("attn_ablation"):
        on = st.data_editor(pd.DataFrame(att.kept, index=[f"layer {i}" for i in range(layers)],
                                         columns=[f"h{h}" for h in range(heads)]),
                            key=f"attn_grid_{choice.model_a}", width="stretch")
        examples = st.number_input(f"Test examples ({choice.dataset_id})", min_value=10,
                                   max_value=2000, value=200, step=50, key="attn_examples")
        go_score = st.form_submit_button("Re-score with these heads", key="attn_rescore",
                                         type="primary")
    if go_score:
        off = [(i, h) for i in range(layers) for h in range(heads)
               if att.kept[i, h] and not bool(on.iloc[i, h])]
        try:
            with st.spinner(f"Scoring {examples} test examples…"):
                st.session_state["attn_ablation_result"] = A.ablate(
                    choice.model_a, off, int(examples), choice.dataset_id, choice.sentence,
                    choice.max_tokens)
        except Exception as exc:  # noqa: BLE001 (shown to the user, never raised)
            show_error(exc)
    res = st.session_state.get("attn_ablation_result")
    if res is not None and res.model_id == choice.model_a:
        _result(res)


def _result(res: A.Ablation) -> None:
    lo, hi = (100 * v for v in res.delta_ci)
    c1, c2, c3 = st.columns(3)
    # Within chance: no colour, the change is not a gain or a loss this sample can show.
    c1.metric(f"Accuracy, {res.heads_off} heads off", f"{res.accuracy:.1%}",
              delta=f"{res.delta * 100:+.1f} points ({lo:+.1f} to {hi:+.1f})",
              delta_color="off" if res.within_chance else "normal")
    c2.metric("Predictions changed", f"{res.flipped} of {res.examples}")
    if res.sentence_before and res.sentence_after:
        (lb, pb), (la, pa) = res.sentence_before, res.sentence_after
        c3.metric("This sentence", f"{la} {pa:.0%}",
                  delta=f"was {lb} {pb:.0%}" if la != lb else f"{(pa - pb) * 100:+.1f} points",
                  delta_color="off")
    verdict = (f"within chance: the 95 % interval ({lo:+.1f} to {hi:+.1f} points) includes 0, "
               f"so {res.examples} examples cannot tell this change from noise"
               if res.within_chance else
               f"outside chance: the 95 % interval is {lo:+.1f} to {hi:+.1f} points")
    st.caption(f"The change is {verdict} (paired bootstrap over the examples; exact McNemar "
               f"p = {res.p_value:.3g} on {res.gained} examples gained and {res.lost} lost). "
               f"{res.examples} examples of {res.dataset}, re-scored in {res.seconds:.1f} s; "
               f"accuracy with every head: {res.baseline_accuracy:.1%}.")
