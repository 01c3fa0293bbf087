"""Learn: five guided lessons on the trade-offs of compression, each built on this lab's own
runs (or a pack's): a few words, a "run it" button that queues only the jobs still missing,
a chart, and what the runs say in plain words. The lessons' jobs, matching and sentences are
in the package engine/reports/lessons/; the sections in pages/learn_parts/."""

import streamlit as st

from engine.reports.lessons import LESSONS
from pages.learn_parts import lesson, runs

st.title("Learn")
st.markdown(
    "Five short lessons. Each one says what it is about, queues the jobs it needs with "
    "**Run it** (only those this machine has not run or queued yet; they carry your name), "
    "and then reads the finished runs: a chart and the takeaways, in numbers measured here. "
    "Jobs wait for the default teacher when it is still being built.")
everything = runs.everything()
origin = runs.source(everything)
for one, tab in zip(LESSONS, st.tabs([one.title for one in LESSONS])):
    with tab:
        lesson.show(one, everything, origin)
