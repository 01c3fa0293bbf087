"""Results: which compressed model to ship, what it cost, and a report to show someone.

The story, top to bottom: choose the data, batch and runtime (every latency and ratio on the
page is then like with like); the frontier and the table; one run, its chain and files; runs
side by side. The sections live in pages/results_parts/, the analysis and every chart in
engine/reports/.
"""

import streamlit as st

from pages.results_parts import compare, data, frontier, one_run

st.title("Results")
view = data.choose()
if view is None:
    st.stop()
frontier.show(view)
one_run.show(view)
compare.show(view)
