"""Compression Lab: `streamlit run app.py`.

The entry point only sets up navigation; each page lives in pages/. Nothing heavy is imported
here (no torch): models run in the background worker, which is started when none is alive.
"""

import streamlit as st

from pages.ui import start_background_work, who_is_here
from storage.db import check as check_database
from storage.errors import LabError

# An emoji favicon is drawn locally; a :material/...: one is fetched from Google's font CDN,
# the only request the dashboard would make outside this machine.
st.set_page_config(page_title="Compression Lab", page_icon="🗜️", layout="wide")

try:  # a database that cannot be reached: one clear message, and the dashboard keeps running
    check_database()
except LabError as exc:
    st.error(str(exc), icon="⚠️")
    st.stop()
start_background_work()

page = st.navigation([
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/models.py", title="Models", icon=":material/model_training:"),
    st.Page("pages/compress.py", title="Compress", icon=":material/compress:"),
    st.Page("pages/heads.py", title="Heads", icon=":material/grid_view:"),
    st.Page("pages/jobs.py", title="Jobs", icon=":material/pending_actions:"),
    st.Page("pages/search.py", title="Search", icon=":material/travel_explore:"),
    st.Page("pages/results.py", title="Results", icon=":material/scatter_plot:"),
    st.Page("pages/class_.py", title="Class", icon=":material/groups:"),
    st.Page("pages/attention.py", title="Attention", icon=":material/visibility:"),
    st.Page("pages/learn.py", title="Learn", icon=":material/school:"),
    st.Page("pages/hurts.py", title="Where it hurts", icon=":material/troubleshoot:"),
])
who_is_here()  # sidebar: this session's name (asked once); the instructor's token
page.run()
