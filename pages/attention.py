"""Attention: what a model's heads attend to on a sentence, and how compression changed that.

The page reads top to bottom: pick models and a sentence (attention_pick), draw bertviz's
views (attention_views), compare and explain the heads (attention_heads), switch heads off
(attention_ablation). Model work goes through engine.attention (one cached model per path
in this process, as DESIGN.md allows for interactive views); no page imports torch. Every
user text reaches the browser as text: the views escape it, Streamlit too.
"""

import streamlit as st

from pages import attention_ablation, attention_heads, attention_pick, attention_views

st.title("Attention")
st.caption("Type a sentence and see what each head attends to, in a model and its parent side "
           "by side: how compression changed the heads, which heads matter, and what switching "
           "heads off does to accuracy.")

choice = attention_pick.choose()  # stops the page when there is no sentence to read
results = attention_views.draw(choice)
attention_heads.how_they_changed(choice, results)
attention_heads.what_each_attends_to(choice, results)
attention_heads.importance(choice, results)
attention_ablation.switch_heads_off(choice, results)
