"""Results: a table of runs and accuracy against latency (marker size: model size)."""

import plotly.express as px
import streamlit as st

from pages.ui import runs_frame
from storage import jobs as store

st.title("Results")
jobs = store.list_jobs(statuses=("done",))
batch_size = st.segmented_control("Latency at batch size", [1, 32], default=32,
                                  key="results_batch")
df = runs_frame(jobs, batch_size=batch_size)
if df.empty:
    st.info("No finished runs yet. The default teacher's job adds the first one.")
    st.stop()

shown = df.dropna(subset=["p50_ms"])
fig = px.scatter(shown, x="p50_ms", y="accuracy", size="size_mb", color="method",
                 hover_name="model", size_max=40,
                 hover_data={"job": True, "dataset": True, "p95_ms": ":.1f", "size_mb": ":.1f",
                             "params": ":,", "device": True, "config": True},
                 labels={"p50_ms": f"median latency at batch {batch_size} (ms)",
                         "accuracy": "test accuracy"})
fig.update_layout(height=420, margin=dict(l=0, r=0, t=30, b=0))
st.plotly_chart(fig, key="results_scatter")
st.caption("Runs on random-weight presets have no meaningful accuracy and are left off the "
           "chart's vertical axis.")
st.dataframe(df, hide_index=True, key="results_table",
             column_config={"accuracy": st.column_config.NumberColumn(format="%.3f"),
                            "macro_f1": st.column_config.NumberColumn(format="%.3f"),
                            "size_mb": st.column_config.NumberColumn("size (MB)", format="%.1f"),
                            "p50_ms": st.column_config.NumberColumn(format="%.1f"),
                            "p95_ms": st.column_config.NumberColumn(format="%.1f")})
